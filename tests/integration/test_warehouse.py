"""The warehouse engine against a real PostgreSQL (Debian's, started like `make
cluster-up` starts it): planned objects created, nothing sent when nothing changed,
grants that hold when connecting as each role, versions side by side, breaking
differences left alone."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from datamesh.dataplane.warehouse.plan import Consumer, ProductWarehouse, plan
from datamesh.dataplane.warehouse.postgres import PostgresWarehouse
from datamesh.dataplane.warehouse.statements import changes
from localcluster.warehouse import Warehouse, WarehouseState
from tests.support.factories import product

PORT = {"name": "orders", "type": "table", "location": "sales.orders"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseState]:
    warehouse = Warehouse(tmp_path_factory.mktemp("cluster"), die_with_parent=True)
    try:
        yield warehouse.start()
    finally:
        warehouse.stop()


@pytest.fixture
def engine(server: WarehouseState) -> PostgresWarehouse:
    return PostgresWarehouse(server.dsn())


def admin(server: WarehouseState, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        cur = conn.execute(statement.encode() if not params else statement, params or None)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def converge(engine: PostgresWarehouse, desired: ProductWarehouse) -> list[str]:
    out = changes(desired, engine.observe(desired))
    assert out.conflicts == []
    engine.apply(out.statements)
    return out.statements


def login(server: WarehouseState, role: str) -> str:
    """A DSN for ``role`` with a fresh password."""
    password = secrets.token_urlsafe(12)
    PostgresWarehouse(server.dsn()).set_password(role, password)
    return server.dsn().replace(f"datamesh_admin:{server.password}", f"{role}:{password}")


def person(server: WarehouseState, name: str, *member_of: str) -> str:
    """A login role for a person, member of the given group roles."""
    admin(server, f'CREATE ROLE "{name}" LOGIN')
    for group in member_of:
        admin(server, f'GRANT "{group}" TO "{name}"')
    return login(server, name)


def denied(dsn: str, statement: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(statement.encode())
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def orders(
    version: str = "1.0.0", readers: list[str] | None = None, **spec: Any
) -> ProductWarehouse:
    return plan(
        product(
            "orders",
            version=version,
            outputPorts=[PORT],
            access={"readers": {"domains": readers or ["finance"]}},
            **spec,
        ),
        [Consumer("sales", "revenue-daily")],
    )


def test_provisioning_then_nothing_sent_when_nothing_changed(
    engine: PostgresWarehouse, server: WarehouseState
) -> None:
    desired = orders()
    assert converge(engine, desired)
    assert changes(desired, engine.observe(desired)).statements == []
    columns = admin(
        server,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'sales' AND table_name = 'orders__orders_v1' "
        "ORDER BY ordinal_position",
    )
    assert columns == [("order_id", "text", "NO"), ("amount", "numeric", "YES")]
    comment = admin(
        server, "SELECT obj_description('sales.orders__orders_v1'::regclass, 'pg_class')"
    )
    assert comment == [("Orders.",)]


def test_grants_hold_when_connecting_as_each_role(
    engine: PostgresWarehouse, server: WarehouseState
) -> None:
    desired = orders()
    converge(engine, desired)
    other = plan(product("customers", outputPorts=[{**PORT, "name": "customers"}]))
    converge(engine, other)
    writer = login(server, desired.pipeline_role)
    with psycopg.connect(writer, autocommit=True) as conn:
        conn.execute("INSERT INTO sales.orders__orders_v1 VALUES ('o-1', 12.5)")
    # A pipeline writes only its own tables.
    assert denied(writer, "INSERT INTO sales.customers__customers_v1 VALUES ('c-1', 1)")
    # The reader domain reads; another domain is refused.
    finance = person(server, "fiona", "dmr_finance")
    with psycopg.connect(finance) as conn:
        assert conn.execute("SELECT count(*) FROM sales.orders__orders_v1").fetchone() == (1,)
    admin(
        server,
        "DO $$ BEGIN CREATE ROLE dmr_marketing NOLOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    marketing = person(server, "mark", "dmr_marketing")
    assert denied(marketing, "SELECT count(*) FROM sales.orders__orders_v1")
    # The consumer's pipeline reads the upstream it names, and not the one it does not.
    consumer = login(server, "dmp_sales__revenue_daily")
    with psycopg.connect(consumer) as conn:
        assert conn.execute("SELECT sum(amount) FROM sales.orders__orders_v1").fetchone() == (12.5,)
    assert denied(consumer, "SELECT * FROM sales.customers__customers_v1")
    assert denied(finance, "INSERT INTO sales.orders__orders_v1 VALUES ('o-2', 1)")

    # Removing the reader domain revokes its grant.
    statements = converge(engine, orders(readers=["marketing"]))
    assert 'REVOKE SELECT ON "sales"."orders__orders_v1" FROM "dmr_finance"' in statements
    assert denied(finance, "SELECT count(*) FROM sales.orders__orders_v1")


def test_a_major_version_is_a_new_table_beside_the_old_one_with_its_rows(
    engine: PostgresWarehouse, server: WarehouseState
) -> None:
    converge(engine, orders())
    admin(server, "INSERT INTO sales.orders__orders_v1 VALUES ('o-keep', 1) ON CONFLICT DO NOTHING")
    before = admin(server, "SELECT * FROM sales.orders__orders_v1 ORDER BY order_id")
    converge(engine, orders(version="2.0.0"))
    assert admin(server, "SELECT count(*) FROM sales.orders__orders_v2") == [(0,)]
    assert admin(server, "SELECT * FROM sales.orders__orders_v1 ORDER BY order_id") == before


def test_a_breaking_change_without_a_major_bump_alters_nothing(
    engine: PostgresWarehouse, server: WarehouseState
) -> None:
    converge(engine, orders())
    base = product().spec.model_dump(by_alias=True)["schema"]["fields"]
    retyped = [{**base[0]}, {**base[1], "type": "string"}]
    desired = orders("1.1.0", schema={"format": "parquet", "fields": retyped})
    out = changes(desired, engine.observe(desired))
    assert out.statements == []
    assert out.conflicts and "column amount is numeric, the contract says text" in out.conflicts[0]
    assert admin(
        server,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'sales' "
        "AND table_name = 'orders__orders_v1' AND column_name = 'amount'",
    ) == [("numeric",)]


def test_a_failed_statement_changes_nothing(
    engine: PostgresWarehouse, server: WarehouseState
) -> None:
    with pytest.raises(psycopg.Error):
        engine.apply(['CREATE SCHEMA "half_done"', "CREATE TABLE nowhere.x (a int)"])
    assert admin(server, "SELECT 1 FROM pg_namespace WHERE nspname = 'half_done'") == []


def test_the_admin_password_is_readable_by_root_only(tmp_path: Path) -> None:
    """The state file holds the admin password: mode 0600, and stop deletes the data."""
    warehouse = Warehouse(tmp_path, die_with_parent=True)
    state = warehouse.start()
    try:
        assert (warehouse.state_file.stat().st_mode & 0o777) == 0o600
        assert Path(state.data_dir).is_dir()
    finally:
        assert warehouse.stop() == ["postgres"]
    assert not Path(state.data_dir).exists() and warehouse.load() is None
