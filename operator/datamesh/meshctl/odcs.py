"""Export a product's contract as an Open Data Contract Standard (ODCS) v3 document that
datacontract-cli and other ODCS tools can use as it is: `datacontract lint` accepts it with
no warning, and every rule it can run, `datacontract test` runs. Pure.

Output ports become ODCS servers, one per port and named after it, since a warehouse table,
a topic, an API and a file are reached in different ways:

- table: a ``postgres`` server on the table the platform provisions for it (the domain's
  schema, ``<product>__<port>_v<major>``), with PostgreSQL column types, so that
  ``datacontract test`` runs against the real table. Host, port and database are the
  ``--server`` given to ``meshctl export`` (placeholders, the ``WAREHOUSE_*`` constants,
  without one). A view port's location is ``[database.]schema.view``.
- topic: a ``kafka`` server on ``EVENT_BUS_HOST`` (a placeholder likewise). ODCS servers
  have no topic field, so the topic is the server's ``topic`` custom property.
- api: an ``api`` server whose location is the port's URL.
- file: an ``s3`` or ``sftp`` server for such URLs, ``local`` for a path, else ``custom``.

The one schema object is named after the product as a SQL identifier (``-`` and ``.`` read
as ``_``), so that an SLA element ``<name>.<column>`` has exactly one dot: datacontract-cli
drops a freshness check whose element has more, silently. Only a table or view port gives it
a ``physicalName`` (the first one's table); a topic, URL or path never does.

Quality checks become rules datacontract-cli runs wherever the contract says enough, on the
property of the column they check (its library metrics work per column): not_null and a
column's completeness are ``nullValues``, unique is ``duplicateValues`` (over the primary
key without a column), row_count says the table is not empty, accepted_values and range
are SQL shares over the field's allowed values or bounds, a SQL check keeps its query. A
share below 1 is a percent of failing rows (0..100) where ODCS allows one, else a SQL
share. The freshness check is the SLA's ``freshness`` property on the check's column, else
on the first timestamp column (never a date: it lags its data by up to a day). What only
the pipeline can measure (completeness against the source, referential integrity, or a
check without the column or bounds it needs) is a ``custom`` rule of engine ``datamesh``,
which other tools skip.
"""

from __future__ import annotations

import re
from typing import Any

from datamesh.api.models import (
    BuiltinCheck,
    DataProduct,
    DataProductSpec,
    FieldType,
    OutputPort,
    PortType,
    QualityCheck,
    SchemaField,
)
from datamesh.dataplane.warehouse.types import postgres_type
from datamesh.governance.breaking_changes import semver
from datamesh.governance.quality_sql import TABLE_PLACEHOLDER
from datamesh.governance.warehouse_names import WarehouseNameError, WarehouseNames

ODCS_VERSION = "v3.1.0"

# The warehouse and the event bus, as the planned in-cluster Services.
WAREHOUSE_HOST = "warehouse.datamesh-system.svc"
WAREHOUSE_PORT = 5432
WAREHOUSE_DATABASE = "datamesh"
EVENT_BUS_HOST = "kafka.datamesh-system.svc:9092"

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
# datacontract-cli reads freshness in d, h and m; seconds go as an ISO 8601 duration.
_UNITS = ("m", "h", "d")
_WAREHOUSE_PORTS = (PortType.TABLE, PortType.VIEW)


def _stable_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _sql_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _warehouse_address(
    spec: DataProductSpec, port: OutputPort, name: str = ""
) -> tuple[str, str, str]:
    """(database, schema, table) of a table or view port: a table port's as provisioned."""
    if port.type == PortType.TABLE and name:
        names = WarehouseNames(spec.domain, name)
        try:
            return WAREHOUSE_DATABASE, names.schema, names.table(port.name, semver(spec.version)[0])
        except WarehouseNameError:
            pass  # validate reports it; the export keeps the port's own location
    parts = port.location.split(".")
    table = parts[-1]
    schema = parts[-2] if len(parts) > 1 else _sql_name(spec.domain)
    database = ".".join(parts[:-2]) or WAREHOUSE_DATABASE
    return database, schema, table


