"""The GitOps loop through a real ArgoCD: time from an empty cluster (with its node) to
every Application synced and every live product Ready, the memory of ArgoCD's processes,
and the time from a commit adding a product to that product Ready, with a refresh
annotation right after the push (what a push webhook does) and without one (ArgoCD's own
resync).

The issue sets no target for these; they are printed for the record. ArgoCD's cold build
is measured separately (`hack/build-argocd.sh` with an empty Go build cache). Needs root,
the built binaries, images and ArgoCD (`make tools images argocd`); run by `make bench`.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

import localcluster  # noqa: E402
from localcluster import gitops  # noqa: E402
from localcluster import node as node_module  # noqa: E402
from localcluster.argocd import ArgoCD  # noqa: E402

COMMITS = 5
RESYNC_S = 30
TIMEOUT_S = 600.0


def rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next(ln for ln in status.splitlines() if ln.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def all_ready(kubectl: gitops.Kubectl, expected: int) -> bool:
    items = json.loads(kubectl("get", "dataproducts", "-A", "-o", "json"))["items"]
    return (
        len(items) >= expected
        and all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in i["status"]["conditions"])
            and i["status"].get("observedGeneration") == i["metadata"]["generation"]
            for i in items
            if i.get("status")
        )
        and all(i.get("status") for i in items)
    )


def wait(check: object, what: str) -> float:
    """Seconds until ``check()`` holds (polled every 0.1 s)."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > TIMEOUT_S:
            raise SystemExit(f"bench_argocd: timed out waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def product_ready(kubectl: gitops.Kubectl, name: str) -> bool:
    out = kubectl("get", "dataproduct", name, "-n", "sales", "-o", "json", check=False)
    if not out:
        return False
    obj = json.loads(out)
    status = obj.get("status") or {}
    return status.get("observedGeneration") == obj["metadata"]["generation"] and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def new_product(name: str) -> str:
    doc = yaml.safe_load((ROOT / "products" / "sales" / "customers.yaml").read_text())
    doc["metadata"]["name"] = name
    doc["spec"].pop("outputPorts", None)
    return yaml.safe_dump(doc, sort_keys=False)


def main() -> int:
    if reason := node_module.preflight():
        print(f"bench_argocd: skipped, this machine cannot run the node: {reason}")
        return 0
    localcluster.build_images()
    directory = Path(tempfile.mkdtemp(prefix="bench-argocd-", dir=localcluster.cache_dir()))
    try:
        with localcluster.running_cluster(directory, node=True) as state:
            cluster = localcluster.LocalCluster(directory, node=True)

            def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
                return cluster.kubectl(state, *args, input=input, check=check)

            argocd = ArgoCD(directory, die_with_parent=True)
            started = time.monotonic()
            argocd.start(
                kubeconfig=state.kubeconfig,
                kubectl=kubectl,
                helm_dir=Path(state.bin_dir),
                resync_seconds=RESYNC_S,
            )
            argocd_up = time.monotonic() - started
            remote = gitops.LocalRemote(directory / "git")
            remote.publish_tree(ROOT)
            repository, tag = localcluster.image_names()["operator"].rsplit(":", 1)
            live = [p for p in (ROOT / "products").glob("*/*.yaml") if p.name != "namespace.yaml"]
            domains = {p.parent.name for p in live}
            started = time.monotonic()
            gitops.bootstrap(
                kubectl,
                remote.url,
                {"image": {"repository": repository, "tag": tag, "pullPolicy": "Never"}},
            )
            gitops.wait_all_synced(kubectl, 4 + len(domains), TIMEOUT_S)
            wait(lambda: all_ready(kubectl, len(live)), "every live product Ready")
            empty_to_ready = time.monotonic() - started

            loaded = argocd.load()
            assert loaded is not None
            memory = {name: rss_mib(pid) for name, pid in loaded.pids.items()}

            with_refresh = []
            for i in range(COMMITS):
                name = f"bench-refresh-{i}"
                started = time.monotonic()
                remote.commit(f"Add {name}", {f"products/sales/{name}.yaml": new_product(name)})
                gitops.refresh(kubectl, "products-sales")
                wait(lambda n=name: product_ready(kubectl, n), f"{name} Ready")  # type: ignore[misc]
                with_refresh.append(time.monotonic() - started)
            name = "bench-resync"
            started = time.monotonic()
            remote.commit(f"Add {name}", {f"products/sales/{name}.yaml": new_product(name)})
            wait(lambda: product_ready(kubectl, name), f"{name} Ready")
            without_refresh = time.monotonic() - started
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print(f"ArgoCD start (CRDs, config, Redis and three processes ready): {argocd_up:.1f} s")
    print(
        f"empty cluster -> {4 + len(domains)} Applications synced and healthy, "
        f"{len(live)} live products Ready: {empty_to_ready:.1f} s"
    )
    print(
        "memory (RSS, MiB) after the sync: "
        + ", ".join(f"{k} {v:.0f}" for k, v in memory.items())
        + f"; total {sum(memory.values()):.0f}"
    )
    print(
        f"commit -> product Ready with a refresh (webhook), {COMMITS} commits: "
        f"median {statistics.median(with_refresh):.1f} s, max {max(with_refresh):.1f} s"
    )
    print(
        f"commit -> product Ready with no refresh (resync every {RESYNC_S} s plus jitter): "
        f"{without_refresh:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
