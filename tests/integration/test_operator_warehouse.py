"""The operator provisioning real tables in a real PostgreSQL (started as `make
cluster-up` starts it): the product's status names them, its pipeline's login works and
reaches only what it may, nothing is sent when nothing changed (measured with the
server's own statement statistics across resyncs and a restart), a warehouse outage is a
condition that heals, and deletion keeps or drops the tables as the product says."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from datamesh.api.constants import DOMAIN_LABEL
from localcluster.warehouse import Warehouse
from tests.support.cluster import Cluster
from tests.support.factories import dump, product_dict
from tests.support.kube import get
from tests.support.operator import Operator
from tests.support.waiting import wait_for
from tests.support.warehouse import admin, running_warehouse, state

KEY = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    yield from running_warehouse(tmp_path_factory.mktemp("cluster"))


@pytest.fixture(scope="module")
def op(
    crds: Cluster, warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    operator = Operator(
        crds,
        tmp_path_factory.mktemp("operator"),
        resync_seconds="2",
        warehouses="main",
        warehouse_main_dsn=state(warehouse).dsn() + "&connect_timeout=3",
        warehouse_main_credentials_key=KEY,
        # No drift pass: this module proves that nothing else reads the warehouse.
        warehouse_drift_seconds="0",
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def domain_namespace(cluster: Cluster) -> str:
    name = f"w-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"{DOMAIN_LABEL}={name}")
    return name


def apply(cluster: Cluster, namespace: str, name: str, **spec: Any) -> None:
    doc = product_dict(
        outputPorts=[{"name": "orders", "type": "table", "location": "orders"}], **spec
    )
    doc["metadata"].update(name=name, namespace=namespace, labels={})
    doc["spec"]["domain"] = namespace
    cluster.kubectl("apply", "-f", "-", input=dump(doc))


def status_of(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return ((get(cluster, "dataproduct", namespace, name) or {}).get("status")) or {}


def warehouse_condition(cluster: Cluster, namespace: str, name: str) -> tuple[str, str] | None:
    for c in status_of(cluster, namespace, name).get("conditions") or []:
        if c["type"] == "WarehouseReady":
            return c["status"], c["reason"]
    return None


def wait_provisioned(
    cluster: Cluster, namespace: str, name: str, timeout: float = 60
) -> dict[str, Any]:
    wait_for(
        lambda: warehouse_condition(cluster, namespace, name) == ("True", "Provisioned"),
        timeout=timeout,
        what=f"{namespace}/{name} to be provisioned in the warehouse",
    )
    return status_of(cluster, namespace, name)


def pipeline_login(cluster: Cluster, namespace: str, product: str) -> str:
    """The connection the product's pipeline pods get, read from its Secret (as the
    kubelet would; the operator itself cannot read it)."""
    secret = get(cluster, "secret", namespace, f"{product}-warehouse")
    assert secret is not None, "the pipeline's login Secret is missing"
    env = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return psycopg.conninfo.make_conninfo(
        host=env["PGHOST"],
        port=env["PGPORT"],
        dbname=env["PGDATABASE"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
    )


def run_as(dsn: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement.encode())
        return cur.fetchall() if cur.description else []


def test_a_product_gets_its_table_and_a_login_that_reaches_only_what_it_may(
    op: Operator, warehouse: Warehouse
) -> None:
    cluster = op.cluster
    sales, finance = domain_namespace(cluster), domain_namespace(cluster)
    job = {"schedule": "0 * * * *", "image": "img:1", "suspend": True}
    apply(cluster, sales, "orders", access={"readers": {"domains": [finance]}}, pipeline=job)
    apply(
        cluster,
        finance,
        "receivables",
        inputPorts=[{"product": "orders", "domain": sales}],
    )
    st = wait_provisioned(cluster, sales, "orders")
    assert op.metric_sum("datamesh_warehouse_statements_total", warehouse="main") > 0
    schema = sales.replace("-", "_")
    assert st["warehouse"]["tables"] == [f"{schema}.orders__orders_v1"]
    assert st["warehouse"]["role"] == f"dmp_{schema}__orders"
    assert st["children"]["warehouseSecret"] == "orders-warehouse"
    wait_provisioned(cluster, finance, "receivables")
    # The CronJob hands the login to its pods; the operator never read the Secret.
    cron = get(cluster, "cronjob", sales, "orders-pipeline")
    assert cron is not None
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "orders-warehouse"}}]

    orders = f'"{schema}"."orders__orders_v1"'
    producer = pipeline_login(cluster, sales, "orders")
    run_as(producer, f"INSERT INTO {orders} (order_id, amount) VALUES ('o-1', 12.5)")
    consumer = pipeline_login(cluster, finance, "receivables")
    assert run_as(consumer, f"SELECT order_id FROM {orders}") == [("o-1",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_as(consumer, f"DELETE FROM {orders}")
    receivables = f'"{finance.replace("-", "_")}"."receivables__orders_v1"'
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_as(producer, f"SELECT * FROM {receivables}")

    # The producer stops granting the finance domain: the consumer is refused by the
    # access rule and its pipeline's read is revoked in the warehouse.
    apply(cluster, sales, "orders", access={"readers": {"domains": []}}, pipeline=job)
    wait_for(
        lambda: (
            not admin(
                warehouse,
                "SELECT has_table_privilege(%s, %s, 'SELECT')",
                f"dmp_{finance.replace('-', '_')}__receivables",
                f"{schema}.orders__orders_v1",
            )[0][0]
        ),
        timeout=60,
        what="the consumer's grant to be revoked",
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_as(consumer, f"SELECT order_id FROM {orders}")


def statements_sent(warehouse: Warehouse) -> list[tuple[str, int]]:
    """What the server ran since the last reset, but for this test's own queries."""
    return admin(
        warehouse,
        "SELECT query, calls FROM pg_stat_statements "
        "WHERE query NOT LIKE '%%pg_stat_statements%%' AND calls > 0",
    )