def _server(spec: DataProductSpec, port: OutputPort, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"server": port.name}
    if port.description:
        out["description"] = port.description
    fmt = str(spec.schema_.format)
    location = port.location
    if port.type in _WAREHOUSE_PORTS:
        database, schema, _ = _warehouse_address(spec, port, name)
        out.update(
            type="postgres",
            host=WAREHOUSE_HOST,
            port=WAREHOUSE_PORT,
            database=database,
            schema=schema,
        )
    elif port.type == PortType.TOPIC:
        out.update(type="kafka", host=EVENT_BUS_HOST, format=fmt)
        out["customProperties"] = [{"property": "topic", "value": location}]
    elif port.type == PortType.API:
        out.update(type="api", location=location)
    elif location.startswith(("s3://", "sftp://")):
        out.update(type=location.split(":", 1)[0], location=location, format=fmt)
    elif "://" in location:
        out.update(type="custom", location=location, format=fmt)
    else:
        out.update(type="local", path=location, format=fmt)
    return out


def _freshness_column(spec: DataProductSpec) -> str | None:
    """The column whose newest value the freshness SLA bounds: the freshness check's, else
    the first non-null timestamp column, else the first timestamp column."""
    names = {f.name for f in spec.schema_.fields}
    for check in spec.quality_checks:
        if check.rule == BuiltinCheck.FRESHNESS and check.column in names:
            return check.column
    stamps = [f for f in spec.schema_.fields if f.type == FieldType.TIMESTAMP]
    stamps.sort(key=lambda f: f.nullable)
    return stamps[0].name if stamps else None


