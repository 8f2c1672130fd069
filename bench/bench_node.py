"""The local node: how long a warm `cluster-up` with the node takes, what the node's
processes cost in memory, and how long a pipeline Job takes from `kubectl create job` to
Complete (first run with its claim's provisioning, then warm runs).

Target (node issue): warm `make cluster-up` with the node under 15 s. Needs root, the
built binaries and images (`make tools images`); run by `make bench`.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

import localcluster  # noqa: E402
from localcluster import node as node_module  # noqa: E402

RUNS = 5
UP_TARGET_S = 15.0


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, in MiB."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(
                next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]
            )
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pending.extend(int(c) for c in children)
        except (OSError, StopIteration):
            continue
    return total / 1024


def main() -> int:
    if reason := node_module.preflight():
        print(f"bench_node: skipped, this machine cannot run the node: {reason}")
        return 0
    localcluster.build_binaries()
    localcluster.build_node_binaries()
    localcluster.build_images()
    directory = localcluster.cache_dir() / "bench-node"
    cluster = localcluster.LocalCluster(directory, node=True)
    cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)
    # The first start builds the shared image store if the images changed; then warm.
    cluster.start()
    cluster.stop()
    started = time.monotonic()
    state = cluster.start()
    up_s = time.monotonic() - started
    try:
        kubectl = [str(Path(state.bin_dir) / "kubectl"), f"--kubeconfig={state.kubeconfig}"]

        def k(*args: str, input: str | None = None) -> str:
            return subprocess.run(
                [*kubectl, *args], input=input, capture_output=True, text=True, check=True
            ).stdout

        node_pids = (state.node or {}).get("pids", {})
        memory = {name: rss_mib(int(pid)) for name, pid in node_pids.items()}
        shims = list(node_module._shim_pids(cluster.node.socket))
        image = localcluster.image_names()["pipeline"]
        pod = {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532},
            "containers": [
                {
                    "name": "run",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "date >> /data/runs"],
                    "volumeMounts": [{"name": "d", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "bench"}}],
        }
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        k("apply", "-f", "-", input=json.dumps(claim))
        latencies = []
        for i in range(RUNS):
            job = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": f"run-{i}", "namespace": "default"},
                "spec": {"backoffLimit": 0, "template": {"spec": pod}},
            }
            t0 = time.monotonic()
            k("create", "-f", "-", input=json.dumps(job))
            k("wait", "--for=condition=Complete", f"job/run-{i}", "--timeout=180s")
            latencies.append(time.monotonic() - t0)
        after = {name: rss_mib(int(pid)) for name, pid in node_pids.items()}
    finally:
        down_started = time.monotonic()
        cluster.stop()
        down_s = time.monotonic() - down_started
        shutil.rmtree(directory, ignore_errors=True)

    print(
        f"warm cluster-up with the node: {up_s:.1f} s (target < {UP_TARGET_S:.0f} s: "
        f"{'met' if up_s < UP_TARGET_S else 'NOT met'})"
    )
    print(f"cluster-down: {down_s:.1f} s")
    print(
        "node memory (MiB RSS) at start -> after the runs: "
        + ", ".join(f"{name} {memory[name]:.0f} -> {after.get(name, 0):.0f}" for name in memory)
        + f"; total {sum(memory.values()):.0f} -> {sum(after.values()):.0f}"
        + f" ({len(shims)} shims at start)"
    )
    print(
        f"job create -> Complete: first (claim provisioned) {latencies[0]:.1f} s, "
        f"then median {statistics.median(latencies[1:]):.1f} s, max {max(latencies[1:]):.1f} s"
    )
    return 0 if up_s < UP_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
