"""The warehouse step of a product's reconcile: bring its tables, role and grants to the
plan, and hand its pipeline the credentials to log in.

The plan and the statements are pure (``dataplane.warehouse``); this module decides when
to talk to the warehouse at all. A product whose plan digest equals the one its status
records, last provisioned without error, sends nothing: not even a catalog read, so an
unchanged mesh's resyncs and restarts leave the warehouse alone. Drift (a grant revoked
or a table dropped by hand) is repaired by a slower pass, every ``drift_seconds`` per
product, counted from the operator's start so a restart does not read every product at
once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any

import psycopg

from datamesh.api.models import DataProduct, DeletionPolicy, PortType, WarehouseStatus
from datamesh.controller import metrics, provisioning
from datamesh.controller.kube import Cluster, api_message, is_status
from datamesh.controller.status import WarehouseOutcome
from datamesh.controller.warehouses import WarehouseConnection
from datamesh.dataplane.warehouse.plan import Consumer, ProductWarehouse, plan
from datamesh.dataplane.warehouse.statements import changes
from datamesh.dataplane.warehouse.types import UnmappedType
from datamesh.governance.warehouse_names import WarehouseNameError, WarehouseNames

log = logging.getLogger("datamesh.controller.warehousing")

CONDITION = "WarehouseReady"


def table_ports(product: DataProduct) -> list[str]:
    return [p.name for p in product.spec.output_ports if p.type == PortType.TABLE]


def plan_digest(desired: ProductWarehouse, connection: WarehouseConnection) -> str:
    """Changes with anything the warehouse or the pipeline's credentials hold: the plan,
    the warehouse, and the pipeline's password (so rotating the key is provisioned)."""
    password = hashlib.sha256(connection.password(desired.pipeline_role).encode()).hexdigest()
    # Canonical JSON, never repr: a set's repr order changes with each process's hash
    # seed, and a digest that moved at every restart would send everything again.
    canonical = json.dumps(asdict(desired), sort_keys=True, default=sorted)
    text = f"{connection.name}\n{canonical}\n{password}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def last_ready(previous: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == CONDITION and c.get("status") == "True"
        for c in previous.get("conditions") or []
    )


def credentials_secret(
    product: DataProduct, uid: str, connection: WarehouseConnection, role: str
) -> provisioning.Child:
    """The pipeline's login, under libpq's variable names (the CronJob loads them with
    ``envFrom``). Owned by the product, so it goes with it."""
    names = provisioning.Names(product.metadata.name)
    meta = provisioning.child_metadata(product, uid, names.warehouse_secret)
    return provisioning.Child(
        "Secret",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                **meta,
                "annotations": {"datamesh.io/warehouse": connection.name},
            },
            "type": "Opaque",
            "stringData": connection.libpq_settings(role),
        },
    )


