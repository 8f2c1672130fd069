"""The live mesh on a node with its warehouse, as `make demo` runs it: the operator (the
chart's pod) provisions every live product's table, each product's pipeline pod loads or
computes its rows as the product's own role, derived products equal what their upstreams
say, a major version gets a new table beside the old one, and a killed operator or a
restarted warehouse converges to the same objects.

One cluster with a node and a warehouse for the module (the machine has one node slot);
the tests run in file order."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import localcluster
from datamesh.api.constants import DOMAIN_LABEL
from localcluster import livemesh
from localcluster import node as node_module
from localcluster.common import NODE_ADDRESS
from localcluster.warehouse import Warehouse
from tests.support import ROOT
from tests.support.chart import NAMESPACE, RELEASE, install_local_image
from tests.support.cluster import Cluster
from tests.support.factories import dump, product_dict
from tests.support.kube import wait_job_complete
from tests.support.live_repo import apply_live, live_products
from tests.support.waiting import wait_for
from tests.support.warehouse import admin

OPERATOR_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}-datamesh-operator"


@pytest.fixture(scope="module")
def mesh() -> Iterator[tuple[Cluster, Warehouse]]:
    if reason := node_module.preflight():
        pytest.fail(f"this machine cannot run the node: {reason}")
    directory = localcluster.cache_dir() / "test-clusters" / f"mesh-{os.getpid()}"
    archives = localcluster.build_images()
    try:
        with localcluster.running_cluster(directory, node=True, warehouse=True) as state:
            cluster = Cluster(
                state.kubeconfig,
                str(Path(state.bin_dir) / "kubectl"),
                localcluster.LocalCluster(directory, node=True),
            )
            warehouse = Warehouse(directory)
            livemesh.seed_sources(warehouse)
            cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
            namespaces = sorted(ROOT.glob("*/*/namespace.yaml"))
            for ns in namespaces:
                cluster.kubectl("apply", "-f", str(ns))
            domains = [p.parent.name for p in namespaces if p.parent.parent.name == "products"]
            for secret in [
                livemesh.warehouse_secret(warehouse, NODE_ADDRESS, NAMESPACE),
                *livemesh.source_secrets(warehouse, NODE_ADDRESS, domains),
            ]:
                cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
            image_id = (archives / "operator.tar.id").read_text().strip()
            install_local_image(
                cluster,
                localcluster.image_names()["operator"],
                image_id,
                *livemesh.helm_values(),
            )
            apply_live(cluster)
            yield cluster, warehouse
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def products(cluster: Cluster, namespace: str | None = None) -> list[dict[str, Any]]:
    scope = ["-n", namespace] if namespace else ["-A"]
    out = cluster.kubectl("get", "dataproducts", *scope, "-o", "json").stdout
    return list(json.loads(out)["items"])


def warehouse_ready(item: dict[str, Any]) -> bool:
    return any(
        c["type"] == "WarehouseReady" and c["status"] == "True"
        for c in item.get("status", {}).get("conditions") or []
    )


def run_job(cluster: Cluster, namespace: str, product: str, job: str) -> None:
    cluster.kubectl("create", "job", f"--from=cronjob/{product}-pipeline", job, "-n", namespace)


def wait_jobs(cluster: Cluster, jobs: list[tuple[str, str]], timeout: int = 240) -> None:
    for ns, job in jobs:
        wait_job_complete(cluster, ns, job, timeout)


def test_every_live_pipeline_pod_fills_its_table_from_its_upstreams(
    mesh: tuple[Cluster, Warehouse],
) -> None:
    cluster, warehouse = mesh
    wait_for(
        lambda: (items := products(cluster)) and all(warehouse_ready(i) for i in items),
        timeout=180,
        what="every live product to be provisioned in the warehouse",
    )
    stamp = time.strftime("%H%M%S")
    started = time.monotonic()
    for wave in livemesh.pipeline_waves(live_products()):
        jobs = [(ns, f"{name}-e2e-{stamp}") for ns, name in wave]
        for (ns, name), (_, job) in zip(wave, jobs, strict=True):
            run_job(cluster, ns, name, job)
        wait_jobs(cluster, jobs)
    print(f"live mesh pipelines: {time.monotonic() - started:.1f} s")
    counts = {f"{s}.{t}": n for s, t, n in admin(warehouse, livemesh.ROW_COUNTS)}
    for item in products(cluster):
        for table in item["status"]["warehouse"]["tables"]:
            assert counts[table] > 0, f"{table} has no rows after its pipeline ran"
    assert counts["sales.orders__warehouse_v1"] >= 6000
    ((orders_total, revenue_total),) = admin(
        warehouse,
        "SELECT (SELECT sum(quantity * unit_price) FROM sales.orders__warehouse_v1), "
        "(SELECT sum(revenue) FROM sales.revenue_daily__warehouse_v1)",
    )
    assert revenue_total == orders_total > 0

    # Each run checked its table; the operator read each report from its pod.
    def reported() -> list[dict[str, Any]] | None:
        items = products(cluster)
        done = all(
            (i.get("status", {}).get("quality") or {}).get("job")
            == f"{i['metadata']['name']}-e2e-{stamp}"
            for i in items
        )
        return items if done else None

    finished = time.monotonic()
    items = wait_for(reported, timeout=120, what="every product's quality report in its status")
    # For the record: from the last run's Job complete (as kubectl wait saw it) to every
    # verdict on its product.
    print(f"verdicts on the products {time.monotonic() - finished:.1f} s after the last run")
    by_name = {i["metadata"]["name"]: i for i in items}
    orders = by_name.pop("orders")["status"]
    conditions = {c["type"]: (c["status"], c["reason"]) for c in orders["conditions"]}
    assert orders["phase"] == "Degraded"
    assert conditions["QualityPassed"] == ("False", "CheckFailed")
    assert conditions["SLAMet"] == ("True", "Met")
    failed = next(c for c in orders["quality"]["checks"] if c["verdict"] == "Failed")
    assert (
        failed["name"] == "currency-allowed-values" and '"currency":"euro"' in failed["sample"][0]
    )
    for name, item in by_name.items():
        cond = {c["type"]: c["status"] for c in item["status"]["conditions"]}
        assert cond["QualityPassed"] == "True" and item["status"]["phase"] == "Ready", name
    table = cluster.kubectl("get", "dataproducts", "-n", "sales").stdout
    assert any(line.startswith("orders ") and "1 failed" in line for line in table.splitlines())

    # The pipelines' own roles did the writing: the CronJob's pods got the login Secret.
    cron = json.loads(
        cluster.kubectl("get", "cronjob", "orders-pipeline", "-n", "sales", "-o", "json").stdout
    )
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "orders-warehouse"}} in container["envFrom"]


def test_the_operator_may_write_pipeline_logins_but_read_no_secret(
    mesh: tuple[Cluster, Warehouse],
) -> None:
    cluster, _ = mesh

    def can(verb: str, namespace: str, account: str = OPERATOR_ACCOUNT) -> str:
        proc = cluster.kubectl(
            "auth", "can-i", verb, "secrets", "-n", namespace, f"--as={account}", check=False
        )
        return proc.stdout.strip()

    for verb in ("get", "list", "watch"):
        assert can(verb, "sales") == "no", verb
        assert can(verb, NAMESPACE) == "no", verb
    assert can("create", "sales") == "yes" and can("patch", "sales") == "yes"
    pipeline = "system:serviceaccount:sales:orders-pipeline"
    assert can("get", "sales", pipeline) == "no"


def checksum(warehouse: Warehouse, table: str) -> tuple[Any, ...]:
    return admin(
        warehouse,
        f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} AS t",
    )[0]


def sla_met(cluster: Cluster, namespace: str, name: str) -> tuple[str, str] | None:
    item = json.loads(
        cluster.kubectl("get", "dataproduct", name, "-n", namespace, "-o", "json").stdout
    )
    for c in item.get("status", {}).get("conditions") or []:
        if c["type"] == "SLAMet":
            return c["status"], c["reason"]
    return None


def test_a_pipeline_that_stops_breaks_the_sla_after_its_target_and_a_good_run_heals_it(
    mesh: tuple[Cluster, Warehouse],
) -> None:
    """A 45 s freshness target: met after a run, broken once the target has passed with
    no new run (the operator's resync notices, every 30 s here), met again after one."""
    cluster, _ = mesh
    doc = product_dict(
        outputPorts=[{"name": "rows", "type": "table", "location": "rows"}],
        schema={
            "format": "parquet",
            "fields": [
                {
                    "name": "tick",
                    "type": "integer",
                    "primaryKey": True,
                    "nullable": False,
                    "description": "A tick.",
                }
            ],
        },
        sla={"freshness": "45s", "availability": 99.5},
        pipeline={
            "schedule": "0 0 1 1 *",
            "image": localcluster.image_names()["pipeline"],
            "command": ["datamesh-sql"],
            "sql": "SELECT tick FROM generate_series(1, 10) AS tick",
        },
    )
    doc["metadata"].update(name="ticker", namespace="sales", labels={})
    doc["spec"]["domain"] = "sales"
    cluster.kubectl("apply", "-f", "-", input=dump(doc))
    wait_for(
        lambda: sla_met(cluster, "sales", "ticker") == ("Unknown", "NoSuccessfulRun"),
        timeout=60,
        what="the product provisioned, with no run yet",
    )
    run_job(cluster, "sales", "ticker", "ticker-1")
    wait_jobs(cluster, [("sales", "ticker-1")])
    wait_for(lambda: sla_met(cluster, "sales", "ticker") == ("True", "Met"), 60, "SLA met")
    # No new run: the target passes.
    wait_for(
        lambda: sla_met(cluster, "sales", "ticker") == ("False", "Stale"),
        timeout=150,
        what="the SLA broken once 45 s passed without a run",
    )
    run_job(cluster, "sales", "ticker", "ticker-2")
    wait_jobs(cluster, [("sales", "ticker-2")])
    wait_for(lambda: sla_met(cluster, "sales", "ticker") == ("True", "Met"), 60, "SLA met again")
    # Each move of the SLA was an Event on the product.
    events = cluster.kubectl(
        "get", "events", "-n", "sales", "--field-selector", "involvedObject.name=ticker",
        "-o", "jsonpath={.items[*].reason}",
    ).stdout.split()  # fmt: skip
    assert "Stale" in events and "SLAMet" in events


def test_a_major_version_gets_a_new_table_beside_the_old_one_whose_rows_stay(
    mesh: tuple[Cluster, Warehouse],
) -> None:
    cluster, warehouse = mesh
    v1 = "sales.orders__warehouse_v1"
    before = checksum(warehouse, v1)
    cluster.kubectl(
        "patch", "dataproduct", "orders", "-n", "sales", "--type=merge",
        "-p", json.dumps({"spec": {"version": "2.0.0"}}),
    )  # fmt: skip
    wait_for(
        lambda: (
            next(i for i in products(cluster, "sales") if i["metadata"]["name"] == "orders")
            .get("status", {})
            .get("warehouse", {})
            .get("tables")
            == ["sales.orders__warehouse_v2"]
        ),
        timeout=60,
        what="the v2 table in the product's status",
    )
    run_job(cluster, "sales", "orders", "orders-v2")
    wait_jobs(cluster, [("sales", "orders-v2")])
    assert checksum(warehouse, v1) == before
    assert checksum(warehouse, "sales.orders__warehouse_v2")[0] == before[0]


def test_a_killed_operator_and_a_restarted_warehouse_converge_without_duplicates(
    mesh: tuple[Cluster, Warehouse],
) -> None:
    cluster, warehouse = mesh
    ns = "burst"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, f"{DOMAIN_LABEL}={ns}")
    names = [f"p{i:02d}" for i in range(40)]
    docs = []
    for name in names:
        doc = product_dict(
            outputPorts=[{"name": "rows", "type": "table", "location": "rows"}],
            access={"readers": {"domains": ["sales"]}},
        )
        doc["metadata"].update(name=name, namespace=ns, labels={})
        doc["spec"]["domain"] = ns
        docs.append(dump(doc))
    cluster.kubectl("apply", "-f", "-", input="---\n".join(docs))
    # Mid-provisioning: the operator's pod is killed, and the warehouse restarts.
    wait_for(
        lambda: (
            admin(warehouse, f"SELECT count(*) FROM pg_roles WHERE rolname LIKE 'dmp_{ns}%'")[0][0]
            > 0
        ),
        timeout=60,
        what="provisioning to start",
    )
    cluster.kubectl(
        "delete", "pod", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}",
        "--grace-period=0", "--force", "--wait=false",
    )  # fmt: skip
    warehouse.halt()
    warehouse.start()
    wait_for(
        lambda: (
            (items := products(cluster, ns))
            and len(items) == len(names)
            and all(warehouse_ready(i) for i in items)
        ),
        timeout=240,
        what="every product of the burst to be provisioned",
    )
    ((roles, tables, grants, distinct_grants),) = admin(
        warehouse,
        f"""
        SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'dmp\\_{ns}\\_\\_%'),
               (SELECT count(*) FROM pg_tables WHERE schemaname = '{ns}'),
               (SELECT count(*) FROM pg_class c, aclexplode(c.relacl) g
                WHERE c.relnamespace = '{ns}'::regnamespace AND c.relkind = 'r'),
               (SELECT count(*) FROM (SELECT DISTINCT c.oid, g.grantee, g.privilege_type
                FROM pg_class c, aclexplode(c.relacl) g
                WHERE c.relnamespace = '{ns}'::regnamespace AND c.relkind = 'r') d)
        """,
    )
    assert (roles, tables) == (len(names), len(names))
    assert grants == distinct_grants
    # Per table: the admin owner's 7 privileges, the writer's 5, the reader's SELECT.
    assert grants == len(names) * (7 + 5 + 1)
