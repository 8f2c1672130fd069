"""Operator throughput and memory on the local control plane (issue 4's benchmark).

Starts its own control plane and operator, then measures:

* the apiserver's raw write rate with the same client and parallelism (the limit);
* a burst of N generated products: time until all are Ready, products/s, p50/p99
  apply-to-Ready latency, and the operator's peak RSS;
* one policy change matching all N that changes no result (time, writes), and one that
  flips every product (time);
* the writes the operator made for one product, replayed raw for N products with the
  operator stopped: the apiserver's cost of exactly those writes, so that the operator's
  own overhead shows apart from it.

Usage: python bench/bench_operator.py [--products N] [--workers W]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "hack")]

from tests.support.factories import product_dict  # noqa: E402

import localcluster  # noqa: E402
from datamesh.controller.kube import Cluster  # noqa: E402

DOMAINS = ["sales", "marketing", "finance", "product-analytics"]


def bench_product(i: int) -> dict[str, Any]:
    domain = DOMAINS[i % len(DOMAINS)]
    doc = product_dict(
        domain=domain, pipeline={"schedule": "0 * * * *", "image": "images.example.com/p:1"}
    )
    doc["metadata"] = {"name": f"bench-{i}", "namespace": domain}
    doc["spec"]["owner"]["channel"] = "#bench"
    return doc


class Operator:
    def __init__(self, kubeconfig: Path, workers: int, log: Path) -> None:
        self.metrics_port = localcluster.free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "DATAMESH_RESYNC_SECONDS": "0",
            "DATAMESH_METRICS_PORT": str(self.metrics_port),
            "DATAMESH_HEALTH_PORT": "0",
            "DATAMESH_WORKERS": str(workers),
            "DATAMESH_LOG_LEVEL": "WARNING",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "datamesh.controller.main"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.peak_rss_mib = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_rss_mib = max(self.peak_rss_mib, int(line.split()[1]) / 1024)
            except OSError:
                return
            time.sleep(0.5)

    def metric(self, name: str, **labels: str) -> float:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
            ) as r:
                text = r.read().decode()
        except OSError:
            return 0.0
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                key, _, value = line.rpartition(" ")
                if all(f'{k}="{v}"' in key for k, v in labels.items()):
                    total += float(value)
        return total

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def replay(client: Cluster, template: dict[str, Any], n: int, workers: int) -> float:
    """The writes the operator made for the first product, replayed raw for n products
    (the operator stopped): what the apiserver needs for exactly those writes. Tells
    the operator's own overhead apart from the cost of the writes themselves."""
    ns, name = template["metadata"]["namespace"], template["metadata"]["name"]
    live = client.get("DataProduct", ns, name)
    assert live is not None
    product_status = live["status"]
    children = []
    for kind, child in sorted(product_status["children"].items()):
        kind = {
            "storageClaim": "PersistentVolumeClaim",
            "cronJob": "CronJob",
            "configMap": "ConfigMap",
            "serviceAccount": "ServiceAccount",
            "role": "Role",
            "roleBinding": "RoleBinding",
        }[kind]
        obj = client.get(kind, ns, child)
        assert obj is not None
        meta = obj["metadata"]
        obj["metadata"] = {
            k: meta[k] for k in ("labels", "annotations", "ownerReferences") if k in meta
        }
        obj.pop("status", None)
        children.append((kind, obj))
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "replay."},
        "involvedObject": {"kind": "DataProduct", "namespace": "bench-raw", "name": name},
        "type": "Normal",
        "reason": "Ready",
        "message": "phase none -> Ready: replayed",
        "source": {"component": "bench"},
    }

    def one(i: int) -> None:
        doc = {**template, "metadata": {"name": f"replay-{i}", "namespace": "bench-raw"}}
        client.create("DataProduct", "bench-raw", doc)
        client.patch(
            "DataProduct",
            "bench-raw",
            doc["metadata"]["name"],
            {"metadata": {"finalizers": ["x/y"]}},
        )
        client.patch(
            "DataProduct",
            "bench-raw",
            doc["metadata"]["name"],
            {"status": product_status},
            sub="status",
        )
        for kind, obj in children:
            body = {**obj, "metadata": {**obj["metadata"], "name": f"replay-{i}-{kind.lower()}"}}
            client.create(kind, "bench-raw", body)
        client.create("Event", "bench-raw", event)

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(n)))
    return time.monotonic() - t0


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    n = args.products
    work = localcluster.cache_dir() / "bench-cluster"
    shutil.rmtree(work, ignore_errors=True)
    with localcluster.running_cluster(work) as state:
        kubectl = [str(Path(state.bin_dir) / "kubectl"), f"--kubeconfig={state.kubeconfig}"]

        def k(*a: str, stdin: str | None = None) -> str:
            return subprocess.run(
                [*kubectl, *a], input=stdin, check=True, text=True, capture_output=True
            ).stdout

        k("apply", "--server-side", "-f", str(ROOT / "crds"))
        k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        for ns in sorted(ROOT.glob("*/*/namespace.yaml")):
            k("apply", "-f", str(ns))
        k("apply", "-R", "-f", str(ROOT / "policies"))
        k("create", "namespace", "bench-raw")
        os.environ["KUBECONFIG"] = str(state.kubeconfig)
        client = Cluster.connect(pool_size=args.workers * 2, kubeconfig=str(state.kubeconfig))

        # -- the limit: raw writes with the same client and parallelism ----------------
        operator = Operator(state.kubeconfig, args.workers, work / "operator.log")
        wait_until(
            lambda: (
                operator.metric("datamesh_reconciles_total") >= 0 and operator.proc.poll() is None
            ),
            30,
            "the operator",
        )
        time.sleep(3)

        # -- burst ------------------------------------------------------------------
        applied: dict[str, float] = {}
        ready: dict[str, float] = {}
        done = threading.Event()

        def watch() -> None:
            from kubernetes import watch as kwatch

            api = client.api
            from kubernetes.client import CustomObjectsApi

            custom = CustomObjectsApi(api)
            while not done.is_set():
                try:
                    stream = kwatch.Watch().stream(
                        custom.list_cluster_custom_object,
                        "datamesh.io",
                        "v1alpha1",
                        "dataproducts",
                        timeout_seconds=30,
                    )
                    for event in stream:
                        obj = event["object"]
                        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
                        if obj.get("status", {}).get("phase") == "Ready" and key not in ready:
                            ready[key] = time.monotonic()
                        if done.is_set():
                            break
                except Exception as exc:  # the apiserver under load may drop a watch
                    print(f"  (watch restarted: {str(exc).splitlines()[0]})", flush=True)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(1)

        def create(i: int) -> None:
            doc = bench_product(i)
            client._call(
                "POST",
                f"/apis/datamesh.io/v1alpha1/namespaces/"
                f"{doc['metadata']['namespace']}/dataproducts",
                doc,
            )
            applied[f"{doc['metadata']['namespace']}/{doc['metadata']['name']}"] = time.monotonic()

        def apiserver_writes() -> Counter[str]:
            """Every write the apiserver served (the product, kopf's finalizer, ours, the
            controllers'), by verb and resource."""
            out: Counter[str] = Counter()
            for line in k("get", "--raw", "/metrics").splitlines():
                if not line.startswith("apiserver_request_total{"):
                    continue
                labels = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
                if labels.get("verb") in ("POST", "PATCH", "PUT", "DELETE"):
                    sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
                    out[f"{labels['verb']} {labels.get('resource')}{sub}"] += float(
                        line.rpartition(" ")[2]
                    )
            return out

        writes_at_start = apiserver_writes()
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(create, range(n)))
        apply_done = time.monotonic()
        wait_until(
            lambda: len([key for key in applied if key in ready]) >= n,
            60 + n * 0.5,
            "every product Ready",
        )
        all_ready = max(ready[key] for key in applied)
        total = all_ready - start
        latencies = sorted(ready[key] - applied[key] for key in applied)
        by_kind = apiserver_writes() - writes_at_start
        burst_writes = sum(by_kind.values())
        rss_burst = operator.peak_rss_mib

        # -- policy change that changes no result --------------------------------------
        base = operator.metric("datamesh_reconciles_total", trigger="policy")
        writes_before = operator.metric("datamesh_api_writes_total", kind="DataProduct")
        t0 = time.monotonic()

        k(
            "-n",
            "datamesh-system",
            "patch",
            "gp",
            "sla-required",
            "--type=merge",
            "-p",
            json.dumps(
                {
                    "spec": {
                        "description": "Every product states its service levels (benchmark edit)."
                    }
                }
            ),
        )
        wait_until(
            lambda: operator.metric("datamesh_reconciles_total", trigger="policy") >= base + n,
            120,
            "re-evaluation of every product",
        )
        noop_seconds = time.monotonic() - t0
        noop_writes = (
            operator.metric("datamesh_api_writes_total", kind="DataProduct") - writes_before
        )

        # -- policy change that flips every product ------------------------------------
        base = operator.metric("datamesh_reconciles_total", trigger="policy")
        t0 = time.monotonic()
        flip = {
            "spec": {
                "rules": [
                    {
                        "name": "sla-present",
                        "expression": "has(object.spec.sla) && object.spec.sla.availability > 99.9",
                        "message": "benchmark: availability above 99.9",
                    }
                ]
            }
        }
        k(
            "-n",
            "datamesh-system",
            "patch",
            "gp",
            "sla-required",
            "--type=merge",
            "-p",
            json.dumps(flip),
        )
        wait_until(
            lambda: operator.metric("datamesh_reconciles_total", trigger="policy") >= base + n,
            300,
            "re-evaluation after the flip",
        )
        flip_seconds = time.monotonic() - t0

        # -- the limit, measured after the burst with the same client and threads ------
        per_product = burst_writes / n
        raw_count = round(burst_writes)
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {"k": "v"}}

        def raw(i: int) -> None:
            client._call(
                "POST",
                "/api/v1/namespaces/bench-raw/configmaps",
                {**body, "metadata": {"name": f"raw-{i}"}},
            )

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(raw, range(raw_count)))
        raw_seconds = time.monotonic() - t0
        done.set()
        settled_rss = operator.rss_mib()
        operator.stop()

        # -- the same kinds of writes, replayed without the operator ---------------------
        replay_seconds = replay(client, bench_product(0), n, 2 * args.workers)

    rate = n / total
    limit = n / raw_seconds
    replay_rate = n / replay_seconds
    print(f"operator benchmark: {n} products, {args.workers} workers, 2 cores")
    print(
        f"  burst: all Ready in {total:.1f} s ({rate:.1f} products/s); applying took "
        f"{apply_done - start:.1f} s"
    )
    print(
        f"  apply-to-Ready latency: p50 {statistics.median(latencies):.2f} s, "
        f"p99 {latencies[int(0.99 * (len(latencies) - 1))]:.2f} s"
    )
    print(
        f"  apiserver writes per product: {per_product:.1f} ("
        + ", ".join(
            f"{what} {count / n:.2f}" for what, count in by_kind.most_common() if count >= n / 20
        )
        + ")"
    )
    print(
        f"  limit: the same {raw_count} writes raw took {raw_seconds:.1f} s "
        f"({raw_count / raw_seconds:.0f} writes/s = {limit:.1f} products/s); "
        f"operator at {rate / limit:.0%} of it"
    )
    print(
        f"  the same kinds of writes replayed without the operator (product, finalizer patch, "
        f"status, six children, event) took {replay_seconds:.1f} s ({replay_rate:.1f} "
        f"products/s); operator at {rate / replay_rate:.0%} of it"
    )
    print(
        f"  policy edit with no result change: {noop_seconds:.1f} s for {n} products, "
        f"{noop_writes:.0f} product writes"
    )
    print(f"  policy edit flipping every product: {flip_seconds:.1f} s")
    print(
        f"  operator peak RSS: {rss_burst:.0f} MiB after the burst, "
        f"{operator.peak_rss_mib:.0f} MiB overall; {settled_rss:.0f} MiB at the end"
    )
    targets = [
        ("30 products/s", rate >= 30),
        ("within 2x of the limit", rate * 2 >= limit),
        ("re-evaluation < 30 s", noop_seconds < 30 and flip_seconds < 30),
        ("zero writes when nothing changed", noop_writes == 0),
        (
            f"RSS < {150 if n <= 1000 else 300} MiB",
            operator.peak_rss_mib < (150 if n <= 1000 else 300),
        ),
    ]
    print("  targets: " + ", ".join(f"{t} {'met' if ok else 'NOT met'}" for t, ok in targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
