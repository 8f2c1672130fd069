"""Warehouse names of the mesh's objects, and the identifier limit every engine checks.
Governance, not the data plane: ``meshctl validate`` refuses a name the warehouse could
not keep in the pull request, before anything is provisioned.

Kubernetes names allow ``-``, SQL identifiers are simpler when they do not: every name
here is lower case with ``_``. PostgreSQL truncates identifiers longer than 63 bytes
silently (two products could then share a role), so a longer one is an error, never cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

# PostgreSQL's NAMEDATALEN - 1; other engines allow more, none fewer that we target.
MAX_IDENTIFIER_BYTES = 63
# Roles the platform creates start with this, so it never touches a role it did not make.
ROLE_PREFIX = "dm_"


class IdentifierTooLong(ValueError):
    """A warehouse name longer than the engine keeps; the message names what it is for."""


def sql_name(kubernetes_name: str) -> str:
    return kubernetes_name.replace("-", "_")


def checked(name: str, what: str) -> str:
    size = len(name.encode())
    if size > MAX_IDENTIFIER_BYTES:
        raise IdentifierTooLong(
            f"{what} {name!r} is {size} bytes; the warehouse keeps at most "
            f"{MAX_IDENTIFIER_BYTES} (shorten the name)"
        )
    return name


@dataclass(frozen=True)
class WarehouseNames:
    """The names one product's objects get."""

    domain: str
    product: str

    @property
    def schema(self) -> str:
        """One schema per domain."""
        return checked(sql_name(self.domain), "the schema of domain")

    def table(self, port: str, major: int) -> str:
        """One table per output port and major version, side by side (``orders_v1``)."""
        return checked(f"{sql_name(port)}_v{major}", "the table of port")

    @property
    def pipeline_role(self) -> str:
        """The role the product's pipeline logs in as: writes its own tables only."""
        return checked(
            f"{ROLE_PREFIX}{sql_name(self.domain)}__{sql_name(self.product)}",
            "the pipeline role of product",
        )


def reader_role(domain: str) -> str:
    """The group role of a domain's readers (granted to its people outside the mesh)."""
    return checked(f"{ROLE_PREFIX}{sql_name(domain)}__readers", "the reader role of domain")


def problems(
    domain: str, product: str, major: int, table_ports: list[tuple[int, str]]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every warehouse name of a product that is too long, as (field path, message):
    the schema (domain), the pipeline role (domain and product name) and each table
    port's versioned table (``table_ports``: index in spec.outputPorts, port name)."""
    names = WarehouseNames(domain, product)
    candidates: list[tuple[tuple[str | int, ...], Callable[[], str]]] = [
        (("spec", "domain"), lambda: names.schema),
        (("metadata", "name"), lambda: names.pipeline_role),
        *(
            (("spec", "outputPorts", i, "name"), partial(names.table, port, major))
            for i, port in table_ports
        ),
    ]
    out = []
    for path, name in candidates:
        try:
            name()
        except IdentifierTooLong as exc:
            out.append((path, str(exc)))
    return out
