"""The statements between an observed and a planned warehouse state: all of them from
nothing, none when equal, additive ones only, and breaking differences reported."""

from __future__ import annotations

import dataclasses

from datamesh.dataplane.warehouse.plan import Column, ProductWarehouse, plan
from datamesh.dataplane.warehouse.statements import (
    Observed,
    ObservedTable,
    changes,
    ident,
    literal,
)
from tests.support.factories import product

PORTS = [{"name": "orders", "type": "table", "location": "sales.orders"}]


def desired(**spec: object) -> ProductWarehouse:
    return plan(product(outputPorts=PORTS, access={"readers": {"domains": ["finance"]}}, **spec))


def observed_as(planned: ProductWarehouse) -> Observed:
    """The warehouse exactly as planned."""
    roles = {planned.pipeline_role} | {r for t in planned.tables for r in t.readers}
    return Observed(
        schema_exists=True,
        roles=frozenset(roles),
        schema_usage=frozenset(roles),
        tables={
            t.name: ObservedTable(
                columns={c.name: c for c in t.columns},
                primary_key=t.primary_key,
                comment=t.comment,
                readers=t.readers,
                writer_granted=True,
            )
            for t in planned.tables
        },
    )


def test_from_nothing_everything_is_created_in_dependency_order() -> None:
    out = changes(desired(), Observed())
    assert out.conflicts == []
    assert out.statements == [
        'CREATE SCHEMA "sales"',
        'CREATE ROLE "dm_finance__readers" NOLOGIN',
        'CREATE ROLE "dm_sales__orders" LOGIN',
        'GRANT USAGE ON SCHEMA "sales" TO "dm_finance__readers"',
        'GRANT USAGE ON SCHEMA "sales" TO "dm_sales__orders"',
        'CREATE TABLE "sales"."orders_v1" ("order_id" text NOT NULL, "amount" numeric, '
        'PRIMARY KEY ("order_id"))',
        'COMMENT ON TABLE "sales"."orders_v1" IS \'Orders.\'',
        'COMMENT ON COLUMN "sales"."orders_v1"."order_id" IS \'Order id.\'',
        'COMMENT ON COLUMN "sales"."orders_v1"."amount" IS \'Amount.\'',
        'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON "sales"."orders_v1" '
        'TO "dm_sales__orders"',
        'GRANT SELECT ON "sales"."orders_v1" TO "dm_finance__readers"',
    ]


def test_nothing_changed_nothing_is_sent() -> None:
    planned = desired()
    assert changes(planned, observed_as(planned)).statements == []


def test_a_minor_version_adds_a_column_and_a_reader_change_grants_and_revokes() -> None:
    old = desired()
    fields = [
        *product().spec.model_dump(by_alias=True)["schema"]["fields"],
        {"name": "currency", "type": "string", "description": "ISO code."},
    ]
    new = plan(
        product(
            version="1.1.0",
            outputPorts=PORTS,
            schema={"format": "parquet", "fields": fields},
            access={"readers": {"domains": ["marketing"]}},
        )
    )
    observed = observed_as(old)
    observed = dataclasses.replace(observed, roles=observed.roles | {"dm_marketing__readers"})
    out = changes(new, observed)
    assert out.conflicts == []
    assert out.statements == [
        'GRANT USAGE ON SCHEMA "sales" TO "dm_marketing__readers"',
        'ALTER TABLE "sales"."orders_v1" ADD COLUMN "currency" text',
        'COMMENT ON COLUMN "sales"."orders_v1"."currency" IS \'ISO code.\'',
        'GRANT SELECT ON "sales"."orders_v1" TO "dm_marketing__readers"',
        'REVOKE SELECT ON "sales"."orders_v1" FROM "dm_finance__readers"',
    ]


def test_a_breaking_difference_alters_nothing_of_that_table_and_says_why() -> None:
    planned = desired()
    observed = observed_as(planned)
    table = observed.tables["orders_v1"]
    columns = dict(table.columns)
    columns["amount"] = Column("amount", "text", False, "Amount.")
    columns["legacy"] = Column("legacy", "text", False, None)
    observed.tables["orders_v1"] = dataclasses.replace(table, columns=columns, readers=frozenset())
    out = changes(planned, observed)
    assert out.statements == []
    assert out.conflicts == [
        "table sales.orders_v1: column amount is text, the contract says numeric (a breaking "
        "change needs a new major version; nothing was altered)",
        "table sales.orders_v1: column legacy is no longer in the contract (a breaking "
        "change needs a new major version; nothing was altered)",
    ]


def test_a_major_version_creates_a_new_table_and_leaves_the_old_one() -> None:
    old = desired()
    observed = observed_as(old)
    new = desired(version="2.0.0")
    out = changes(new, observed)
    assert out.statements[0].startswith('CREATE TABLE "sales"."orders_v2"')
    assert not any("orders_v1" in s for s in out.statements)


def test_quoting_doubles_quotes() -> None:
    assert ident('a"b') == '"a""b"'
    assert literal("it's") == "'it''s'"
    assert literal(None) == "NULL"
