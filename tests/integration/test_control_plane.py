"""Smoke tests of the local control plane: the real apiserver, RBAC, tokens and GC."""

from __future__ import annotations

import json
import time

from kubernetes import client

from tests.support import ROOT
from tests.support.cluster import Cluster


def test_kubectl_and_python_client_see_the_same_objects(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "create", "configmap", "from-kubectl", "-n", namespace, "--from-literal=made-by=kubectl"
    )
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="from-python"), data={"made-by": "python"}
        ),
    )

    names = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
    assert {"from-kubectl", "from-python"} <= names
    out = json.loads(
        cluster.kubectl("get", "configmap", "from-python", "-n", namespace, "-o", "json").stdout
    )
    assert out["data"] == {"made-by": "python"}


def _token_kubectl(cluster: Cluster, namespace: str, token: str, *args: str) -> tuple[int, str]:
    server = json.loads(
        cluster.kubectl("config", "view", "--minify", "--raw", "-o", "json").stdout
    )["clusters"][0]["cluster"]
    proc = cluster.kubectl(
        f"--server={server['server']}",
        f"--certificate-authority={server['certificate-authority']}",
        f"--token={token}",
        "-n",
        namespace,
        *args,
        check=False,
        kubeconfig=False,
        # No kubeconfig, and a HOME of its own: without one kubectl caches into the cwd.
        env={
            "KUBECONFIG": "/dev/null",
            "PATH": "/usr/bin:/bin",
            "HOME": str(ROOT / ".cache" / "kubectl-home"),
        },
    )
    return proc.returncode, proc.stderr + proc.stdout


def test_rbac_denies_an_unprivileged_service_account_until_granted(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    assert token.count(".") == 2, "a ServiceAccount token is a JWT"

    code, out = _token_kubectl(cluster, namespace, token, "get", "configmaps")
    assert code != 0
    assert "forbidden" in out.lower()
    assert f"system:serviceaccount:{namespace}:nobody" in out

    cluster.kubectl(
        "create", "role", "read-cm", "-n", namespace, "--verb=get,list", "--resource=configmaps"
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "read-cm",
        "-n",
        namespace,
        "--role=read-cm",
        f"--serviceaccount={namespace}:nobody",
    )
    code, out = _token_kubectl(cluster, namespace, token, "get", "configmaps")
    assert code == 0, out
    code, out = _token_kubectl(cluster, namespace, token, "get", "secrets")
    assert code != 0 and "forbidden" in out.lower()


def test_controller_manager_collects_garbage(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client())
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="child",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                    )
                ],
            )
        ),
    )
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    deadline = time.monotonic() + 60
    remaining = {"child"}
    while time.monotonic() < deadline:
        remaining = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
        if "child" not in remaining:
            break
        time.sleep(0.5)
    assert "child" not in remaining, "the garbage collector did not delete the orphaned child"
