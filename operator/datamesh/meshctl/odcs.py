"""Export a product's contract as an Open Data Contract Standard (ODCS) v3 document, so
that it interoperates with datacontract-cli and other ODCS tools. Pure.
"""

from __future__ import annotations

import re
from typing import Any

from datamesh.api.models import DataProduct, FieldType, QualityCheck, SchemaField

ODCS_VERSION = "v3.1.0"

# ODCS logical types: string, date, timestamp, time, number, integer, object, array,
# boolean, map. Our physical-ish types map onto them; the original stays physicalType.
_LOGICAL = {
    FieldType.STRING: "string",
    FieldType.INTEGER: "integer",
    FieldType.LONG: "integer",
    FieldType.FLOAT: "number",
    FieldType.DOUBLE: "number",
    FieldType.DECIMAL: "number",
    FieldType.BOOLEAN: "boolean",
    FieldType.DATE: "date",
    FieldType.TIMESTAMP: "timestamp",
    FieldType.BINARY: "string",
    FieldType.ARRAY: "array",
    FieldType.MAP: "object",
    FieldType.STRUCT: "object",
}
_METRIC = {
    "not_null": "nullValues",
    "unique": "duplicateValues",
    "row_count": "rowCount",
    "accepted_values": "invalidValues",
    "range": "invalidValues",
}
_DIMENSION = {
    "not_null": "completeness",
    "completeness": "completeness",
    "unique": "uniqueness",
    "freshness": "timeliness",
    "row_count": "completeness",
    "accepted_values": "conformity",
    "range": "conformity",
    "referential_integrity": "consistency",
}
_UNITS = {"s": "s", "m": "m", "h": "h", "d": "d"}


def _stable_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _property(field: SchemaField, position: int | None) -> dict[str, Any]:
    logical = _LOGICAL[FieldType(field.type)]
    out: dict[str, Any] = {
        "id": _stable_id(field.name),
        "name": field.name,
        "logicalType": logical,
        "physicalType": str(field.type),
        "required": not field.nullable,
    }
    if field.description:
        out["description"] = field.description
    if field.primary_key:
        out["primaryKey"] = True
        out["primaryKeyPosition"] = position
    if field.pii:
        out["classification"] = "pii"
        out["criticalDataElement"] = True
        if field.pii_category:
            out["customProperties"] = [
                {"property": "piiCategory", "value": str(field.pii_category)}
            ]
    c = field.constraints
    if c is not None:
        options: dict[str, Any] = {}
        for key, value in (
            ("minLength", c.min_length),
            ("maxLength", c.max_length),
            ("pattern", c.pattern),
            ("minimum", c.minimum),
            ("maximum", c.maximum),
        ):
            if value is not None and (
                logical in ("integer", "number") or key in ("minLength", "maxLength", "pattern")
            ):
                options[key] = value
        if options:
            out["logicalTypeOptions"] = options
        if c.unique:
            out["unique"] = True
        if c.allowed_values:
            out["quality"] = [
                {
                    "type": "library",
                    "metric": "invalidValues",
                    "arguments": {"validValues": list(c.allowed_values)},
                    "mustBe": 0,
                    "dimension": "conformity",
                }
            ]
    return out


def _quality(check: QualityCheck) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": _stable_id(check.name),
        "name": check.name,
        "severity": str(check.severity),
    }
    if check.sql:
        out.update(type="sql", query=check.sql, mustBeGreaterOrEqualTo=check.threshold)
    else:
        rule = str(check.rule)
        out["dimension"] = _DIMENSION.get(rule, "accuracy")
        if rule in _METRIC:
            out.update(
                type="library",
                metric=_METRIC[rule],
                mustBeLessOrEqualTo=round(1 - check.threshold, 6),
                unit="percent",
            )
            if check.column:
                out["arguments"] = {"column": check.column}
        else:
            out.update(
                type="custom",
                engine="datamesh",
                implementation={"rule": rule, "column": check.column, "threshold": check.threshold},
            )
    return out


def to_odcs(product: DataProduct) -> dict[str, Any]:
    """The ODCS document: fundamentals from the product's metadata and owner, one schema
    object (the first output port's location, else the product's name) whose properties
    are the schema's fields with logical types and primary-key positions, quality rules
    from the declared checks, and the SLA as ODCS service-level properties."""
    spec = product.spec
    keys = [f for f in spec.schema_.fields if f.primary_key]
    properties = [
        _property(f, keys.index(f) + 1 if f in keys else None) for f in spec.schema_.fields
    ]
    location = spec.output_ports[0].location if spec.output_ports else product.metadata.name
    sla: list[dict[str, Any]] = []
    if spec.sla is not None:
        amount, unit = spec.sla.freshness[:-1], spec.sla.freshness[-1]
        sla.append({"property": "latency", "value": int(amount), "unit": _UNITS[unit]})
        sla.append(
            {"property": "generalAvailability", "value": spec.sla.availability, "unit": "percent"}
        )
        if spec.sla.completeness is not None:
            sla.append(
                {"property": "completeness", "value": spec.sla.completeness, "unit": "percent"}
            )
    sla.append({"property": "retention", "value": spec.retention_days, "unit": "d"})
    if spec.pipeline is not None:
        sla.append({"property": "frequency", "value": spec.pipeline.schedule, "unit": "cron"})
    support: list[dict[str, Any]] = [
        {"channel": "email", "tool": "email", "url": f"mailto:{spec.owner.email}"}
    ]
    if spec.owner.channel:
        support.append({"channel": spec.owner.channel, "tool": "slack"})
    deprecated = spec.deprecation is not None and spec.deprecation.deprecated
    document: dict[str, Any] = {
        "apiVersion": ODCS_VERSION,
        "kind": "DataContract",
        "id": f"{spec.domain}.{product.metadata.name}",
        "name": product.metadata.name,
        "version": spec.version,
        "status": "deprecated" if deprecated else "active",
        "domain": spec.domain,
        "dataProduct": product.metadata.name,
        "description": {
            "purpose": spec.description,
            "usage": f"Read from the output ports; classification {spec.classification}.",
        },
        "tags": list(spec.tags),
        "schema": [
            {
                "id": _stable_id(product.metadata.name),
                "name": product.metadata.name,
                "physicalName": location,
                "logicalType": "object",
                "physicalType": "table",
                "description": spec.description,
                "properties": properties,
                "quality": [_quality(q) for q in spec.quality_checks],
            }
        ],
        "slaProperties": sla,
        "team": {
            "name": spec.owner.team,
            "members": [{"username": spec.owner.email, "role": "owner"}],
        },
        "support": support,
        "customProperties": [
            {"property": "classification", "value": str(spec.classification)},
            {"property": "productType", "value": str(spec.type)},
            {"property": "format", "value": str(spec.schema_.format)},
        ],
    }
    return document
