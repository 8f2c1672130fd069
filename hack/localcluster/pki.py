"""Certificates and kubeconfigs for a local cluster, made with the openssl command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .common import NODE_ADDRESS, ClusterError


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _signed_cert(pki: Path, name: str, subject: str, extensions: str) -> None:
    """A key and a certificate for ``subject``, signed by the local CA."""
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=pki)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    (pki / f"{name}.ext").write_text(extensions)
    _openssl(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-days", "365", "-extfile", f"{name}.ext", "-out", f"{name}.crt"),
        cwd=pki,
    )


def generate_pki(pki: Path) -> None:
    """A CA, the apiserver's serving cert, client certs and the ServiceAccount signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "admin.crt").exists():
        return
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=pki)
    _openssl(
        *("req", "-x509", "-new", "-key", "ca.key", "-days", "365"),
        *("-subj", "/CN=datamesh-local-ca", "-out", "ca.crt"),
        cwd=pki,
    )
    _signed_cert(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1,"
        # The node's bridge address: with a node, the apiserver listens there.
        f"IP:{NODE_ADDRESS}\n"
        "extendedKeyUsage=serverAuth\n",
    )
    client = "extendedKeyUsage=clientAuth\n"
    _signed_cert(pki, "admin", "/O=system:masters/CN=admin", client)
    _signed_cert(pki, "controller-manager", "/CN=system:kube-controller-manager", client)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def generate_node_pki(pki: Path, node_name: str) -> None:
    """Identities of the node's parts. The kubelet is ``system:node:<name>`` in
    ``system:nodes``, so the Node authorizer (not a broad binding) decides what it may do."""
    if (pki / "provisioner.crt").exists():
        return
    client = "extendedKeyUsage=clientAuth\n"
    _signed_cert(pki, "kubelet", f"/O=system:nodes/CN=system:node:{node_name}", client)
    _signed_cert(
        pki,
        "kubelet-serving",
        f"/CN={node_name}",
        f"subjectAltName=IP:{NODE_ADDRESS},DNS:{node_name}\nextendedKeyUsage=serverAuth\n",
    )
    # The apiserver's identity towards the kubelet (logs, exec), bound to
    # system:kubelet-api-admin by the node's set-up.
    _signed_cert(pki, "apiserver-kubelet-client", "/CN=kube-apiserver-kubelet-client", client)
    _signed_cert(pki, "scheduler", "/CN=system:kube-scheduler", client)
    _signed_cert(pki, "kube-proxy", "/CN=system:kube-proxy", client)
    _signed_cert(pki, "provisioner", "/CN=system:local-path-provisioner", client)


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "datamesh-local",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "datamesh-local", "context": {"cluster": "datamesh-local", "user": user}}
        ],
        "current-context": "datamesh-local",
    }
    # JSON is valid YAML, and keeps this helper free of third-party imports.
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
