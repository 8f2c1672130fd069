"""What an engine implements to be a warehouse of the mesh. PostgreSQL (``postgres``) is
the one implemented; another engine (Trino, a cloud warehouse) is one more module with
these methods, and the plan and the statements stay as they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from datamesh.dataplane.warehouse.plan import ProductWarehouse
from datamesh.dataplane.warehouse.statements import Observed


class Engine(Protocol):
    def observe(self, desired: ProductWarehouse) -> Observed:
        """What exists of ``desired``'s objects, read from the engine's catalog."""
        ...

    def apply(self, statements: Sequence[str]) -> None:
        """Run ``statements`` all or nothing."""
        ...

    def set_password(self, role: str, password: str) -> None:
        """The pipeline role's login secret."""
        ...

    def drop_product(self, schema: str, table_prefix: str, role: str) -> list[str]:
        """Drop every table of one product (all its versions) and its pipeline role, for
        ``deletionPolicy: Delete``; returns what was dropped."""
        ...