def test_nothing_is_sent_to_the_warehouse_across_resyncs_and_a_restart(
    op: Operator, warehouse: Warehouse
) -> None:
    cluster = op.cluster
    ns = domain_namespace(cluster)
    for name in ("events", "sessions", "clicks"):
        apply(cluster, ns, name)
    for name in ("events", "sessions", "clicks"):
        wait_provisioned(cluster, ns, name)
    admin(warehouse, "SELECT pg_stat_statements_reset()")
    resyncs = op.metric_sum("datamesh_reconciles_total", trigger="resync")
    # Every product is reconciled by the resync (every 2 s) at least twice more.
    wait_for(
        lambda: op.metric_sum("datamesh_reconciles_total", trigger="resync") >= resyncs + 6 * 2,
        timeout=60,
        what="two more resyncs",
    )
    op.stop()
    op.start()
    wait_for(
        lambda: (
            op.metric_sum("datamesh_reconciles_total", trigger="resume") >= 3
            and op.metric_sum("datamesh_reconciles_total", trigger="resync") >= 3
        ),
        timeout=60,
        what="the restarted operator to reconcile every product",
    )
    assert statements_sent(warehouse) == []
    # The check can fail: a changed product is sent its statements.
    apply(cluster, ns, "events", description="Events, now with a comment that changed.")
    wait_for(lambda: statements_sent(warehouse), timeout=30, what="the change to be sent")


def test_an_outage_is_a_condition_that_heals(op: Operator, warehouse: Warehouse) -> None:
    cluster = op.cluster
    ns = domain_namespace(cluster)
    warehouse.halt()
    try:
        apply(cluster, ns, "ledger")
        wait_for(
            lambda: warehouse_condition(cluster, ns, "ledger") == ("False", "WarehouseUnavailable"),
            timeout=60,
            what="the outage to be reported",
        )
        st = status_of(cluster, ns, "ledger")
        assert st["phase"] == "Provisioning" and op.alive()
    finally:
        warehouse.start()
    # Retried with backoff, not left for the next resync or event.
    wait_provisioned(cluster, ns, "ledger", timeout=90)
    assert status_of(cluster, ns, "ledger")["phase"] == "Ready"


def table_exists(warehouse: Warehouse, qualified: str) -> bool:
    return bool(admin(warehouse, "SELECT to_regclass(%s) IS NOT NULL", qualified)[0][0])


def test_delete_drops_the_tables_and_retain_keeps_rows_for_the_product_that_returns(
    op: Operator, warehouse: Warehouse, tmp_path: Path
) -> None:
    cluster = op.cluster
    ns = domain_namespace(cluster)
    schema = ns.replace("-", "_")
    apply(cluster, ns, "scratch", deletionPolicy="Delete")
    apply(cluster, ns, "kept", deletionPolicy="Retain")
    wait_provisioned(cluster, ns, "scratch")
    wait_provisioned(cluster, ns, "kept")
    kept = f"{schema}.kept__orders_v1"
    admin(warehouse, f"INSERT INTO {kept} (order_id, amount) VALUES ('k-1', 1), ('k-2', 2)")

    cluster.kubectl("delete", "dataproduct", "scratch", "-n", ns, "--timeout=60s")
    assert not table_exists(warehouse, f"{schema}.scratch__orders_v1")
    assert not admin(
        warehouse, "SELECT 1 FROM pg_roles WHERE rolname = %s", f"dmp_{schema}__scratch"
    )

    # Pruned while the operator is down: the finalizer holds the product until it is back.
    op.stop()
    cluster.kubectl("delete", "dataproduct", "kept", "-n", ns, "--wait=false")
    op.start()
    wait_for(lambda: get(cluster, "dataproduct", ns, "kept") is None, timeout=60, what="deletion")
    assert admin(warehouse, f"SELECT count(*) FROM {kept}") == [(2,)]
    apply(cluster, ns, "kept", deletionPolicy="Retain")
    st = wait_provisioned(cluster, ns, "kept")
    assert st["warehouse"]["tables"] == [kept]
    assert admin(warehouse, f"SELECT order_id FROM {kept} ORDER BY 1") == [("k-1",), ("k-2",)]
    # Re-adopted, not re-created: the login works again for the returning product.
    assert run_as(pipeline_login(cluster, ns, "kept"), f"SELECT count(*) FROM {kept}") == [(2,)]
