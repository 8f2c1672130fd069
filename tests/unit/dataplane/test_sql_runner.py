"""The SQL runner's pure parts: which table it fills, which upstream table an input port
reads (the newest major the role can see), and placeholders by port, never by table."""

from __future__ import annotations

import pytest

from datamesh.dataplane.pipeline import PipelineError
from datamesh.dataplane.sql_runner import InputPort, job_of, pick_table, render, source_conninfo

CONTRACT = {
    "product": "revenue-daily",
    "domain": "sales",
    "version": "2.1.0",
    "outputPorts": [
        {"name": "warehouse", "type": "table", "location": "x"},
        {"name": "api", "type": "api", "location": "https://x"},
    ],
    "inputPorts": [{"product": "orders"}, {"product": "ledger", "domain": "finance"}],
}
ORDERS = InputPort("sales", "orders", None)
LEDGER = InputPort("finance", "ledger", "postings")


def test_the_job_fills_the_one_table_of_its_major_version() -> None:
    job = job_of(CONTRACT)
    assert (job.schema, job.table) == ("sales", "revenue_daily__warehouse_v2")
    assert job.inputs == (ORDERS, InputPort("finance", "ledger", None))


def test_a_product_with_two_table_ports_is_refused() -> None:
    ports = [{"name": n, "type": "table", "location": n} for n in ("a", "b")]
    with pytest.raises(PipelineError, match="2 table output ports"):
        job_of({**CONTRACT, "outputPorts": ports})


def test_the_newest_visible_major_is_read() -> None:
    visible = ["orders__warehouse_v1", "orders__warehouse_v2", "orders_x__warehouse_v9", "other"]
    assert pick_table(visible, ORDERS) == "orders__warehouse_v2"
    # v10 is newer than v9: compared as numbers, not text.
    assert pick_table(["orders__w_v9", "orders__w_v10"], ORDERS) == "orders__w_v10"


def test_an_invisible_upstream_says_it_may_not_be_granted() -> None:
    with pytest.raises(PipelineError, match="does not grant this product read"):
        pick_table(["customers__warehouse_v1"], ORDERS)


def test_several_table_ports_need_the_input_to_name_one() -> None:
    visible = ["ledger__postings_v1", "ledger__balances_v1"]
    assert pick_table(visible, LEDGER) == "ledger__postings_v1"
    with pytest.raises(PipelineError, match="name one"):
        pick_table(visible, InputPort("finance", "ledger", None))


def test_placeholders_become_quoted_tables_by_product_or_domain_and_product() -> None:
    tables = {ORDERS: "orders__warehouse_v1", LEDGER: "ledger__postings_v3"}
    query = "SELECT * FROM {{ orders }} JOIN {{finance/ledger}} USING (id) WHERE x = '{}'"
    assert render(query, tables) == (
        'SELECT * FROM "sales"."orders__warehouse_v1" JOIN "finance"."ledger__postings_v3" '
        "USING (id) WHERE x = '{}'"
    )


def test_an_unknown_or_ambiguous_placeholder_is_an_error() -> None:
    tables = {ORDERS: "orders__w_v1", InputPort("eu", "orders", None): "orders__w_v1"}
    with pytest.raises(PipelineError, match="names no input port"):
        render("SELECT * FROM {{ customers }}", tables)
    with pytest.raises(PipelineError, match="ambiguous"):
        render("SELECT * FROM {{ orders }}", tables)
    assert render("SELECT * FROM {{ eu/orders }}", tables) == 'SELECT * FROM "eu"."orders__w_v1"'


def test_the_source_connection_comes_from_prefixed_libpq_variables() -> None:
    assert source_conninfo({"PGHOST": "warehouse"}) is None
    info = source_conninfo({"SOURCE_PGHOST": "db", "SOURCE_PGUSER": "u", "SOURCE_PGPORT": "5"})
    assert info is not None and set(info.split()) == {"host=db", "user=u", "port=5"}


def test_without_a_warehouse_login_there_is_nothing_to_refresh(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A platform with no warehouse provisions no table: the run succeeds doing nothing
    (the live products' CronJobs run in such clusters too)."""
    from datamesh.dataplane.sql_runner import main

    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.setenv("DATAMESH_SQL", "SELECT 1")
    assert main(["--contract", "/nonexistent"]) == 0
    assert "no warehouse is configured" in capsys.readouterr().out