class WarehouseProvisioner:
    def __init__(
        self,
        cluster: Cluster,
        connections: Mapping[str, WarehouseConnection],
        *,
        drift_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.connections = dict(connections)
        self.default = next(iter(self.connections), None)
        self.drift_seconds = drift_seconds
        # One engine per warehouse, so each worker thread keeps its connection.
        self.engines = {name: c.engine() for name, c in self.connections.items()}
        self.clock = clock
        self._verified: dict[str, float] = {}
        self._guard = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.connections)

    def _drift_due(self, uid: str) -> bool:
        """Whether the product's objects are due a read from the warehouse. A product
        first seen by this process counts as read now: a restart sends nothing."""
        now = self.clock()
        with self._guard:
            since = self._verified.setdefault(uid, now)
        return bool(self.drift_seconds) and now - since >= self.drift_seconds

    def _verified_now(self, uid: str) -> None:
        with self._guard:
            self._verified[uid] = self.clock()

    def forget(self, uid: str) -> None:
        with self._guard:
            self._verified.pop(uid, None)

    def connection_for(self, product: DataProduct) -> WarehouseConnection | None:
        name = product.spec.warehouse or self.default
        return self.connections.get(name) if name else None

    def provision(
        self,
        product: DataProduct,
        uid: str,
        consumers: Iterable[Consumer],
        previous: Mapping[str, Any],
    ) -> WarehouseOutcome | None:
        """Bring the product's warehouse objects to its plan; None when no warehouse is
        configured (the product's status then has no warehouse condition)."""
        if not self.enabled:
            return None
        if not table_ports(product):
            return WarehouseOutcome(True, "NotRequested", "the product has no table port")
        connection = self.connection_for(product)
        if connection is None:
            return WarehouseOutcome(
                False,
                "UnknownWarehouse",
                f"spec.warehouse {product.spec.warehouse!r} is not one of the platform's "
                f"warehouses ({', '.join(self.connections)})",
            )
        try:
            desired = plan(product, consumers)
        except UnmappedType as exc:
            return WarehouseOutcome(False, "UnmappedType", str(exc))
        except WarehouseNameError as exc:
            return WarehouseOutcome(False, "InvalidName", str(exc))
        digest = plan_digest(desired, connection)
        names = provisioning.Names(product.metadata.name)
        status = WarehouseStatus(
            name=connection.name,
            role=desired.pipeline_role,
            tables=[f"{t.schema}.{t.name}" for t in desired.tables],
            plan_hash=digest,
        )
        before = previous.get("warehouse") or {}
        if before.get("planHash") == digest and last_ready(previous) and not self._drift_due(uid):
            return self._done(status)
        try:
            engine = self.engines[connection.name]
            out = changes(desired, engine.observe(desired))
            engine.apply(out.statements)
            engine.set_password(desired.pipeline_role, connection.password(desired.pipeline_role))
        except psycopg.Error as exc:
            down = isinstance(exc, psycopg.OperationalError)
            return WarehouseOutcome(
                False,
                "WarehouseUnavailable" if down else "StatementFailed",
                f"warehouse {connection.name}: {_first_line(exc)}"
                + (" (retrying)" if down else "; nothing was changed (retrying)"),
                status=_recorded(before),
                retry=True,
            )
        metrics.WAREHOUSE_STATEMENTS.labels(connection.name).inc(len(out.statements))
        if out.statements:
            log.info(
                "%s: %d statements sent to warehouse %s",
                product.ref,
                len(out.statements),
                connection.name,
            )
        try:
            self._write_secret(credentials_secret(product, uid, connection, desired.pipeline_role))
        except Exception as exc:
            return WarehouseOutcome(
                False,
                "CredentialsFailed",
                f"Secret {names.warehouse_secret}: {api_message(exc)} (retrying)",
                status=status,
                retry=True,
            )
        self._verified_now(uid)
        if out.conflicts:
            return WarehouseOutcome(
                False,
                "BreakingChange",
                "; ".join(out.conflicts),
                status=status,
            )
        return self._done(status)

    @staticmethod
    def _done(status: WarehouseStatus) -> WarehouseOutcome:
        count = len(status.tables)
        return WarehouseOutcome(
            True,
            "Provisioned",
            f"{count} table{'s' if count != 1 else ''} in warehouse {status.name}: "
            + ", ".join(status.tables),
            status=status,
        )

    def _write_secret(self, child: provisioning.Child) -> None:
        """Created, or overwritten when it exists: the operator writes the pipeline's
        Secret and never reads it (its RBAC has no get on Secrets)."""
        ns = child.manifest["metadata"]["namespace"]
        try:
            self.cluster.create("Secret", ns, child.manifest)
        except Exception as exc:
            if not is_status(exc, 409):
                raise
            patch = {k: v for k, v in child.manifest.items() if k in ("metadata", "stringData")}
            self.cluster.patch("Secret", ns, child.name, patch)

    def release(self, product: DataProduct) -> str:
        """On deletion: ``Retain`` keeps the tables, their rows and the role (a product of
        the same name re-adopts them); ``Delete`` drops every version's table and the
        role. Raises when the warehouse cannot be reached, so the deletion waits."""
        if not self.enabled or not table_ports(product):
            return "no tables"
        connection = self.connection_for(product)
        if connection is None:
            return "no warehouse"
        names = WarehouseNames(product.spec.domain, product.metadata.name)
        try:
            names.pipeline_role  # noqa: B018  (raises for a name the warehouse refused)
        except WarehouseNameError:
            return "no tables (its names never fitted the warehouse)"
        if product.spec.deletion_policy != DeletionPolicy.DELETE:
            return f"retained its tables in warehouse {connection.name}"
        dropped = self.engines[connection.name].drop_product(
            names.schema, names.table_prefix, names.pipeline_role
        )
        return f"dropped {', '.join(dropped) or 'nothing'} in warehouse {connection.name}"


def _recorded(before: Mapping[str, Any]) -> WarehouseStatus | None:
    """What the status said before a failed pass: still true of the warehouse."""
    return WarehouseStatus.model_validate(before) if before else None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
