"""When the warehouse step talks to the warehouse at all: never for a product whose plan
digest is the one its status records (a resync or a restart sends nothing), again once
the drift interval has passed, and with a reason in status when it cannot.

The warehouse here is a free port on loopback that nothing listens on: any attempt to
connect shows up as ``WarehouseUnavailable``, so a test expecting no attempt fails if
one is made."""

from __future__ import annotations

import os
from typing import Any, cast

import localcluster
from datamesh.api.models import DataProduct
from datamesh.controller.kube import Cluster
from datamesh.controller.warehouses import WarehouseConnection
from datamesh.controller.warehousing import WarehouseProvisioner, plan_digest
from datamesh.dataplane.warehouse.plan import Consumer, plan
from tests.support.factories import product

TABLE_PORT = [{"name": "orders", "type": "table", "location": "sales.orders"}]


def connection(key: bytes = b"k" * 32) -> WarehouseConnection:
    port = localcluster.free_port()
    return WarehouseConnection(
        name="main",
        dsn=f"host=127.0.0.1 port={port} dbname=w user=a password=b connect_timeout=2",
        credentials_key=key,
        host="127.0.0.1",
        port=str(port),
        database="w",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provisioner(clock: Clock | None = None, drift: float = 3600) -> WarehouseProvisioner:
    # The Kubernetes client is never reached on these paths (no Secret is written).
    return WarehouseProvisioner(
        cast(Cluster, None), {"main": connection()}, drift_seconds=drift, clock=clock or Clock()
    )


def orders(**spec: Any) -> DataProduct:
    return product(outputPorts=TABLE_PORT, **spec)


def provisioned(p: WarehouseProvisioner, item: DataProduct) -> dict[str, Any]:
    """The status a successful pass would have left."""
    desired = plan(item)
    return {
        "warehouse": {"name": "main", "planHash": plan_digest(desired, p.connections["main"])},
        "conditions": [{"type": "WarehouseReady", "status": "True"}],
    }


def test_no_warehouse_configured_means_no_step() -> None:
    p = WarehouseProvisioner(cast(Cluster, None), {}, drift_seconds=0)
    assert p.provision(orders(), "uid", [], {}) is None


def test_a_product_without_table_ports_needs_nothing() -> None:
    outcome = provisioner().provision(product(outputPorts=[]), "uid", [], {})
    assert outcome is not None and (outcome.ok, outcome.reason) == (True, "NotRequested")


def test_an_unknown_warehouse_is_a_spec_error_not_retried() -> None:
    outcome = provisioner().provision(orders(warehouse="archive"), "uid", [], {})
    assert outcome is not None and outcome.reason == "UnknownWarehouse" and not outcome.retry
    assert "'archive'" in outcome.message and "main" in outcome.message


def test_a_name_over_the_limit_is_reported_not_sent() -> None:
    port = [{"name": "p" * 60, "type": "table", "location": "x"}]
    outcome = provisioner().provision(product(outputPorts=port), "uid", [], {})
    assert outcome is not None and outcome.reason == "InvalidName" and not outcome.retry
    assert "63" in outcome.message


def test_an_unchanged_plan_sends_nothing_even_after_a_restart() -> None:
    p = provisioner()
    item = orders()
    previous = provisioned(p, item)
    outcome = p.provision(item, "uid", [], previous)
    assert outcome is not None and (outcome.ok, outcome.reason) == (True, "Provisioned")
    assert outcome.status is not None and outcome.status.tables == ["sales.orders__orders_v1"]
    # A new process (a restart) has no memory of the product: still nothing is sent.
    again = provisioner().provision(item, "uid", [], previous)
    assert again is not None and again.ok


def test_a_changed_plan_goes_to_the_warehouse_and_a_failure_is_retried() -> None:
    p = provisioner()
    item = orders()
    previous = provisioned(p, item)
    # A new consumer changes who may read: the warehouse must be told.
    outcome = p.provision(item, "uid", [Consumer("finance", "receivables")], previous)
    assert outcome is not None and outcome.reason == "WarehouseUnavailable"
    assert outcome.retry and not outcome.ok
    # What the status said of the warehouse is kept: it is still true there.
    assert outcome.status is not None and outcome.status.name == "main"


def test_the_drift_pass_reads_the_warehouse_once_the_interval_has_passed() -> None:
    clock = Clock()
    p = provisioner(clock, drift=600)
    item = orders()
    previous = provisioned(p, item)
    assert p.provision(item, "uid", [], previous).ok  # type: ignore[union-attr]
    clock.now += 599
    assert p.provision(item, "uid", [], previous).ok  # type: ignore[union-attr]
    clock.now += 2
    outcome = p.provision(item, "uid", [], previous)
    assert outcome is not None and outcome.reason == "WarehouseUnavailable"


def test_a_previous_failure_is_looked_at_again() -> None:
    p = provisioner()
    item = orders()
    previous = provisioned(p, item)
    previous["conditions"] = [{"type": "WarehouseReady", "status": "False"}]
    outcome = p.provision(item, "uid", [], previous)
    assert outcome is not None and outcome.reason == "WarehouseUnavailable"


def test_the_digest_follows_the_plan_the_warehouse_and_the_key() -> None:
    a = connection()
    desired = plan(orders())
    assert plan_digest(desired, a) == plan_digest(plan(orders()), a)
    assert plan_digest(desired, a) != plan_digest(plan(orders(version="1.1.0", description="x")), a)
    assert plan_digest(desired, a) != plan_digest(desired, connection(key=b"r" * 32))
    readers = plan(orders(access={"readers": {"domains": ["finance"]}}))
    assert plan_digest(desired, a) != plan_digest(readers, a)


def test_the_digest_is_the_same_in_every_process() -> None:
    """Sets print in an order that depends on each process's hash seed: the digest of a
    product with several readers must not move with it (a restart would resend all)."""
    import subprocess
    import sys

    script = (
        "from datamesh.controller.warehouses import WarehouseConnection as C\n"
        "from datamesh.controller.warehousing import plan_digest\n"
        "from datamesh.dataplane.warehouse.plan import Consumer, plan\n"
        "from tests.support.factories import product\n"
        "p = product(outputPorts=[{'name': 'o', 'type': 'table', 'location': 'o'}],\n"
        "            access={'readers': {'domains': ['finance', 'marketing', 'hr']}})\n"
        "c = C('main', 'host=x dbname=y', b'k' * 32, 'x', '5432', 'y')\n"
        "print(plan_digest(plan(p, [Consumer('a', 'b'), Consumer('c', 'd')]), c))\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3", "4")
    }
    assert len(digests) == 1, digests
