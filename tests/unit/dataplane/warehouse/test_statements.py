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

PORTS = [{"name": "lines", "type": "table", "location": "sales.orders"}]


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
        'CREATE ROLE "dmp_sales__orders" LOGIN',
        'CREATE ROLE "dmr_finance" NOLOGIN',
        'GRANT USAGE ON SCHEMA "sales" TO "dmp_sales__orders"',
        'GRANT USAGE ON SCHEMA "sales" TO "dmr_finance"',
        'CREATE TABLE "sales"."orders__lines_v1" ("order_id" text NOT NULL, "amount" numeric, '
        'PRIMARY KEY ("order_id"))',
        'COMMENT ON TABLE "sales"."orders__lines_v1" IS \'Orders.\'',
        'COMMENT ON COLUMN "sales"."orders__lines_v1"."order_id" IS \'Order id.\'',
        'COMMENT ON COLUMN "sales"."orders__lines_v1"."amount" IS \'Amount.\'',
        'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON "sales"."orders__lines_v1" '
        'TO "dmp_sales__orders"',
        'GRANT SELECT ON "sales"."orders__lines_v1" TO "dmr_finance"',
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
    observed = dataclasses.replace(observed, roles=observed.roles | {"dmr_marketing"})
    out = changes(new, observed)
    assert out.conflicts == []
    assert out.statements == [
        'GRANT USAGE ON SCHEMA "sales" TO "dmr_marketing"',
        'GRANT SELECT ON "sales"."orders__lines_v1" TO "dmr_marketing"',
        'REVOKE SELECT ON "sales"."orders__lines_v1" FROM "dmr_finance"',
        'ALTER TABLE "sales"."orders__lines_v1" ADD COLUMN "currency" text',
        'COMMENT ON COLUMN "sales"."orders__lines_v1"."currency" IS \'ISO code.\'',
    ]


def test_a_breaking_difference_alters_nothing_of_that_table_and_says_why() -> None:
    planned = desired()
    observed = observed_as(planned)
    table = observed.tables["orders__lines_v1"]
    columns = dict(table.columns)
    columns["amount"] = Column("amount", "text", False, "Amount.")
    columns["legacy"] = Column("legacy", "text", False, None)
    observed.tables["orders__lines_v1"] = dataclasses.replace(
        table, columns=columns, readers=frozenset()
    )
    out = changes(planned, observed)
    # The readers still follow the spec; no column is touched.
    assert out.statements == [
        'GRANT SELECT ON "sales"."orders__lines_v1" TO "dmr_finance"',
    ]
    suffix = " (a breaking change needs a new major version; nothing of the table was altered)"
    assert out.conflicts == [
        "table sales.orders__lines_v1: column amount is text, the contract says numeric" + suffix,
        "table sales.orders__lines_v1: column legacy is no longer in the contract" + suffix,
    ]


def test_a_new_not_null_column_is_a_conflict_and_a_relaxed_one_drops_not_null() -> None:
    base = product().spec.model_dump(by_alias=True)["schema"]["fields"]
    observed = observed_as(desired())
    strict = [*base, {"name": "currency", "type": "string", "nullable": False}]
    out = changes(desired(schema={"format": "parquet", "fields": strict}), observed)
    assert out.statements == []
    assert "new column currency is NOT NULL" in out.conflicts[0]
    table = observed.tables["orders__lines_v1"]
    columns = dict(table.columns)
    columns["amount"] = dataclasses.replace(columns["amount"], not_null=True)
    observed.tables["orders__lines_v1"] = dataclasses.replace(table, columns=columns)
    out = changes(desired(), observed)
    assert out.statements == [
        'ALTER TABLE "sales"."orders__lines_v1" ALTER COLUMN "amount" DROP NOT NULL'
    ]


def test_a_major_version_creates_a_new_table_and_leaves_the_old_one() -> None:
    old = desired()
    observed = observed_as(old)
    new = desired(version="2.0.0")
    out = changes(new, observed)
    assert out.statements[0].startswith('CREATE TABLE "sales"."orders__lines_v2"')
    assert not any("orders__lines_v1" in s for s in out.statements)


def test_quoting_doubles_quotes() -> None:
    assert ident('a"b') == '"a""b"'
    assert literal("it's") == "'it''s'"
    assert literal(None) == "NULL"
