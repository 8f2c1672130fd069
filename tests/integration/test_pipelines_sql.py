"""The live mesh's real pipelines against a real PostgreSQL, without a node: every live
product provisioned from its plan, the sources seeded as `make demo` seeds them, and
each product's `datamesh-sql` run as its pod would run it (its contract file, its own
login, its domain's source login), upstreams first. The node's end-to-end test runs the
same pipelines as pods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from datamesh.api.models import DataProduct
from datamesh.controller import provisioning
from datamesh.controller.products import consumers
from datamesh.controller.warehouses import WarehouseConnection
from datamesh.dataplane.warehouse.plan import plan
from datamesh.dataplane.warehouse.postgres import PostgresWarehouse
from datamesh.dataplane.warehouse.statements import changes
from datamesh.governance.lineage import Graph, GraphLookup
from localcluster import livemesh
from localcluster.warehouse import Warehouse
from tests.support.live_repo import live_products
from tests.support.warehouse import admin, running_warehouse, state

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    for warehouse in running_warehouse(tmp_path_factory.mktemp("cluster")):
        livemesh.seed_sources(warehouse)
        yield warehouse


def connection(server: Warehouse) -> WarehouseConnection:
    secret = livemesh.warehouse_secret(server, HOST, "datamesh-system")["stringData"]
    st = state(server)
    return WarehouseConnection(
        name="main",
        dsn=secret["dsn"],
        credentials_key=secret["credentials-key"].encode(),
        host=HOST,
        port=str(st.port),
        database="warehouse",
    )


@pytest.fixture(scope="module")
def mesh(server: Warehouse) -> dict[str, DataProduct]:
    """Every live product provisioned as the operator provisions it."""
    documents = live_products()
    products = {}
    for doc in documents:
        product = DataProduct.model_validate(doc)
        products[product.ref] = product
    lookup = GraphLookup(Graph.of(products.values()), products)
    conn = connection(server)
    engine = PostgresWarehouse(conn.dsn)
    for product in products.values():
        desired = plan(product, consumers(product, lookup))
        out = changes(desired, engine.observe(desired))
        assert out.conflicts == []
        engine.apply(out.statements)
        engine.set_password(desired.pipeline_role, conn.password(desired.pipeline_role))
    return products


def run_pipeline(
    server: Warehouse, product: DataProduct, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """``datamesh-sql`` with what its pod gets: the contract file and libpq variables."""
    contract = tmp_path / f"{product.metadata.name}.yaml"
    contract.write_text(yaml.safe_dump(provisioning.contract_document(product)))
    job = product.spec.pipeline
    assert job is not None and job.sql is not None
    names = plan(product)
    env = {
        "PATH": os.environ["PATH"],
        "DATAMESH_SQL": job.sql,
        **connection(server).libpq_settings(names.pipeline_role),
    }
    if job.source_secret:
        source = livemesh.source_secrets(server, HOST, [product.metadata.namespace])[0]
        env |= {f"SOURCE_{k}": v for k, v in source["stringData"].items()}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "datamesh.dataplane.sql_runner",
            "--contract",
            str(contract),
            "--termination-log",
            str(contract.with_suffix(".report")),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_live_pipeline_fills_its_table_upstreams_first(
    server: Warehouse, mesh: dict[str, DataProduct], tmp_path: Path
) -> None:
    waves = livemesh.pipeline_waves(live_products())
    for wave in waves:
        for ns, name in wave:
            product = next(p for p in mesh.values() if p.metadata.name == name)
            proc = run_pipeline(server, product, tmp_path)
            assert proc.returncode == 0, f"{ns}/{name}: {proc.stderr}"
    counts = {
        f"{schema}.{table}": rows for schema, table, rows in admin(server, livemesh.ROW_COUNTS)
    }
    for product in mesh.values():
        for table in plan(product).tables:
            assert counts[f"{table.schema}.{table.name}"] > 0, f"{table.name} is empty"
    # Loaded from the sources, all of them: thousands of rows, not three.
    source_lines = int(
        server.psql(livemesh.SOURCE_DATABASE, "-tA", "-c", "SELECT count(*) FROM shop.order_lines")
    )
    assert counts["sales.orders__warehouse_v1"] == source_lines >= 6000
    (total,) = admin(server, "SELECT sum(quantity * unit_price) FROM sales.orders__warehouse_v1")[0]
    (revenue,) = admin(server, "SELECT sum(revenue) FROM sales.revenue_daily__warehouse_v1")[0]
    assert revenue == total and isinstance(total, Decimal) and total > 0
    (orders,) = admin(
        server, "SELECT count(DISTINCT (order_id, currency)) FROM sales.orders__warehouse_v1"
    )[0]
    (counted,) = admin(server, "SELECT sum(order_count) FROM sales.revenue_daily__warehouse_v1")[0]
    assert counted == orders
    # Each run checked its table right after loading it: the seeded defect (three order
    # lines in a currency the contract does not allow) is the only failing check.
    reports = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.report")}
    assert set(reports) == {p.metadata.name for p in mesh.values()}
    failed = {
        (name, c["name"]): c
        for name, report in reports.items()
        for c in report["checks"]
        if c["verdict"] == "Failed"
    }
    assert list(failed) == [("orders", "currency-allowed-values")]
    sample = failed[("orders", "currency-allowed-values")]["sample"]
    assert {(row["order_id"], row["currency"]) for row in sample} == {
        ("O000100", "euro"),
        ("O000200", "euro"),
        ("O000300", "euro"),
    }


def test_a_pipeline_reading_an_ungranted_upstream_fails_and_changes_nothing(
    server: Warehouse, mesh: dict[str, DataProduct], tmp_path: Path
) -> None:
    campaigns = mesh["marketing/campaigns"]
    before = admin(server, "SELECT count(*) FROM marketing.campaigns__warehouse_v1")
    job = campaigns.spec.pipeline
    assert job is not None
    # campaigns reads nothing, so nothing of finance is granted to it.
    sneaky = campaigns.model_copy(
        update={
            "spec": campaigns.spec.model_copy(
                update={
                    "pipeline": job.model_copy(
                        update={
                            "sql": "SELECT entry_id AS campaign_id "
                            "FROM finance.general_ledger__warehouse_v1",
                            "source_secret": None,
                        }
                    )
                }
            )
        }
    )
    proc = run_pipeline(server, sneaky, tmp_path)
    assert proc.returncode == 1 and "permission denied" in proc.stderr
    assert admin(server, "SELECT count(*) FROM marketing.campaigns__warehouse_v1") == before
