"""Reading objects from the test cluster with kubectl."""

from __future__ import annotations

import json
from typing import Any

from tests.support.cluster import Cluster


def get(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object as JSON, or None when it does not exist."""
    proc = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def products(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Every DataProduct in the cluster, by ``namespace/name``."""
    items = json.loads(cluster.kubectl("get", "dataproducts", "-A", "-o", "json").stdout)["items"]
    return {f"{i['metadata']['namespace']}/{i['metadata']['name']}": i for i in items}


def phase(cluster: Cluster, namespace: str, name: str) -> str | None:
    obj = get(cluster, "dataproduct", namespace, name)
    return (obj or {}).get("status", {}).get("phase")


def pipeline_suspended(cluster: Cluster, namespace: str, cron_job: str) -> bool | None:
    obj = get(cluster, "cronjob", namespace, cron_job)
    return None if obj is None else bool(obj["spec"].get("suspend"))


def resource_versions(cluster: Cluster, namespaces: list[str]) -> dict[str, str]:
    """``kind/namespace/name`` -> resourceVersion of the products and their children."""
    out = {}
    kinds = (
        "dataproducts,persistentvolumeclaims,cronjobs,configmaps,serviceaccounts,roles,rolebindings"
    )
    for ns in namespaces:
        items = json.loads(cluster.kubectl("get", kinds, "-n", ns, "-o", "json").stdout)["items"]
        for item in items:
            out[f"{item['kind']}/{ns}/{item['metadata']['name']}"] = item["metadata"][
                "resourceVersion"
            ]
    return out


def wait_job_complete(cluster: Cluster, namespace: str, job: str, timeout: int = 180) -> None:
    """Wait for a Job to complete; a failure shows its description and its pod's log."""
    proc = cluster.kubectl(
        "wait",
        "--for=condition=Complete",
        f"job/{job}",
        "-n",
        namespace,
        f"--timeout={timeout}s",
        check=False,
        timeout=timeout + 30,
    )
    if proc.returncode != 0:
        described = cluster.kubectl("describe", "job", job, "-n", namespace, check=False)
        logs = cluster.kubectl("logs", f"job/{job}", "-n", namespace, "--tail=20", check=False)
        raise AssertionError(
            f"job {namespace}/{job} did not complete: {proc.stderr}\n"
            f"{described.stdout[-3000:]}\n{logs.stdout}"
        )
