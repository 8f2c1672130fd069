"""`make demo`: the whole data mesh on the local control plane.

Installs the CRDs, the domain namespaces, the live policies and products, runs the
operator until every product is reconciled, and shows the result with kubectl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args()
    bin_dir = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-control-plane.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    kubectl = [f"{bin_dir}/kubectl", f"--kubeconfig={args.kubeconfig}"]

    def run(*cmd: str, quiet: bool = False) -> str:
        if not quiet:
            print(f"$ kubectl {' '.join(cmd)}", flush=True)
        out = subprocess.run([*kubectl, *cmd], check=True, capture_output=True, text=True).stdout
        if not quiet:
            print(out, end="", flush=True)
        return out

    run("get", "--raw", "/readyz")
    print()
    run("apply", "--server-side", "-f", str(ROOT / "crds"))
    run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in sorted(ROOT.glob("*/*/namespace.yaml")):
        run("apply", "-f", str(ns))
    run("apply", "-R", "-f", str(ROOT / "policies"))
    run("apply", "-R", "-f", str(ROOT / "products"))

    print("\nStarting the operator (logs in .cache/demo-operator.log) ...", flush=True)
    log_path = ROOT / ".cache" / "demo-operator.log"
    log_path.parent.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "KUBECONFIG": str(args.kubeconfig),
        "DATAMESH_METRICS_PORT": "0",
        "DATAMESH_HEALTH_PORT": "0",
    }
    with log_path.open("wb") as log:
        operator = subprocess.Popen(
            [sys.executable, "-m", "datamesh.controller.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            items = json.loads(run("get", "dataproducts", "-A", "-o", "json", quiet=True))["items"]
            policies = json.loads(run("get", "gp", "-A", "-o", "json", quiet=True))["items"]
            pending = [
                i["metadata"]["name"]
                for i in [*items, *policies]
                if i.get("status", {}).get("observedGeneration") != i["metadata"]["generation"]
            ]
            if not pending:
                break
            if operator.poll() is not None or time.monotonic() > deadline:
                print(f"the operator did not reconcile {pending}; see {log_path}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print(f"Every product reconciled ({len(items)}).\n", flush=True)
        run("get", "dataproducts", "-A", "-o", "wide")
        print()
        run("get", "governancepolicies", "-A")
        print()
        run("get", "persistentvolumeclaims,cronjobs", "-n", "sales")
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    print(
        f"\nThe control plane is still up: export KUBECONFIG={args.kubeconfig}\n"
        "Keep the operator running with `make run`; stop everything with "
        "`make cluster-down`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
