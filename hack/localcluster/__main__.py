"""``python -m localcluster up|down|status|build [--dir DIR]`` (with ``hack`` on
``PYTHONPATH``): the Makefile's cluster-up, cluster-down and cluster-status."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __doc__ as package_doc
from .common import ClusterError, build_binaries, cache_dir
from .controlplane import LocalCluster
from .node import preflight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localcluster", description=(package_doc or "").split("\n\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--dir", type=Path, default=None, help="cluster folder")
    parser.add_argument(
        "--node",
        choices=["auto", "1", "0"],
        default="0",
        help="also run a node (containerd, kubelet, scheduler, proxy, volume provisioner): "
        "1 requires one, auto runs one where this machine allows it",
    )
    args = parser.parse_args(argv)
    directory = args.dir or cache_dir() / "cluster"
    node = args.node == "1"
    if args.command == "up" and args.node == "auto":
        refused = preflight()
        node = refused is None
        if refused:
            print(
                f"no node on this machine: {refused}; the control plane runs alone", file=sys.stderr
            )
    cluster = LocalCluster(directory, node=node, warehouse=args.command == "up")
    try:
        if args.command == "build":
            print(build_binaries())
        elif args.command == "up":
            started = time.monotonic()
            state = cluster.start()
            what = "control plane and node" if state.node else "control plane"
            print(
                f"{what} up in {time.monotonic() - started:.1f} s at {state.server}",
                file=sys.stderr,
            )
            print(f"export KUBECONFIG={state.kubeconfig}")
        elif args.command == "down":
            stopped = cluster.stop()
            print(
                "stopped: " + ", ".join(stopped) if stopped else "nothing running", file=sys.stderr
            )
        else:
            health = cluster.health() | cluster.node.health()
            state = cluster.load()
            if not (state and state.node):
                health = cluster.health()
            health |= cluster.warehouse.health() | cluster.argocd.health()
            for name, text in health.items():
                print(f"{name:26} {text}")
            state = cluster.load()
            if state:
                print(f"export KUBECONFIG={state.kubeconfig}")
            return (
                0
                if all(v.startswith("running") and "unhealthy" not in v for v in health.values())
                else 1
            )
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
