"""The statements that bring a product's observed warehouse objects to its plan, and the
differences no statement may fix. Pure, so "nothing changed, nothing sent" is a property
of this function: equal states give no statements.

Only additive changes are made to a table that exists: new nullable columns, a NOT NULL
dropped, comments. A changed column type, a dropped column, a column turned NOT NULL, a
new NOT NULL column or a changed primary key is a breaking change: it belongs in a new
major version (a new table), so it is reported and no column of that table is altered.
Grants always follow the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datamesh.dataplane.warehouse.plan import Column, ProductWarehouse, Table

# What the pipeline role may do on its own tables.
WRITER_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE"


@dataclass(frozen=True)
class ObservedTable:
    columns: dict[str, Column]
    primary_key: tuple[str, ...]
    comment: str | None
    # Roles of the mesh (prefixed) that hold SELECT on the table, the pipeline role aside.
    readers: frozenset[str]
    writer_granted: bool


@dataclass(frozen=True)
class Observed:
    """What the warehouse holds of one product's objects (an engine reads its catalog)."""

    schema_exists: bool = False
    roles: frozenset[str] = frozenset()  # which of the plan's roles exist
    schema_usage: frozenset[str] = frozenset()  # roles with USAGE on the schema
    tables: dict[str, ObservedTable] = field(default_factory=dict)


@dataclass
class Changes:
    statements: list[str] = field(default_factory=list)
    # Breaking differences left alone, one message each, naming table and column.
    conflicts: list[str] = field(default_factory=list)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def qualified(table: Table) -> str:
    return f"{ident(table.schema)}.{ident(table.name)}"


def changes(desired: ProductWarehouse, observed: Observed) -> Changes:
    out = Changes()
    roles = {desired.pipeline_role} | {r for t in desired.tables for r in t.readers}
    if not observed.schema_exists:
        out.statements.append(f"CREATE SCHEMA {ident(desired.schema)}")
    for role in sorted(roles - observed.roles):
        login = "LOGIN" if role in desired.login_roles | {desired.pipeline_role} else "NOLOGIN"
        out.statements.append(f"CREATE ROLE {ident(role)} {login}")
    for role in sorted(roles - observed.schema_usage):
        out.statements.append(f"GRANT USAGE ON SCHEMA {ident(desired.schema)} TO {ident(role)}")
    for table in desired.tables:
        existing = observed.tables.get(table.name)
        if existing is None:
            out.statements.extend(_create(table, desired.pipeline_role))
        else:
            _update(table, existing, desired.pipeline_role, out)
    return out


def _create(table: Table, writer: str) -> list[str]:
    columns = [
        f"{ident(c.name)} {c.type}{' NOT NULL' if c.not_null else ''}" for c in table.columns
    ]
    if table.primary_key:
        columns.append(f"PRIMARY KEY ({', '.join(ident(c) for c in table.primary_key)})")
    statements = [f"CREATE TABLE {qualified(table)} ({', '.join(columns)})"]
    if table.comment is not None:
        statements.append(f"COMMENT ON TABLE {qualified(table)} IS {literal(table.comment)}")
    statements.extend(
        f"COMMENT ON COLUMN {qualified(table)}.{ident(c.name)} IS {literal(c.comment)}"
        for c in table.columns
        if c.comment is not None
    )
    statements.append(f"GRANT {WRITER_PRIVILEGES} ON {qualified(table)} TO {ident(writer)}")
    statements.extend(
        f"GRANT SELECT ON {qualified(table)} TO {ident(r)}" for r in sorted(table.readers)
    )
    return statements


def _update(table: Table, existing: ObservedTable, writer: str, out: Changes) -> None:
    target = qualified(table)
    # Who may read and write follows the spec even while the columns are in conflict:
    # a reader removed from the spec loses access at once.
    if not existing.writer_granted:
        out.statements.append(f"GRANT {WRITER_PRIVILEGES} ON {target} TO {ident(writer)}")
    out.statements.extend(
        f"GRANT SELECT ON {target} TO {ident(r)}" for r in sorted(table.readers - existing.readers)
    )
    out.statements.extend(
        f"REVOKE SELECT ON {target} FROM {ident(r)}"
        for r in sorted(existing.readers - table.readers)
    )
    conflicts = _column_conflicts(table, existing)
    if conflicts:
        out.conflicts.extend(
            f"table {table.schema}.{table.name}: {c} (a breaking change needs a new major "
            "version; nothing of the table was altered)"
            for c in conflicts
        )
        return
    for column in table.columns:
        current = existing.columns.get(column.name)
        if current is None:
            out.statements.append(
                f"ALTER TABLE {target} ADD COLUMN {ident(column.name)} {column.type}"
            )
        elif current.not_null and not column.not_null:
            out.statements.append(
                f"ALTER TABLE {target} ALTER COLUMN {ident(column.name)} DROP NOT NULL"
            )
        if column.comment != (current.comment if current else None):
            out.statements.append(
                f"COMMENT ON COLUMN {target}.{ident(column.name)} IS {literal(column.comment)}"
            )
    if table.comment != existing.comment:
        out.statements.append(f"COMMENT ON TABLE {target} IS {literal(table.comment)}")


def _column_conflicts(table: Table, existing: ObservedTable) -> list[str]:
    """What only a new major version may change."""
    conflicts = []
    wanted = {c.name: c for c in table.columns}
    for name, have in existing.columns.items():
        want = wanted.get(name)
        if want is None:
            conflicts.append(f"column {name} is no longer in the contract")
        elif want.type != have.type:
            conflicts.append(f"column {name} is {have.type}, the contract says {want.type}")
        elif want.not_null and not have.not_null:
            conflicts.append(f"column {name} would become NOT NULL")
    for name, want in wanted.items():
        # Rows already there would have no value for it.
        if name not in existing.columns and want.not_null:
            conflicts.append(f"new column {name} is NOT NULL")
    if existing.primary_key != table.primary_key:
        conflicts.append(
            f"primary key is ({', '.join(existing.primary_key)}), "
            f"the contract says ({', '.join(table.primary_key)})"
        )
    return conflicts
