"""Warehouse names of the mesh's objects, and the identifier limit every engine checks.

Kubernetes names allow ``-``, SQL identifiers are simpler when they do not: every name
here is lower case with ``_``. PostgreSQL truncates identifiers longer than 63 bytes
silently (two products could then share a role), so a longer one is an error, never cut.
"""

from __future__ import annotations

from dataclasses import dataclass

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
