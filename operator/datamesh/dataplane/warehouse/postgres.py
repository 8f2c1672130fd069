"""PostgreSQL as the warehouse: reading what exists of a product's planned objects from
the catalog, and executing the statements that bring them to the plan in one
transaction (all or nothing: a failure leaves the warehouse as it was).

Another engine (Trino, a cloud warehouse) is another module with the same two methods;
``plan`` and ``statements`` stay as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from datamesh.dataplane.warehouse.plan import Column, ProductWarehouse
from datamesh.dataplane.warehouse.statements import Observed, ObservedTable
from datamesh.governance.warehouse_names import ROLE_PREFIXES

T = TypeVar("T")

WRITER_PRIVILEGE_SET = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"})

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       col_description(c.oid, a.attnum)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_TABLE = """
SELECT c.oid, obj_description(c.oid, 'pg_class'),
       ARRAY(SELECT a.attname FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY k.pos)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind = 'r'
"""

# Who holds which privilege on a table, for the mesh's roles only (others are not ours).
_GRANTS = """
SELECT r.rolname, g.privilege_type
FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) g
JOIN pg_roles r ON r.oid = g.grantee
WHERE c.oid = %s AND (starts_with(r.rolname, %s) OR starts_with(r.rolname, %s))
"""


class PostgresWarehouse:
    """One connection string (the warehouse's admin, from its Secret). Each thread keeps
    its connection between calls: opening one costs a SCRAM exchange, several times the
    work of a product's statements. A kept connection that has gone (the server
    restarted) is replaced once, at once, instead of failing the product."""

    def __init__(self, dsn: str, *, connect_timeout: int = 5) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._local = threading.local()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, connect_timeout=self.connect_timeout, autocommit=True)

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            try:
                return work(conn)
            except psycopg.OperationalError:
                if not conn.broken:
                    raise
                conn.close()
        self._local.conn = conn = self._connect()
        try:
            return work(conn)
        except psycopg.OperationalError:
            if conn.broken:
                conn.close()
            raise

    def close(self) -> None:
        """This thread's connection, if it keeps one."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def observe(self, desired: ProductWarehouse) -> Observed:
        """What exists of ``desired``'s schema, roles, schema rights and tables."""
        return self._run(lambda conn: self._observe(conn, desired))

    def _observe(self, conn: psycopg.Connection[Any], desired: ProductWarehouse) -> Observed:
        roles = sorted({desired.pipeline_role} | {r for t in desired.tables for r in t.readers})
        schema_exists = bool(
            conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (desired.schema,)
            ).fetchone()
        )
        existing_roles = frozenset(
            row[0]
            for row in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (roles,)
            )
        )
        usage: frozenset[str] = frozenset()
        if schema_exists and existing_roles:
            usage = frozenset(
                row[0]
                for row in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) "
                    "AND has_schema_privilege(rolname, %s, 'USAGE')",
                    (sorted(existing_roles), desired.schema),
                )
            )
        tables = {}
        if schema_exists:
            for table in desired.tables:
                found = self._table(conn, desired.schema, table.name, desired.pipeline_role)
                if found is not None:
                    tables[table.name] = found
        return Observed(
            schema_exists=schema_exists,
            roles=existing_roles,
            schema_usage=usage,
            tables=tables,
        )

    @staticmethod
    def _table(
        conn: psycopg.Connection[Any], schema: str, name: str, writer: str
    ) -> ObservedTable | None:
        row = conn.execute(_TABLE, (schema, name)).fetchone()
        if row is None:
            return None
        oid, comment, primary_key = row
        columns = {
            col: Column(name=col, type=type_, not_null=bool(not_null), comment=col_comment)
            for col, type_, not_null, col_comment in conn.execute(_COLUMNS, (schema, name))
        }
        privileges: dict[str, set[str]] = {}
        for role, privilege in conn.execute(_GRANTS, (oid, *ROLE_PREFIXES)):
            privileges.setdefault(role, set()).add(privilege)
        return ObservedTable(
            columns=columns,
            primary_key=tuple(primary_key),
            comment=comment,
            readers=frozenset(r for r, p in privileges.items() if r != writer and "SELECT" in p),
            writer_granted=privileges.get(writer, set()) >= WRITER_PRIVILEGE_SET,
        )

    def set_password(self, role: str, password: str) -> None:
        """The pipeline role's login password. Only its SCRAM verifier, made on this
        side, reaches the server, so no statement log or statistics hold the password."""

        def work(conn: psycopg.Connection[Any]) -> None:
            verifier = conn.pgconn.encrypt_password(
                password.encode(), role.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier)
                )
            )

        self._run(work)

    def drop_product(self, schema: str, table_prefix: str, role: str) -> list[str]:
        """Every table of the schema whose name starts with ``table_prefix`` (each major
        version of each port), then the role with whatever it was granted; one
        transaction. Safe to repeat."""
        return self._run(lambda conn: self._drop(conn, schema, table_prefix, role))

    @staticmethod
    def _drop(
        conn: psycopg.Connection[Any], schema: str, table_prefix: str, role: str
    ) -> list[str]:
        with conn.transaction():
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT c.relname FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'r' AND starts_with(c.relname, %s) "
                    "ORDER BY c.relname",
                    (schema, table_prefix),
                )
            ]
            for table in tables:
                conn.execute(
                    sql.SQL("DROP TABLE {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    )
                )
            dropped = [f"{schema}.{t}" for t in tables]
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
                dropped.append(f"role {role}")
        return dropped

    def apply(self, statements: Sequence[str]) -> None:
        """Run ``statements`` in one transaction."""
        if not statements:
            return

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement.encode())

        self._run(work)