def _property(field: SchemaField, position: int | None, in_warehouse: bool) -> dict[str, Any]:
    logical = _LOGICAL[FieldType(field.type)]
    out: dict[str, Any] = {
        "id": _stable_id(field.name),
        "name": field.name,
        "logicalType": logical,
        # The column type the warehouse gives it, where the product has a table.
        "physicalType": postgres_type(FieldType(field.type)) if in_warehouse else str(field.type),
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


def _failing(threshold: float) -> dict[str, Any]:
    """The bound on failing rows for a minimum passing share: none, or a percent of rows."""
    if threshold >= 1:
        return {"mustBe": 0}
    return {"mustBeLessOrEqualTo": round((1 - threshold) * 100, 6), "unit": "percent"}


def _share(passing: str, threshold: float) -> dict[str, Any]:
    """A SQL rule on the share of rows meeting ``passing``; an empty table passes."""
    query = f"SELECT COALESCE(AVG(CASE WHEN {passing} THEN 1.0 ELSE 0.0 END), 1.0) FROM ${{table}}"
    return {"type": "sql", "query": query, "mustBeGreaterOrEqualTo": threshold}


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _library(
    taken: set[tuple[str | None, str]],
    column: str | None,
    metric: str,
    bounds: dict[str, Any],
    instead: dict[str, Any] | None,
) -> tuple[bool, dict[str, Any]] | None:
    """A library rule, or ``instead`` where the property or the schema object has one of
    that metric already: datacontract-cli names checks by metric, and two of a name fail
    every aggregate check of the table."""
    if (column, metric) in taken:
        return None if instead is None else (column is not None, instead)
    taken.add((column, metric))
    return column is not None, {"type": "library", "metric": metric} | bounds


def _rule(
    check: QualityCheck, spec: DataProductSpec, taken: set[tuple[str | None, str]]
) -> tuple[bool, dict[str, Any]] | None:
    """Whether a built-in check's rule belongs to its column's property (else to the schema
    object), and the rule; None when the contract does not say enough for another tool to
    run it."""
    rule, threshold = check.rule, check.threshold
    field = next((f for f in spec.schema_.fields if f.name == check.column), None)
    c = field.constraints if field else None
    if rule in (BuiltinCheck.NOT_NULL, BuiltinCheck.COMPLETENESS) and field:
        instead = _share("${column} IS NOT NULL", threshold)
        return _library(taken, field.name, "nullValues", _failing(threshold), instead)
    if rule == BuiltinCheck.UNIQUE and field:
        share = "COUNT(DISTINCT ${column}) * 1.0 / NULLIF(COUNT(${column}), 0)"
        query = f"SELECT COALESCE({share}, 1.0) FROM ${{table}}"
        instead = {"type": "sql", "query": query, "mustBeGreaterOrEqualTo": threshold}
        if threshold < 1:
            return True, instead
        return _library(taken, field.name, "duplicateValues", {"mustBe": 0}, instead)
    if rule == BuiltinCheck.UNIQUE and check.column is None and threshold >= 1:
        keys = [f.name for f in spec.schema_.fields if f.primary_key]
        arguments = {"properties": keys or [f.name for f in spec.schema_.fields]}
        return _library(taken, None, "duplicateValues", {"arguments": arguments, "mustBe": 0}, None)
    if rule == BuiltinCheck.ACCEPTED_VALUES and c and c.allowed_values:
        # Not invalidValues: the allowed values are that rule already (see _library).
        values = ", ".join(_literal(v) for v in c.allowed_values)
        return True, _share(f"${{column}} IS NULL OR ${{column}} IN ({values})", threshold)
    if rule == BuiltinCheck.RANGE and c and (c.minimum is not None or c.maximum is not None):
        bounds_sql = [
            f"${{column}} {op} {_number(value)}"
            for op, value in ((">=", c.minimum), ("<=", c.maximum))
            if value is not None
        ]
        return True, _share(f"${{column}} IS NULL OR ({' AND '.join(bounds_sql)})", threshold)
    if rule == BuiltinCheck.ROW_COUNT:
        low, high = check.minimum, check.maximum
        if low is None and high is None:
            bounds: dict[str, Any] = {"mustBeGreaterThan": 0}
        elif high is None:
            bounds = {"mustBeGreaterOrEqualTo": _number(low or 0)}
        elif low is None:
            bounds = {"mustBeLessOrEqualTo": _number(high)}
        else:
            bounds = {"mustBeBetween": [_number(low), _number(high)]}
        instead = {"type": "sql", "query": "SELECT COUNT(*) FROM ${table}", **bounds}
        return _library(taken, None, "rowCount", bounds, instead)
    return None


_WHAT = {
    "not_null": "{column} is set",
    "completeness": "{column} is set",
    "unique": "{column} is unique",
    "accepted_values": "{column} takes only its allowed values",
    "range": "{column} is within its minimum and maximum",
    "row_count": "The table is not empty",
    "freshness": "The newest data is at most {freshness} old",
    "referential_integrity": "{column} refers to existing upstream records",
}
_WHOLE = {
    "not_null": "No value is missing",
    "completeness": "The expected records are there",
    "unique": "Rows are unique",
}


def _description(check: QualityCheck, spec: DataProductSpec) -> str:
    """What a check asserts, for people: datacontract-cli names its checks after it."""
    if check.sql:
        what = "The query's share of passing rows is high enough"
    elif check.column is None and check.rule in _WHOLE:
        what = _WHOLE[str(check.rule)]
    else:
        freshness = spec.sla.freshness if spec.sla else "the SLA's freshness"
        what = _WHAT.get(str(check.rule), str(check.rule)).format(
            column=check.column or "Every column", freshness=freshness
        )
    share = (
        "" if check.threshold >= 1 else f" (at least {_number(round(check.threshold * 100, 4))}%)"
    )
    return f"{what}{share}."


def _quality(
    check: QualityCheck, spec: DataProductSpec, taken: set[tuple[str | None, str]]
) -> tuple[str | None, dict[str, Any]]:
    """The column whose property a check's rule belongs to (None: the schema object), and
    the rule."""
    out: dict[str, Any] = {
        "id": _stable_id(check.name),
        "name": check.name,
        "description": _description(check, spec),
        "severity": str(check.severity),
    }
    if check.sql:
        # datacontract-cli's placeholder for the table is ${table}.
        query = TABLE_PLACEHOLDER.sub("${table}", check.sql.strip().rstrip(";"))
        out.update(type="sql", query=query)
        if check.minimum is None and check.maximum is None:
            out["mustBeGreaterOrEqualTo"] = check.threshold
        elif check.maximum is None:
            out["mustBeGreaterOrEqualTo"] = check.minimum
        elif check.minimum is None:
            out["mustBeLessOrEqualTo"] = check.maximum
        else:
            out["mustBeBetween"] = [check.minimum, check.maximum]
        return None, out
    rule = str(check.rule)
    out["dimension"] = _DIMENSION.get(rule, "accuracy")
    found = _rule(check, spec, taken)
    if found is None:
        implementation = {"rule": rule, "column": check.column, "threshold": check.threshold}
        out.update(
            type="custom",
            engine="datamesh",
            implementation={k: v for k, v in implementation.items() if v is not None},
        )
        return None, out
    on_column, odcs_rule = found
    return (check.column if on_column else None), out | odcs_rule


def _sla(spec: DataProductSpec, element: str | None) -> list[dict[str, Any]]:
    sla: list[dict[str, Any]] = []
    if spec.sla is not None:
        amount, unit = int(spec.sla.freshness[:-1]), spec.sla.freshness[-1]
        if unit == "s" and amount % 60 == 0:
            amount, unit = amount // 60, "m"
        freshness: dict[str, Any] = {"property": "freshness"}
        if unit in _UNITS:
            freshness.update(value=amount, unit=unit)
        else:
            freshness["value"] = f"PT{amount}S"
        if element:
            freshness["element"] = element
        sla.append(freshness)
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
    return sla


def to_odcs(product: DataProduct, server: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ODCS document: fundamentals from the product's metadata and owner, a server per
    output port, one schema object whose properties are the schema's fields with logical
    types, primary-key positions and their columns' rules, quality rules from the declared
    checks, and the SLA as ODCS service-level properties."""
    spec = product.spec
    name = _sql_name(product.metadata.name)
    keys = [f for f in spec.schema_.fields if f.primary_key]
    in_warehouse = any(p.type == PortType.TABLE for p in spec.output_ports)
    properties = [
        _property(f, keys.index(f) + 1 if f in keys else None, in_warehouse)
        for f in spec.schema_.fields
    ]
    by_column = {p["name"]: p for p in properties}
    column = _freshness_column(spec) if spec.sla is not None else None
    element = f"{name}.{column}" if column else None
    quality: list[dict[str, Any]] = []
    taken: set[tuple[str | None, str]] = {
        (f.name, "invalidValues")
        for f in spec.schema_.fields
        if f.constraints and f.constraints.allowed_values
    }
    for check in spec.quality_checks:
        if check.rule == BuiltinCheck.FRESHNESS and element:
            continue  # the SLA's freshness property, which datacontract-cli checks
        on_column, rule = _quality(check, spec, taken)
        target = by_column[on_column].setdefault("quality", []) if on_column else quality
        target.append(rule)
    schema_object: dict[str, Any] = {"id": _stable_id(product.metadata.name), "name": name}
    warehouse = next((p for p in spec.output_ports if p.type in _WAREHOUSE_PORTS), None)
    if warehouse is not None:
        schema_object["physicalName"] = _warehouse_address(spec, warehouse, product.metadata.name)[
            2
        ]
    schema_object["logicalType"] = "object"
    if spec.output_ports:
        schema_object["physicalType"] = str((warehouse or spec.output_ports[0]).type)
    schema_object.update(description=spec.description, properties=properties)
    if quality:
        schema_object["quality"] = quality
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
    }
    if spec.output_ports:
        document["servers"] = [_server(spec, p, product.metadata.name) for p in spec.output_ports]
        for entry in document["servers"]:
            if server and entry.get("type") == "postgres":
                entry.update(server)
    document.update(
        {
            "schema": [schema_object],
            "slaProperties": _sla(spec, element),
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
    )
    return document
