"""The live mesh with real data, as `make demo` and the end-to-end tests run it: the
warehouse's Secret for the operator, a seeded source database for the source-aligned
products (``seeds/sources.sql``) with a Secret per domain to read it, and each product's
pipeline run once, upstreams before their consumers.

Standard library only, like the rest of ``localcluster``: SQL goes through psql.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .common import ClusterError
from .warehouse import Warehouse, WarehouseState

SEEDS = Path(__file__).with_name("seeds") / "sources.sql"
SOURCE_DATABASE = "sources"
SOURCE_ROLE = "datamesh_sources"
# What the live products' spec.pipeline.sourceSecret names, in each domain's namespace.
SOURCE_SECRET = "sources"
WAREHOUSE_NAME = "main"
WAREHOUSE_SECRET = "datamesh-warehouse"
SOURCE_SCHEMAS = ("shop", "ledger", "crm", "app")
# Every table of the mesh with its exact number of rows.
ROW_COUNTS = """
SELECT n.nspname AS schema, c.relname AS table,
       (xpath('/row/n/text()',
              query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname),
                           false, true, '')))[1]::text::bigint AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
ORDER BY 1, 2
"""


def _derived(state: WarehouseState, purpose: str) -> str:
    """A secret of this cluster's, derived from its admin password: nothing more to keep."""
    return hmac.new(state.password.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:32]


def _state(warehouse: Warehouse) -> WarehouseState:
    state = warehouse.load()
    if state is None or not warehouse.running():
        raise ClusterError("the warehouse is not running (make cluster-up starts it)")
    return state


def seed_sources(warehouse: Warehouse) -> None:
    """The ``sources`` database with its rows, and a read-only login for the loads.
    Safe to repeat: the source tables are made again from the seed."""
    state = _state(warehouse)
    exists = warehouse.psql(
        "postgres", "-tA", "-c", f"SELECT 1 FROM pg_database WHERE datname = '{SOURCE_DATABASE}'"
    )
    if not exists.strip():
        warehouse.psql("postgres", "-c", f"CREATE DATABASE {SOURCE_DATABASE}")
    warehouse.psql(SOURCE_DATABASE, "-f", str(SEEDS))
    password = _derived(state, "sources")
    schemas = ", ".join(SOURCE_SCHEMAS)
    warehouse.psql(
        SOURCE_DATABASE,
        "-c",
        f"DO $$ BEGIN CREATE ROLE {SOURCE_ROLE} LOGIN; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        "-c",
        f"ALTER ROLE {SOURCE_ROLE} PASSWORD '{password}'",
        "-c",
        f"GRANT USAGE ON SCHEMA {schemas} TO {SOURCE_ROLE}",
        "-c",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schemas} TO {SOURCE_ROLE}",
    )


def _secret(name: str, namespace: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": dict(data),
    }


def warehouse_secret(warehouse: Warehouse, host: str, namespace: str) -> dict[str, Any]:
    """The Secret the chart's ``warehouses`` value names: the admin connection as the
    operator's pod reaches it (``host``: the node's bridge address), and the key the
    pipelines' passwords are derived from."""
    state = _state(warehouse)
    return _secret(
        WAREHOUSE_SECRET,
        namespace,
        {
            "dsn": f"{state.dsn(host)}&connect_timeout=5",
            "credentials-key": _derived(state, "credentials"),
        },
    )


def source_secrets(
    warehouse: Warehouse, host: str, namespaces: Iterable[str]
) -> list[dict[str, Any]]:
    """Each domain's login to the source database, under libpq's names."""
    state = _state(warehouse)
    data = {
        "PGHOST": host,
        "PGPORT": str(state.port),
        "PGDATABASE": SOURCE_DATABASE,
        "PGUSER": SOURCE_ROLE,
        "PGPASSWORD": _derived(state, "sources"),
    }
    return [_secret(SOURCE_SECRET, ns, data) for ns in sorted(set(namespaces))]


def helm_values() -> list[str]:
    return [
        *("--set", f"warehouses[0].name={WAREHOUSE_NAME}"),
        *("--set", f"warehouses[0].secretName={WAREHOUSE_SECRET}"),
    ]


def pipeline_waves(products: Iterable[Mapping[str, Any]]) -> list[list[tuple[str, str]]]:
    """The products with a pipeline as (namespace, name), in waves: each product after
    every upstream of it that has a pipeline. A cycle is an error (lineage refuses it
    earlier; this only keeps the demo from waiting forever)."""
    by_ref: dict[str, tuple[str, str]] = {}
    upstream: dict[str, set[str]] = {}
    for item in products:
        meta, spec = item["metadata"], item["spec"]
        if not spec.get("pipeline"):
            continue
        ref = f"{spec['domain']}/{meta['name']}"
        by_ref[ref] = (meta["namespace"], meta["name"])
        upstream[ref] = {
            f"{port.get('domain') or spec['domain']}/{port['product']}"
            for port in spec.get("inputPorts") or []
        }
    waves: list[list[tuple[str, str]]] = []
    done: set[str] = set()
    while len(done) < len(by_ref):
        ready = sorted(r for r in by_ref if r not in done and (upstream[r] & by_ref.keys()) <= done)
        if not ready:
            raise ClusterError(f"lineage cycle among {sorted(set(by_ref) - done)}")
        waves.append([by_ref[r] for r in ready])
        done.update(ready)
    return waves
