"""The contract's logical types as PostgreSQL column types (the mapping the README
documents). Nested types are stored as ``jsonb``: queryable, and no engine-specific
composite types to migrate."""

from __future__ import annotations

from datamesh.api.models import FieldType

POSTGRES_TYPES: dict[FieldType, str] = {
    FieldType.STRING: "text",
    FieldType.INTEGER: "integer",
    FieldType.LONG: "bigint",
    FieldType.FLOAT: "real",
    FieldType.DOUBLE: "double precision",
    FieldType.DECIMAL: "numeric",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.TIMESTAMP: "timestamp with time zone",
    FieldType.BINARY: "bytea",
    FieldType.ARRAY: "jsonb",
    FieldType.MAP: "jsonb",
    FieldType.STRUCT: "jsonb",
}


class UnmappedType(ValueError):
    """A logical type the engine has no column type for."""


def postgres_type(field_type: FieldType) -> str:
    try:
        return POSTGRES_TYPES[field_type]
    except KeyError:
        raise UnmappedType(f"no PostgreSQL column type for {field_type.value!r}") from None
