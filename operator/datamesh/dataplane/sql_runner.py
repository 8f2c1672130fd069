"""``datamesh-sql``: the platform's SQL runner, one pipeline image among many.

It refreshes the product's one table from ``spec.pipeline.sql`` (the ``DATAMESH_SQL``
variable), logged in as the product's own pipeline role (libpq's ``PG*`` variables, from
the Secret the operator writes). A derived product's query runs in the warehouse and
names its inputs by input port, ``{{ orders }}`` or ``{{ sales/orders }}``: each stands
for the newest major version's table of that upstream that the role can see, so a
query never hard-codes a table and an ungranted upstream is an error, not a silent
empty read. A source-aligned product's query runs in its source database (``SOURCE_PG*``
variables) and its rows are copied in. Either way the table's rows are replaced in one
transaction: readers see the old rows or the new, never half.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from datamesh.dataplane.pipeline import CONTRACT, PipelineError, read_contract
from datamesh.dataplane.quality import cli as quality
from datamesh.dataplane.quality import report
from datamesh.governance.breaking_changes import semver
from datamesh.governance.pipeline_sql import PLACEHOLDER
from datamesh.governance.warehouse_names import WarehouseNames

SOURCE_PREFIX = "SOURCE_"
COPY_BATCH = 5000


@dataclass(frozen=True)
class InputPort:
    domain: str
    product: str
    port: str | None


@dataclass(frozen=True)
class Job:
    """What one run does, from the contract: the table it fills and what it reads."""

    schema: str
    table: str
    inputs: tuple[InputPort, ...]


def job_of(contract: Mapping[str, Any]) -> Job:
    domain, product = str(contract["domain"]), str(contract["product"])
    names = WarehouseNames(domain, product)
    ports = [p["name"] for p in contract.get("outputPorts") or [] if p.get("type") == "table"]
    if len(ports) != 1:
        raise PipelineError(
            f"the SQL runner fills one table, and {domain}/{product} has {len(ports)} table "
            "output ports"
        )
    inputs = tuple(
        InputPort(p.get("domain") or domain, p["product"], p.get("port"))
        for p in contract.get("inputPorts") or []
    )
    major = semver(str(contract["version"]))[0]
    return Job(names.schema, names.table(ports[0], major), inputs)


def pick_table(visible: Iterable[str], port: InputPort) -> str:
    """The newest major version's table of ``port`` among the tables the role can see."""
    prefix = WarehouseNames(port.domain, port.product).table_prefix
    pattern = re.compile(
        re.escape(prefix)
        + (re.escape(port.port.replace("-", "_")) if port.port else r"(.+)")
        + r"_v(\d+)$"
    )
    found: dict[str, list[tuple[int, str]]] = {}
    for name in visible:
        match = pattern.match(name)
        if match:
            key = port.port or match.group(1)
            found.setdefault(key, []).append((int(match.groups()[-1]), name))
    ref = f"{port.domain}/{port.product}"
    if not found:
        raise PipelineError(
            f"input {ref}: no table of it is visible to this pipeline (not provisioned yet, "
            f"or {ref} does not grant this product read)"
        )
    if len(found) > 1:
        raise PipelineError(
            f"input {ref} has several table ports ({', '.join(sorted(found))}): name one "
            "with the input port's `port`"
        )
    return max(next(iter(found.values())))[1]


def render(query: str, tables: Mapping[InputPort, str]) -> str:
    """``query`` with each ``{{ input }}`` replaced by its quoted, schema-qualified table."""
    by_name: dict[str, list[str]] = {}
    for port, table in tables.items():
        qualified = f'"{WarehouseNames(port.domain, port.product).schema}"."{table}"'
        by_name.setdefault(f"{port.domain}/{port.product}", []).append(qualified)
        by_name.setdefault(port.product, []).append(qualified)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        choices = by_name.get(name)
        if not choices:
            known = sorted(k for k in by_name if "/" in k)
            raise PipelineError(
                f"{{{{ {name} }}}} names no input port (inputs: {', '.join(known) or 'none'})"
            )
        if len(set(choices)) > 1:
            raise PipelineError(f"{{{{ {name} }}}} is ambiguous: write domain/product")
        return choices[0]

    return PLACEHOLDER.sub(replace, query)


