"""Warehouse names of the mesh's objects, and the rules every engine's names obey.
Governance, not the data plane: ``meshctl validate`` refuses a name the warehouse could
not keep in the pull request, before anything is provisioned.

Kubernetes names allow ``-``, SQL identifiers are simpler without: every name here is
lower case with ``_``, and ``__`` separates its parts, so a Kubernetes name with ``--``
(which would read as a separator) is refused rather than risk two objects sharing a name.
PostgreSQL truncates identifiers longer than 63 bytes silently (two products could then
share a table or a role), so a longer name is an error, never cut.

    schema          <domain>                       one per domain
    table           <product>__<port>_v<major>     one per table port and major version
    pipeline role   dmp_<domain>__<product>        logs in; writes its own tables only
    reader role     dmr_<domain>                   a group: the domain's people
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

# PostgreSQL's NAMEDATALEN - 1; other engines allow more, none fewer that we target.
MAX_IDENTIFIER_BYTES = 63
PIPELINE_ROLE_PREFIX = "dmp_"
READER_ROLE_PREFIX = "dmr_"
# Roles the platform creates start with one of these; it never touches any other role.
ROLE_PREFIXES = (PIPELINE_ROLE_PREFIX, READER_ROLE_PREFIX)


class WarehouseNameError(ValueError):
    """A name the warehouse cannot keep as it is; the message names what it is for."""


def sql_name(kubernetes_name: str, what: str) -> str:
    if "--" in kubernetes_name:
        raise WarehouseNameError(
            f"{what} {kubernetes_name!r} has '--', which the warehouse name would read as "
            "its '__' separator (use a single '-')"
        )
    return kubernetes_name.replace("-", "_")


def checked(name: str, what: str) -> str:
    size = len(name.encode())
    if size > MAX_IDENTIFIER_BYTES:
        raise WarehouseNameError(
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
        return checked(sql_name(self.domain, "domain"), "the schema of domain")

    @property
    def table_prefix(self) -> str:
        """What every table of the product starts with (product names have no ``_``, so
        no other product's tables do)."""
        return f"{sql_name(self.product, 'product')}__"

    def table(self, port: str, major: int) -> str:
        """Beside the older majors' tables, which stay until retired."""
        return checked(f"{self.table_prefix}{sql_name(port, 'port')}_v{major}", "the table of port")

    @property
    def pipeline_role(self) -> str:
        domain, product = sql_name(self.domain, "domain"), sql_name(self.product, "product")
        return checked(f"{PIPELINE_ROLE_PREFIX}{domain}__{product}", "the pipeline role of product")


def reader_role(domain: str) -> str:
    """The group role of a domain's readers (granted to its people outside the mesh)."""
    return checked(f"{READER_ROLE_PREFIX}{sql_name(domain, 'domain')}", "the reader role of domain")


def problems(
    domain: str,
    product: str,
    major: int,
    table_ports: list[tuple[int, str]],
    reader_domains: list[str],
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every warehouse name of a product the warehouse could not keep, as (field path,
    message): the schema and reader role of its domain, its pipeline role, each table
    port's versioned table (``table_ports``: index in spec.outputPorts, port name) and
    each reader domain's role."""
    names = WarehouseNames(domain, product)
    candidates: list[tuple[tuple[str | int, ...], Callable[[], str]]] = [
        (("spec", "domain"), lambda: names.schema),
        (("spec", "domain"), partial(reader_role, domain)),
        (("metadata", "name"), lambda: names.pipeline_role),
        *(
            (("spec", "outputPorts", i, "name"), partial(names.table, port, major))
            for i, port in table_ports
        ),
        *(
            (("spec", "access", "readers", "domains", i), partial(reader_role, reader))
            for i, reader in enumerate(reader_domains)
        ),
    ]
    out: list[tuple[tuple[str | int, ...], str]] = []
    for path, name in candidates:
        try:
            name()
        except WarehouseNameError as exc:
            if (path, str(exc)) not in out:
                out.append((path, str(exc)))
    return out
