"""The Helm chart and the helm binary (built with the control plane's binaries): lint and
render without a cluster, or install into one."""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

import localcluster
from tests.support import ROOT
from tests.support.cluster import Cluster

CHART = ROOT / "charts" / "datamesh-operator"
RELEASE = "mesh"
NAMESPACE = "datamesh-system"
SERVICE_ACCOUNT = "mesh-datamesh-operator"
KUBE_VERSION = "1.35.0"


@functools.cache
def helm_binary() -> str:
    return str(localcluster.build_binaries() / "helm")


def helm(
    cluster: Cluster | None,
    *args: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run helm with a cache of its own; against ``cluster`` when one is given."""
    cmd = [helm_binary(), *args]
    if cluster is not None:
        cmd.append(f"--kubeconfig={cluster.kubeconfig}")
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(ROOT / ".cache"),
            "HELM_CACHE_HOME": str(ROOT / ".cache" / "helm"),
            "HELM_CONFIG_HOME": str(ROOT / ".cache" / "helm"),
            "HELM_DATA_HOME": str(ROOT / ".cache" / "helm"),
        },
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}:\n{proc.stderr}{proc.stdout}")
    return proc


def rendered(*values: str) -> list[dict[str, Any]]:
    """The chart's manifests as ``helm template`` renders them with ``values``."""
    out = helm(
        None,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *values,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@contextlib.contextmanager
def chart_installed(cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed (without its CRDs: the session installs them) for the block."""
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    helm(
        cluster,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--skip-crds",
        "--wait=false",
    )
    try:
        yield cluster
    finally:
        helm(cluster, "uninstall", RELEASE, "--namespace", NAMESPACE, check=False)


def service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig holding a token of the chart's ServiceAccount, so the operator runs
    with exactly the rights the chart grants."""
    token = cluster.kubectl(
        "create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE, "--duration=1h"
    ).stdout.strip()
    admin = json.loads(cluster.kubectl("config", "view", "--minify", "--raw", "-o", "json").stdout)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": SERVICE_ACCOUNT}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


def install_local_image(cluster: Cluster, image: str, image_id: str, *values: str) -> None:
    """The chart installed as `make demo` does on a cluster with a node: the operator's
    locally built image, never pulled, and the pod rolled when the image changes."""
    repository, tag = image.rsplit(":", 1)
    helm(
        cluster,
        *("upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--skip-crds"),
        *("--wait", "--timeout", "180s"),
        *("--set", f"image.repository={repository}", "--set", f"image.tag={tag}"),
        *("--set", "image.pullPolicy=Never", "--set", "operator.resyncSeconds=30"),
        *("--set-string", f"podAnnotations.datamesh\\.io/image-id={image_id[:16]}"),
        *values,
    )