def source_conninfo(env: Mapping[str, str]) -> str | None:
    """The source database's connection from ``SOURCE_PG*`` variables, if any."""
    keys = {"PGHOST": "host", "PGPORT": "port", "PGDATABASE": "dbname", "PGUSER": "user"}
    keys["PGPASSWORD"] = "password"
    parts = {
        keyword: env[SOURCE_PREFIX + var]
        for var, keyword in keys.items()
        if env.get(SOURCE_PREFIX + var)
    }
    return psycopg.conninfo.make_conninfo(**parts) if parts else None


def _visible_tables(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> list[str]:
    """Tables of ``schemas`` this role holds a privilege on (information_schema shows
    only those)."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ANY(%s)",
        (list(schemas),),
    )
    return [r[0] for r in rows]


def _columns(conn: psycopg.Connection[Any], query: str) -> list[str]:
    cur = conn.execute(sql.SQL("SELECT * FROM ({}) AS q LIMIT 0").format(sql.SQL(query)))
    return [d.name for d in cur.description or []]


def run(job: Job, query: str, env: Mapping[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    target = sql.Identifier(job.schema, job.table)
    with psycopg.connect("", application_name=f"datamesh-sql/{job.table}") as warehouse:
        source = source_conninfo(env)
        if source is not None:
            if PLACEHOLDER.search(query):
                raise PipelineError("a query run in the source database cannot name inputs")
            rows = _load_from_source(warehouse, source, target, query)
            tables: dict[InputPort, str] = {}
        else:
            schemas = sorted({WarehouseNames(p.domain, p.product).schema for p in job.inputs})
            visible = _visible_tables(warehouse, schemas)
            tables = {port: pick_table(visible, port) for port in job.inputs}
            rows = _compute_in_warehouse(warehouse, target, render(query, tables))
    return {
        "table": f"{job.schema}.{job.table}",
        "rows": rows,
        "inputs": {f"{p.domain}/{p.product}": t for p, t in tables.items()},
        "seconds": round(time.monotonic() - started, 3),
    }


def _compute_in_warehouse(conn: psycopg.Connection[Any], target: sql.Identifier, query: str) -> int:
    with conn.transaction():
        columns = [sql.Identifier(c) for c in _columns(conn, query)]
        conn.execute(sql.SQL("TRUNCATE {}").format(target))
        cur = conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ({}) AS q").format(
                target,
                sql.SQL(", ").join(columns),
                sql.SQL(", ").join(columns),
                sql.SQL(query),
            )
        )
        return cur.rowcount


def _load_from_source(
    conn: psycopg.Connection[Any], source: str, target: sql.Identifier, query: str
) -> int:
    rows = 0
    with psycopg.connect(source, application_name="datamesh-sql") as src:
        src.read_only = True
        with src.cursor(name="datamesh_load") as read, conn.transaction():
            read.execute(query.encode())
            batch = read.fetchmany(COPY_BATCH)
            columns = [sql.Identifier(d.name) for d in read.description or []]
            conn.execute(sql.SQL("TRUNCATE {}").format(target))
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                target, sql.SQL(", ").join(columns)
            )
            with conn.cursor().copy(copy_sql) as copy:
                while batch:
                    for row in batch:
                        copy.write_row(row)
                    rows += len(batch)
                    batch = read.fetchmany(COPY_BATCH)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datamesh-sql", description=__doc__)
    parser.add_argument("--contract", type=Path, default=CONTRACT)
    parser.add_argument("--termination-log", type=Path, default=Path(report.TERMINATION_LOG))
    args = parser.parse_args(argv)
    # One statement: a trailing semicolon is dropped, any other makes the run fail.
    query = os.environ.get("DATAMESH_SQL", "").strip().rstrip(";").rstrip()
    if not os.environ.get("PGHOST"):
        # The operator hands out a login only where the platform has a warehouse: without
        # one there is no table to refresh, so the run has nothing to do.
        print("datamesh-sql: no warehouse is configured for this product: nothing to refresh")
        return 0
    try:
        if not query:
            raise PipelineError("DATAMESH_SQL is empty: set spec.pipeline.sql")
        contract = read_contract(args.contract)
        job = job_of(contract)
        result = run(job, query, os.environ)
        # The checks run right after the load, on the rows it wrote.
        with psycopg.connect("", application_name="datamesh-check", autocommit=True) as conn:
            result["quality"] = json.loads(
                quality.check(conn, quality.product_of(contract), args.termination_log)
            )
    except (PipelineError, ValueError) as exc:
        print(f"datamesh-sql: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"datamesh-sql: the warehouse refused the run: {first}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
