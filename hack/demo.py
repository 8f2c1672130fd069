"""`make demo`: the whole data mesh on the local control plane.

Installs the CRDs, the domain namespaces, the live policies and products. With a node,
seeds the source database, installs the operator with its Helm chart from the local image
and the local warehouse, runs each compliant product's pipeline once (upstreams first) and
shows nodes, products, the tables and their rows; without one, runs the operator as a
process until every product is reconciled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Protocol

from localcluster import livemesh
from localcluster.common import NODE_ADDRESS
from localcluster.warehouse import DATABASE, Warehouse

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120
JOB_TIMEOUT_S = 180
RELEASE = "mesh"
NAMESPACE = "datamesh-system"
with (ROOT / "pyproject.toml").open("rb") as _f:
    VERSION = str(tomllib.load(_f)["project"]["version"])
OPERATOR_IMAGE = "localhost/datamesh/operator"


class Run(Protocol):
    def __call__(
        self, *cmd: str, quiet: bool = False, check: bool = True, stdin: str | None = None
    ) -> str: ...


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

    def run(*cmd: str, quiet: bool = False, check: bool = True, stdin: str | None = None) -> str:
        if not quiet:
            print(f"$ kubectl {' '.join(cmd)}", flush=True)
        proc = subprocess.run(
            [*kubectl, *cmd], check=False, capture_output=True, text=True, input=stdin
        )
        if check and proc.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(cmd)} failed: {proc.stderr.strip()}")
        if not quiet:
            print(proc.stdout, end="", flush=True)
        return proc.stdout if proc.returncode == 0 else ""

    run("get", "--raw", "/readyz")
    print()
    run("apply", "--server-side", "-f", str(ROOT / "crds"))
    run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in sorted(ROOT.glob("*/*/namespace.yaml")):
        run("apply", "-f", str(ns))
    run("apply", "-R", "-f", str(ROOT / "policies"))
    run("apply", "-R", "-f", str(ROOT / "products"))

    nodes = run("get", "nodes", "-o", "name", quiet=True).split()
    if nodes:
        warehouse = Warehouse(args.kubeconfig.parent)
        if not warehouse.running():
            raise SystemExit("the warehouse is not running: start the cluster with make cluster-up")
        print("\nSeeding the source database and handing out the warehouse's Secrets ...")
        livemesh.seed_sources(warehouse)
        namespaces = [p.parent.name for p in sorted((ROOT / "products").glob("*/namespace.yaml"))]
        secrets = [
            livemesh.warehouse_secret(warehouse, NODE_ADDRESS, NAMESPACE),
            *livemesh.source_secrets(warehouse, NODE_ADDRESS, namespaces),
        ]
        for secret in secrets:
            run("apply", "-f", "-", quiet=True, stdin=json.dumps(secret))
        return with_node(run, bin_dir, args.kubeconfig, warehouse)
    print("\nNo node in this cluster: the operator runs as a process.", flush=True)
    return without_node(run, args.kubeconfig)


def image_id() -> str:
    cache = Path(os.environ.get("DATAMESH_CACHE", ROOT / ".cache"))
    archive = cache / "images" / "archives" / "operator.tar.id"
    return archive.read_text().strip()[:16] if archive.exists() else "unknown"


def reconciled(run: Run) -> tuple[list[dict[str, Any]], list[str]]:
    """Every product, and the names of products and policies not yet reconciled."""
    items = json.loads(run("get", "dataproducts", "-A", "-o", "json", quiet=True))["items"]
    policies = json.loads(run("get", "gp", "-A", "-o", "json", quiet=True))["items"]
    pending = [
        i["metadata"]["name"]
        for i in [*items, *policies]
        if i.get("status", {}).get("observedGeneration") != i["metadata"]["generation"]
    ]
    return items, pending


def with_node(run: Run, bin_dir: str, kubeconfig: Path, warehouse: Warehouse) -> int:
    """The operator from its image, installed by the chart with the local warehouse; one
    pipeline run per product, upstreams before their consumers."""
    print("\nInstalling the operator with Helm (its local image) ...", flush=True)
    helm_home = ROOT / ".cache" / "helm"
    subprocess.run(
        [
            f"{bin_dir}/helm",
            f"--kubeconfig={kubeconfig}",
            *("upgrade", "--install", RELEASE, str(ROOT / "charts" / "datamesh-operator")),
            *("--namespace", NAMESPACE, "--wait", "--timeout", "180s"),
            *("--set", f"image.repository={OPERATOR_IMAGE}", "--set", f"image.tag={VERSION}"),
            *("--set", "image.pullPolicy=Never"),
            *livemesh.helm_values(),
            # A rebuilt image keeps its tag: roll the pod when the image changed.
            *("--set-string", f"podAnnotations.datamesh\\.io/image-id={image_id()}"),
        ],
        check=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(helm_home),
            "HELM_CACHE_HOME": str(helm_home),
            "HELM_CONFIG_HOME": str(helm_home),
            "HELM_DATA_HOME": str(helm_home),
        },
    )
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        items, pending = reconciled(run)
        pending += [
            i["metadata"]["name"]
            for i in items
            if condition(i, "WarehouseReady") not in ("True", None) and i["spec"].get("pipeline")
        ]
        if not pending:
            break
        if time.monotonic() > deadline:
            print(
                f"the operator did not reconcile {pending}; see its log with "
                f"`kubectl logs -n {NAMESPACE} deploy/{RELEASE}-datamesh-operator`",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.5)
    print(f"Every product reconciled ({len(items)}).", flush=True)
    compliant = [i for i in items if i.get("status", {}).get("compliance", {}).get("compliant")]
    waves = livemesh.pipeline_waves(compliant)
    stamp = time.strftime("%H%M%S")
    failed: list[str] = []
    started = time.monotonic()
    for number, wave in enumerate(waves, 1):
        print(f"Pipeline runs, wave {number}: {', '.join(n for _, n in wave)}", flush=True)
        jobs = []
        for ns, name in wave:
            job = f"{name}-demo-{stamp}"
            run("create", "job", f"--from=cronjob/{name}-pipeline", job, "-n", ns, quiet=True)
            jobs.append((ns, job))
        for ns, job in jobs:
            remaining = max(10, int(deadline + JOB_TIMEOUT_S - time.monotonic()))
            out = run(
                "wait",
                "--for=condition=Complete",
                f"job/{job}",
                "-n",
                ns,
                f"--timeout={remaining}s",
                quiet=True,
                check=False,
            )
            if "condition met" not in out:
                failed.append(f"{ns}/{job}")
        if failed:
            break
    print(f"Pipelines ran in {time.monotonic() - started:.1f} s.\n", flush=True)
    run("get", "nodes")
    print()
    run("get", "dataproducts", "-A", "-o", "wide")
    print()
    run("get", "pods", "-n", NAMESPACE)
    print("\nTables in the warehouse and their rows:", flush=True)
    print(warehouse.psql(DATABASE, "-c", livemesh.ROW_COUNTS), end="", flush=True)
    if failed:
        for ref in failed:
            ns, job = ref.split("/")
            run("logs", f"job/{job}", "-n", ns, "--tail=5", check=False)
        print(f"\npipeline runs that did not complete: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(
        f"\nThe platform is still up: export KUBECONFIG={kubeconfig}\n"
        "Stop everything with `make cluster-down`."
    )
    return 0


def condition(item: dict[str, Any], type_: str) -> str | None:
    for c in item.get("status", {}).get("conditions") or []:
        if c["type"] == type_:
            return str(c["status"])
    return None


def without_node(run: Run, kubeconfig: Path) -> int:
    """No node: the operator runs here as a process until every product is reconciled."""
    print("Starting the operator (logs in .cache/demo-operator.log) ...", flush=True)
    log_path = ROOT / ".cache" / "demo-operator.log"
    log_path.parent.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
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
            items, pending = reconciled(run)
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
        f"\nThe control plane is still up: export KUBECONFIG={kubeconfig}\n"
        "Keep the operator running with `make run`; stop everything with "
        "`make cluster-down`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
