"""Quality checks on a real table in a real PostgreSQL, as the product's own role: bad
data fails the right check with its failing rows, fixed data passes, a check that writes
is refused before it runs and by the read-only transaction, a slow one hits its time
limit, and a warehouse that is gone is Unknown, never Failed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from datamesh.api.constants import API_VERSION
from datamesh.api.models import DataProduct
from datamesh.dataplane.quality.plan import PlannedCheck, plan
from datamesh.dataplane.quality.run import FAILED, PASSED, UNKNOWN, CheckResult, run_checks
from datamesh.dataplane.warehouse import plan as warehouse_plan
from datamesh.dataplane.warehouse.postgres import PostgresWarehouse
from datamesh.dataplane.warehouse.statements import changes
from datamesh.meshctl import odcs
from datamesh.meshctl.main import main as meshctl
from localcluster.warehouse import Warehouse
from tests.support.datacontract import cli as datacontract_cli
from tests.support.factories import product
from tests.support.warehouse import admin, running_warehouse, state

FIELDS = [
    {"name": "order_id", "type": "string", "primaryKey": True, "nullable": False},
    {"name": "customer_id", "type": "string"},
    {
        "name": "currency",
        "type": "string",
        "constraints": {"allowedValues": ["EUR", "USD"]},
    },
    {"name": "quantity", "type": "integer", "constraints": {"minimum": 1, "maximum": 100}},
    {"name": "ordered_at", "type": "timestamp"},
]
CHECKS = [
    {"name": "customer-set", "rule": "not_null", "column": "customer_id"},
    {"name": "customer-once", "rule": "unique", "column": "customer_id", "severity": "warning"},
    {"name": "enough-rows", "rule": "row_count", "minimum": 3},
    {"name": "fresh", "rule": "freshness", "column": "ordered_at"},
    {
        "name": "mostly-euro",
        "sql": "SELECT count(*) FILTER (WHERE currency = 'EUR')::float / count(*) FROM {{ table }}",
        "threshold": 0.5,
    },
]
GOOD = [
    ("o1", "c1", "EUR", 1, "now()"),
    ("o2", "c2", "EUR", 5, "now()"),
    ("o3", "c3", "USD", 100, "now() - interval '5 minutes'"),
]
BAD = [
    ("o1", "c1", "EUR", 1, "now() - interval '3 hours'"),
    ("o2", None, "EUR", 0, "now() - interval '3 hours'"),
    ("o3", "c1", "euro", 500, "now() - interval '3 hours'"),
    ("o4", "c1", "GBP", 7, "now() - interval '3 hours'"),
]


def orders(checks: list[dict[str, Any]] = CHECKS) -> DataProduct:
    return product(
        outputPorts=[{"name": "orders", "type": "table", "location": "x"}],
        schema={"format": "parquet", "fields": FIELDS},
        qualityChecks=checks,
        sla={"freshness": "1h", "availability": 99.5},
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    for server in running_warehouse(tmp_path_factory.mktemp("cluster")):
        engine = PostgresWarehouse(state(server).dsn())
        desired = warehouse_plan.plan(orders())
        engine.apply(changes(desired, engine.observe(desired)).statements)
        engine.set_password(desired.pipeline_role, "pipeline-password")
        admin(server, "CREATE SEQUENCE sales.counter")
        admin(server, f'GRANT USAGE ON SEQUENCE sales.counter TO "{desired.pipeline_role}"')
        yield server


def pipeline_dsn(server: Warehouse) -> str:
    return (
        state(server)
        .dsn()
        .replace(f"datamesh_admin:{state(server).password}", "dmp_sales__orders:pipeline-password")
    )


def load(server: Warehouse, rows: list[tuple[Any, ...]]) -> None:
    values = ", ".join(
        "("
        + ", ".join("NULL" if v is None else v if "now()" in str(v) else repr(v) for v in r)
        + ")"
        for r in rows
    )
    admin(server, "TRUNCATE sales.orders__orders_v1")
    admin(server, f"INSERT INTO sales.orders__orders_v1 VALUES {values}")


def verdicts(server: Warehouse, checks: list[PlannedCheck], **kw: Any) -> dict[str, CheckResult]:
    with psycopg.connect(pipeline_dsn(server), autocommit=True) as conn:
        return {r.name: r for r in run_checks(conn, checks, **kw)}


def test_good_data_passes_every_check(warehouse: Warehouse) -> None:
    load(warehouse, GOOD)
    results = verdicts(warehouse, plan(orders()))
    assert {n: r.verdict for n, r in results.items()} == {
        "customer-set": PASSED,
        "customer-once": PASSED,
        "enough-rows": PASSED,
        "fresh": PASSED,
        "mostly-euro": PASSED,
        "currency-allowed-values": PASSED,
        "quantity-range": PASSED,
    }
    assert results["enough-rows"].value == 3


def test_bad_data_fails_the_right_checks_with_their_failing_rows(warehouse: Warehouse) -> None:
    load(warehouse, BAD)
    results = verdicts(warehouse, plan(orders()))
    assert {n for n, r in results.items() if r.verdict == FAILED} == {
        "customer-set",
        "customer-once",
        "fresh",
        "currency-allowed-values",
        "quantity-range",
    }
    assert results["customer-set"].value == pytest.approx(0.75)
    assert results["customer-set"].sample == [{"order_id": "o2", "customer_id": None}]
    assert results["customer-once"].sample == [{"customer_id": "c1", "occurrences": 3}]
    assert results["currency-allowed-values"].sample == [
        {"order_id": "o3", "currency": "euro"},
        {"order_id": "o4", "currency": "GBP"},
    ]
    assert {r["order_id"] for r in results["quantity-range"].sample} == {"o2", "o3"}
    assert 3 * 3600 - 60 < (results["fresh"].value or 0) < 3 * 3600 + 600
    assert "expected <= 3600 s" in results["fresh"].message
    assert results["mostly-euro"].verdict == PASSED  # 2 of 4: at the threshold


def test_a_check_that_writes_is_refused_before_it_runs_and_by_the_transaction(
    warehouse: Warehouse,
) -> None:
    load(warehouse, GOOD)
    writes = [
        {"name": "sneaky-delete", "sql": "DELETE FROM {{ table }}"},
        {"name": "two-statements", "sql": "SELECT 1; DELETE FROM {{ table }}"},
        {"name": "ddl", "sql": "DROP TABLE {{ table }}"},
        {
            "name": "cte-write",
            "sql": "WITH d AS (DELETE FROM {{ table }} RETURNING 1) SELECT count(*) FROM d",
        },
    ]
    results = verdicts(warehouse, plan(orders(writes)))
    for name in ("sneaky-delete", "two-statements", "ddl", "cte-write"):
        result = results[name]
        assert result.verdict == UNKNOWN, result
        assert "only reads" in result.message or "one statement" in result.message, result
    # Past the scan, the read-only transaction still refuses a write.
    sneaky = PlannedCheck(
        name="sneaky",
        rule="sql",
        severity="error",
        # nextval() writes, and no keyword of the scan shows it.
        metric="SELECT count(*) FROM (SELECT nextval('sales.counter')) AS written",
        threshold=1.0,
    )
    (result,) = verdicts(warehouse, [sneaky]).values()
    assert result.verdict == UNKNOWN and "read-only transaction" in result.message
    assert admin(warehouse, "SELECT count(*) FROM sales.orders__orders_v1") == [(3,)]


def test_a_slow_check_hits_its_time_limit_and_is_unknown(warehouse: Warehouse) -> None:
    slow = PlannedCheck(
        name="slow", rule="sql", severity="error", metric="SELECT 1 FROM pg_sleep(5)", threshold=1
    )
    (result,) = verdicts(warehouse, [slow], timeout_ms=300).values()
    assert result.verdict == UNKNOWN and "statement timeout" in result.message


def test_a_warehouse_that_is_gone_makes_every_check_unknown(warehouse: Warehouse) -> None:
    load(warehouse, GOOD)
    with psycopg.connect(pipeline_dsn(warehouse), autocommit=True) as conn:
        warehouse.halt()
        try:
            results = run_checks(conn, plan(orders()))
        finally:
            warehouse.start()
    assert {r.verdict for r in results} == {UNKNOWN}
    assert all("could not be reached" in r.message for r in results)
    # Back: the same checks pass again.
    assert {r.verdict for r in verdicts(warehouse, plan(orders())).values()} == {PASSED}


def repo_with(tmp_path: Path, item: DataProduct) -> Path:
    folder = tmp_path / "repo" / "products" / "sales"
    folder.mkdir(parents=True)
    doc = item.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc = {"apiVersion": API_VERSION, "kind": "DataProduct", **doc}
    doc["metadata"] = {"name": "orders", "namespace": "sales"}
    (folder / "orders.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path / "repo"


def test_meshctl_test_gives_the_pods_verdicts_with_validates_exit_codes(
    warehouse: Warehouse,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(repo_with(tmp_path, orders()))
    server = pipeline_dsn(warehouse)
    load(warehouse, BAD)
    assert meshctl(["test", "orders", "--server", server, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    expected = {n: r.verdict for n, r in verdicts(warehouse, plan(orders())).items()}
    assert {c["name"]: c["verdict"] for c in report["checks"]} == expected
    load(warehouse, GOOD)
    assert meshctl(["test", "sales/orders", "--server", server]) == 0
    out = capsys.readouterr().out
    assert "PASSED   customer-set (error) = 1" in out and "7 passed, 0 failed" in out
    assert meshctl(["test", "orders", "--server", server, "--format", "junit"]) == 0
    assert 'failures="0" errors="0"' in capsys.readouterr().out
    # The warehouse unreachable: every check could not run, and that fails the run.
    closed = server.replace(f":{state(warehouse).port}/", ":1/")
    assert meshctl(["test", "orders", "--server", closed]) == 1
    assert "7 could not run" in capsys.readouterr().out
    assert meshctl(["test", "nope", "--server", server]) == 2
    assert meshctl(["test", "orders", "--server", "host='"]) == 2


# Which of datacontract-cli's checks stand for each of ours, by the end of its check key
# (``<table>__<column>__<kind>``): every check of the product is listed, so a new one
# cannot slip past the comparison.
THEIRS = {
    "customer-set": ["__customer_id__field_null_values"],
    "customer-once": ["__customer_id__field_duplicate_values"],
    "enough-rows": ["__row_count"],
    "fresh": ["__ordered_at__servicelevel_freshness"],
    "mostly-euro": ["__quality_sql_1"],
    "currency-allowed-values": ["__currency__field_invalid_values"],
    "quantity-range": ["__quantity__field_minimum", "__quantity__field_maximum"],
}
# Theirs to ours: a warning is a failed check of severity warning; an error could not run.
VERDICTS = {"passed": PASSED, "failed": FAILED, "warning": FAILED, "error": UNKNOWN}


def datacontract_verdicts(server: Warehouse, tmp_path: Path) -> dict[str, str]:
    """`datacontract test` on the product's ODCS export, against the same table as the
    same role; one verdict per check of ours (failed if any of its checks failed)."""
    address = {"host": "127.0.0.1", "port": state(server).port, "database": "warehouse"}
    contract = tmp_path / "orders.odcs.yaml"
    contract.write_text(yaml.safe_dump(odcs.to_odcs(orders(), address), sort_keys=False))
    results = tmp_path / "results.json"
    env = {
        **os.environ,
        "DATACONTRACT_POSTGRES_USERNAME": "dmp_sales__orders",
        "DATACONTRACT_POSTGRES_PASSWORD": "pipeline-password",
    }
    subprocess.run(
        [
            str(datacontract_cli()),
            "test",
            str(contract),
            "--output-format",
            "json",
            "--output",
            str(results),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    checks = json.loads(results.read_text())["checks"]
    out = {}
    for ours, keys in THEIRS.items():
        found = [VERDICTS[c["result"]] for c in checks if c["key"].endswith(tuple(keys))]
        assert len(found) == len(keys), (ours, [c["key"] for c in checks])
        out[ours] = FAILED if FAILED in found else UNKNOWN if UNKNOWN in found else PASSED
    return out


@pytest.mark.parametrize("rows", [BAD, GOOD], ids=["bad-data", "good-data"])
def test_datacontract_test_on_the_export_gives_the_same_verdicts(
    warehouse: Warehouse, tmp_path: Path, rows: list[tuple[Any, ...]]
) -> None:
    load(warehouse, rows)
    ours = {n: r.verdict for n, r in verdicts(warehouse, plan(orders())).items()}
    assert set(ours) == set(THEIRS)
    assert datacontract_verdicts(warehouse, tmp_path) == ours


def test_a_second_statement_past_the_scan_cannot_end_the_read_only_transaction(
    warehouse: Warehouse,
) -> None:
    """A query that hid a COMMIT from the scan (e.g. in an E'' string) still runs as one
    prepared statement: the server refuses it whole, and nothing is dropped."""
    load(warehouse, GOOD)
    escape = PlannedCheck(
        name="escape",
        rule="sql",
        severity="error",
        metric="SELECT 1; COMMIT; DROP TABLE sales.orders__orders_v1; SELECT 1",
        threshold=1.0,
    )
    (result,) = verdicts(warehouse, [escape]).values()
    assert result.verdict == UNKNOWN and "multiple commands" in result.message
    assert admin(warehouse, "SELECT count(*) FROM sales.orders__orders_v1") == [(3,)]
