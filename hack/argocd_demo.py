"""`make argocd-demo`: the data mesh synced by a real ArgoCD, as a platform team runs it.

On the local cluster (with its node): starts ArgoCD (Redis, repo server, application
controller, ApplicationSet controller), pushes this repository's committed HEAD to a
local bare git repository, applies argocd/project.yaml and argocd/root.yaml pointed at
it, and waits until every Application is synced and healthy: the CRDs, the operator
(from the local image), the global policies, then one Application per domain.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import localcluster
from localcluster import gitops
from localcluster.common import ROOT, ClusterError

SYNC_TIMEOUT_S = 600


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="the local cluster's folder")
    args = parser.parse_args()
    cluster = localcluster.LocalCluster(args.dir)
    state = cluster.load()
    if state is None or not cluster.running(state):
        print(
            f"error: no local cluster is running in {args.dir}; run `make cluster-up`",
            file=sys.stderr,
        )
        return 1
    if not state.node:
        print(
            "error: the local cluster has no node, so the operator's pod cannot run and its "
            "Application would never turn healthy; start one with `make cluster-up NODE=1`",
            file=sys.stderr,
        )
        return 1

    def kubectl(*cmd: str, input: str | None = None, check: bool = True) -> str:
        return cluster.kubectl(state, *cmd, input=input, check=check)

    try:
        started = time.monotonic()
        print("Starting ArgoCD (Redis, repo server, controllers) ...", flush=True)
        cluster.argocd.start(
            kubeconfig=state.kubeconfig, kubectl=kubectl, helm_dir=Path(state.bin_dir)
        )
        remote = gitops.LocalRemote(cluster.argocd.dir / "git")
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if dirty:
            print("note: uncommitted changes are not synced; ArgoCD reads commits only.")
        commit = remote.publish_head()
        print(f"Pushed {commit[:12]} to {remote.url}", flush=True)
        gitops.bootstrap(kubectl, remote.url, operator_values=local_operator_values())
        # The domains of the pushed commit (what ArgoCD sees), not of the work tree.
        tree = subprocess.run(
            ["git", "ls-tree", "-d", "--name-only", "HEAD", "products/"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        domains = tree.split()
        # The root, the CRDs, the operator, the global policies, one per domain.
        expected = 4 + len(domains)
        print(f"Waiting for {expected} Applications to be synced and healthy ...", flush=True)
        gitops.wait_all_synced(kubectl, expected, SYNC_TIMEOUT_S)
        print(f"Every Application synced in {time.monotonic() - started:.0f} s.\n", flush=True)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for cmd in (
        ("get", "applications.argoproj.io", "-n", gitops.NAMESPACE),
        ("get", "dataproducts", "-A"),
    ):
        print(f"$ kubectl {' '.join(cmd)}")
        print(kubectl(*cmd), flush=True)
    print(
        f"ArgoCD keeps running. Commit in {remote.work} and `git push`: ArgoCD sees the commit "
        "within a minute, or at once after\n  kubectl annotate applications.argoproj.io "
        f"-n {gitops.NAMESPACE} products-sales {gitops.REFRESH_ANNOTATION}=normal\n"
        "(what a push webhook does). `make cluster-down` stops it."
    )
    return 0


def local_operator_values() -> dict[str, object]:
    """The operator's chart values for the local image (never pulled; the pod rolls when
    the image is rebuilt under the same tag)."""
    repository, tag = localcluster.image_names()["operator"].rsplit(":", 1)
    archive_id = localcluster.cache_dir() / "images" / "archives" / "operator.tar.id"
    image_id = archive_id.read_text().strip()[:16] if archive_id.exists() else "unknown"
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "podAnnotations": {"datamesh.io/image-id": image_id},
    }


if __name__ == "__main__":
    sys.exit(main())
