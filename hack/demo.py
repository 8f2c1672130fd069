"""`make demo`: show the data mesh running on the local control plane."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args()
    bin_dir = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-control-plane.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    kubectl = [f"{bin_dir}/kubectl", f"--kubeconfig={args.kubeconfig}"]

    def run(*cmd: str) -> None:
        print(f"$ kubectl {' '.join(cmd)}", flush=True)
        subprocess.run([*kubectl, *cmd], check=True)

    run("get", "--raw", "/readyz?verbose")
    run("get", "namespaces")
    run("apply", "--server-side", "-f", str(ROOT / "crds"))
    run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    run("get", "crd")
    print(f"\nThe control plane is up. Use it with:\n  export KUBECONFIG={args.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
