"""What a product should have in the warehouse: its domain's schema, one table per
``table`` output port and major version, the role its pipeline logs in as, and who may
SELECT each table. Pure: the controller gathers the consumers from its index."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from datamesh.api.models import DataProduct, PortType
from datamesh.dataplane.warehouse.types import postgres_type
from datamesh.governance.breaking_changes import semver
from datamesh.governance.warehouse_names import WarehouseNames, checked, reader_role


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    comment: str | None


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    comment: str | None
    # Roles granted SELECT: reader domains' roles and consumer products' pipeline roles.
    readers: frozenset[str]


@dataclass(frozen=True)
class ProductWarehouse:
    """The desired warehouse objects of one product."""

    schema: str
    pipeline_role: str
    tables: tuple[Table, ...]
    # Roles that log in: the product's pipeline and its consumers' pipelines (whichever
    # product is provisioned first creates a consumer's role); readers' roles are groups.
    login_roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Consumer:
    """A product whose input port names this one: its pipeline role reads our tables."""

    domain: str
    product: str


def plan(product: DataProduct, consumers: Iterable[Consumer] = ()) -> ProductWarehouse:
    """The product's warehouse objects. Raises ``WarehouseNameError`` or ``UnmappedType``
    (both ``ValueError``) with a message naming the object, for the product's status."""
    spec = product.spec
    names = WarehouseNames(spec.domain, product.metadata.name)
    major = semver(spec.version)[0]
    columns = tuple(
        Column(
            name=checked(field.name, "the column"),
            type=postgres_type(field.type),
            not_null=not field.nullable or field.primary_key,
            comment=field.description,
        )
        for field in spec.schema_.fields
    )
    primary_key = tuple(field.name for field in spec.schema_.fields if field.primary_key)
    consumer_roles = {WarehouseNames(c.domain, c.product).pipeline_role for c in consumers}
    readers = frozenset(
        {reader_role(domain) for domain in spec.access.readers.domains} | consumer_roles
    )
    tables = tuple(
        Table(
            schema=names.schema,
            name=names.table(port.name, major),
            columns=columns,
            primary_key=primary_key,
            comment=port.description or spec.description,
            readers=readers,
        )
        for port in spec.output_ports
        if port.type == PortType.TABLE
    )
    return ProductWarehouse(
        schema=names.schema,
        pipeline_role=names.pipeline_role,
        tables=tables,
        login_roles=frozenset({names.pipeline_role} | consumer_roles),
    )
