"""The local warehouse (PostgreSQL, started as `make cluster-up` starts it) for tests,
and queries as its admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from localcluster.warehouse import Warehouse, WarehouseState


def running_warehouse(directory: Path) -> Iterator[Warehouse]:
    """A started warehouse in ``directory``, stopped (and its data deleted) afterwards."""
    warehouse = Warehouse(directory, die_with_parent=True)
    warehouse.start()
    try:
        yield warehouse
    finally:
        warehouse.stop()


def state(warehouse: Warehouse) -> WarehouseState:
    loaded = warehouse.load()
    assert loaded is not None, "the warehouse is not running"
    return loaded


def admin(warehouse: Warehouse, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``statement`` run as the warehouse's admin (none for a command)."""
    with psycopg.connect(state(warehouse).dsn(), autocommit=True) as conn:
        cur = conn.execute(statement.encode() if not params else statement, params or None)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []
