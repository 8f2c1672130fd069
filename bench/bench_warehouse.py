"""The warehouse: provisioning 1,000 products' tables, roles and grants in a real
PostgreSQL (started as `make cluster-up` starts it), the statements each needs, the
statements a resync that changes nothing sends (target 0, counted by the server's
pg_stat_statements), a drift pass that only reads, and the live mesh's pipelines run
with `datamesh-sql` against the seeded sources.

Provisioning runs the operator's own path for each product (plan, read the catalog,
statements, one transaction, the pipeline's password) one product at a time, as one
worker does; the resync goes through the operator's warehouse step with the status the
first pass produced. Needs Debian's postgresql; run by `make bench`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from tests.support.factories import product_dict  # noqa: E402

from datamesh.api.models import DataProduct  # noqa: E402
from datamesh.controller import provisioning  # noqa: E402
from datamesh.controller.kube import Cluster  # noqa: E402
from datamesh.controller.products import consumers  # noqa: E402
from datamesh.controller.warehouses import WarehouseConnection  # noqa: E402
from datamesh.controller.warehousing import WarehouseProvisioner, plan_digest  # noqa: E402
from datamesh.dataplane.warehouse.plan import plan  # noqa: E402
from datamesh.dataplane.warehouse.postgres import PostgresWarehouse  # noqa: E402
from datamesh.dataplane.warehouse.statements import changes  # noqa: E402
from datamesh.governance.lineage import Graph, GraphLookup  # noqa: E402
from localcluster import livemesh  # noqa: E402
from localcluster.warehouse import Warehouse  # noqa: E402

DOMAINS = 20
PER_DOMAIN = 50
TARGET_RESYNC_STATEMENTS = 0


def synthetic_mesh() -> dict[str, DataProduct]:
    """1,000 products: each has a table port, two reader domains, and reads the product
    before it in its domain (so grants to consumers' pipeline roles are exercised)."""
    out = {}
    for d in range(DOMAINS):
        domain = f"domain-{d:02d}"
        for i in range(PER_DOMAIN):
            doc = product_dict(
                outputPorts=[{"name": "rows", "type": "table", "location": "rows"}],
                access={"readers": {"domains": [domain, f"domain-{(d + 1) % DOMAINS:02d}"]}},
                inputPorts=[{"product": f"p{i - 1:03d}"}] if i else [],
            )
            doc["metadata"].update(name=f"p{i:03d}", namespace=domain, labels={})
            doc["spec"]["domain"] = domain
            product = DataProduct.model_validate(doc)
            out[product.ref] = product
    return out


def statements_sent(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query NOT LIKE '%pg_stat_statements%'"
        ).fetchone()
    return int(row[0]) if row else 0


def reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def provision_all(
    engine: PostgresWarehouse, conn: WarehouseConnection, mesh: dict[str, DataProduct]
) -> tuple[float, list[int], dict[str, dict[str, Any]]]:
    lookup = GraphLookup(Graph.of(mesh.values()), mesh)
    counts = []
    started = time.perf_counter()
    for product in mesh.values():
        desired = plan(product, consumers(product, lookup))
        out = changes(desired, engine.observe(desired))
        engine.apply(out.statements)
        engine.set_password(desired.pipeline_role, conn.password(desired.pipeline_role))
        counts.append(len(out.statements) + 1)
    elapsed = time.perf_counter() - started
    # The status a successful pass leaves, as the operator writes it.
    statuses = {
        ref: {
            "warehouse": {
                "name": "main",
                "planHash": plan_digest(plan(product, consumers(product, lookup)), conn),
            },
            "conditions": [{"type": "WarehouseReady", "status": "True"}],
        }
        for ref, product in mesh.items()
    }
    return elapsed, counts, statuses


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-warehouse-") as tmp:
        server = Warehouse(Path(tmp), die_with_parent=True)
        state = server.start()
        try:
            dsn = state.dsn()
            conn = WarehouseConnection(
                "main", dsn, b"k" * 32, "127.0.0.1", str(state.port), "warehouse"
            )
            engine = PostgresWarehouse(dsn)
            mesh = synthetic_mesh()
            lookup = GraphLookup(Graph.of(mesh.values()), mesh)

            reset(dsn)
            elapsed, counts, statuses = provision_all(engine, conn, mesh)
            sent_first = statements_sent(dsn)
            print(
                f"provisioning {len(mesh)} products: {elapsed:.1f} s "
                f"({len(mesh) / elapsed:.0f} products/s); statements per product: "
                f"mean {statistics.mean(counts):.1f}, max {max(counts)} "
                f"(server counted {sent_first / len(mesh):.1f} per product with catalog reads)"
            )

            provisioner = WarehouseProvisioner(cast(Cluster, None), {"main": conn}, drift_seconds=0)
            reset(dsn)
            started = time.perf_counter()
            for ref, product in mesh.items():
                outcome = provisioner.provision(
                    product, "uid-" + ref, consumers(product, lookup), statuses[ref]
                )
                assert outcome is not None and outcome.ok, outcome
            resync_s = time.perf_counter() - started
            sent = statements_sent(dsn)
            print(
                f"resync of {len(mesh)} unchanged products: {resync_s * 1000:.0f} ms, "
                f"{sent} statements sent (target {TARGET_RESYNC_STATEMENTS}: "
                f"{met(sent == TARGET_RESYNC_STATEMENTS)})"
            )

            reset(dsn)
            started = time.perf_counter()
            drifted = 0
            for product in mesh.values():
                desired = plan(product, consumers(product, lookup))
                drifted += len(changes(desired, engine.observe(desired)).statements)
            drift_s = time.perf_counter() - started
            print(
                f"drift pass (catalog reads only) over {len(mesh)} products: {drift_s:.1f} s, "
                f"{statements_sent(dsn) / len(mesh):.1f} reads per product, {drifted} changes"
            )
            pipelines(server, conn)
        finally:
            server.stop()
    return 0


def pipelines(server: Warehouse, conn: WarehouseConnection) -> None:
    """The live mesh's pipelines, upstreams first, each as its pod runs it."""
    livemesh.seed_sources(server)
    docs = [
        yaml.safe_load(p.read_text())
        for p in sorted((ROOT / "products").rglob("*.yaml"))
        if p.name != "namespace.yaml"
    ]
    mesh = {p.ref: p for p in (DataProduct.model_validate(d) for d in docs)}
    lookup = GraphLookup(Graph.of(mesh.values()), mesh)
    engine = PostgresWarehouse(conn.dsn)
    for product in mesh.values():
        desired = plan(product, consumers(product, lookup))
        engine.apply(changes(desired, engine.observe(desired)).statements)
        engine.set_password(desired.pipeline_role, conn.password(desired.pipeline_role))
    by_name = {p.metadata.name: p for p in mesh.values()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for wave in livemesh.pipeline_waves(docs):
            for _, name in wave:
                product = by_name[name]
                job = product.spec.pipeline
                assert job is not None and job.sql is not None
                contract = Path(tmp) / f"{name}.yaml"
                contract.write_text(yaml.safe_dump(provisioning.contract_document(product)))
                env = {
                    "PATH": os.environ["PATH"],
                    "DATAMESH_SQL": job.sql,
                    **conn.libpq_settings(plan(product).pipeline_role),
                }
                if job.source_secret:
                    source = livemesh.source_secrets(server, "127.0.0.1", ["x"])[0]
                    env |= {f"SOURCE_{k}": v for k, v in source["stringData"].items()}
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "datamesh.dataplane.sql_runner",
                        "--contract",
                        str(contract),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                )
    print(
        f"live mesh pipelines ({len(mesh)} products, upstreams first, one process each): "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
