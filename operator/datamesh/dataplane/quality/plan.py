"""The checks a product's table gets, each as the SQL that measures it. Pure.

Explicit checks come from ``spec.qualityChecks``; the schema's constraints add their own
(``<column>-allowed-values``, ``<column>-range``, ``<column>-unique``), as a consumer
reading the contract would expect them to hold. Every measurement is one aggregate query
that returns a single value; a row-level rule also has a query for a few failing rows.

    rule             measured value                          passes when
    not_null         share of rows with the column set       >= threshold
    completeness     share of rows with every non-nullable   >= threshold
                     column set (or the named one)
    unique           share of rows whose key is not repeated >= threshold
    accepted_values  share of set values in allowedValues    >= threshold
    range            share of set values within min..max     >= threshold
    row_count        rows                                    within minimum..maximum (>= 1)
    freshness        seconds since the newest timestamp      <= the SLA's freshness
    sql              the query's number                      within minimum..maximum, else
                                                             >= threshold
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from datamesh.api.models import BuiltinCheck, DataProduct, FieldType, QualityCheck, SchemaField
from datamesh.governance.breaking_changes import semver
from datamesh.governance.quality_sql import TABLE_PLACEHOLDER, refusal
from datamesh.governance.warehouse_names import WarehouseNames

SAMPLE_ROWS = 5
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class PlannedCheck:
    name: str
    rule: str
    severity: str
    metric: str | None  # one row, one numeric value
    sample: str | None = None  # up to SAMPLE_ROWS failing rows
    threshold: float | None = None  # least passing share
    minimum: float | None = None
    maximum: float | None = None
    unit: str = "share"  # share, rows, seconds, value
    problem: str | None = None  # why it cannot run: reported Unknown

    def passes(self, value: float) -> bool:
        if self.minimum is not None and value < self.minimum:
            return False
        if self.maximum is not None and value > self.maximum:
            return False
        return self.threshold is None or value >= self.threshold

    @property
    def expectation(self) -> str:
        if self.threshold is not None:
            return f">= {self.threshold:g}"
        bounds = []
        if self.minimum is not None:
            bounds.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        return " and ".join(bounds) + (" s" if self.unit == "seconds" else "")


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def seconds(duration: str) -> int:
    """``15m`` -> 900 (the API's DURATION pattern)."""
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", duration)
    if not match:
        raise ValueError(f"not a duration: {duration!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def table_of(product: DataProduct) -> str | None:
    """The product's table (its first table port's, current major), quoted."""
    ports = [p for p in product.spec.output_ports if p.type == "table"]
    if not ports:
        return None
    names = WarehouseNames(product.spec.domain, product.metadata.name)
    major = semver(product.spec.version)[0]
    return f"{ident(names.schema)}.{ident(names.table(ports[0].name, major))}"


def _share(table: str, passing: str, among: str = "true") -> str:
    """The share of rows (``among`` them) that pass; 1 for none."""
    return (
        f"SELECT coalesce(count(*) FILTER (WHERE {passing})::float8 "
        f"/ nullif(count(*), 0), 1) FROM {table} WHERE {among}"
    )


def _key(product: DataProduct) -> list[str]:
    fields = product.spec.schema_.fields
    return [f.name for f in fields if f.primary_key] or [fields[0].name]


def _rows(product: DataProduct, table: str, failing: str, column: str | None) -> str:
    shown = list(dict.fromkeys([*_key(product), *([column] if column else [])]))
    cols = ", ".join(ident(c) for c in shown)
    return f"SELECT {cols} FROM {table} WHERE {failing} LIMIT {SAMPLE_ROWS}"


def _field(product: DataProduct, name: str | None) -> SchemaField | None:
    return next((f for f in product.spec.schema_.fields if f.name == name), None)


def _set_values_pass(
    product: DataProduct, check: QualityCheck, table: str, passing: str, base: dict[str, Any]
) -> PlannedCheck:
    """A rule on the values that are set: the share of them meeting ``passing``, and the
    rows that do not as the sample."""
    assert check.column is not None
    col = ident(check.column)
    return PlannedCheck(
        rule=str(check.rule),
        metric=_share(table, passing, f"{col} IS NOT NULL"),
        sample=_rows(product, table, f"{col} IS NOT NULL AND NOT ({passing})", check.column),
        threshold=check.threshold,
        **base,
    )


def plan_check(product: DataProduct, check: QualityCheck, table: str) -> PlannedCheck:
    base: dict[str, Any] = {"name": check.name, "severity": str(check.severity)}
    if check.sql is not None:
        reason = refusal(check.sql)
        if reason is not None:
            return PlannedCheck(rule="sql", metric=None, problem=reason, **base)
        bounded = check.minimum is not None or check.maximum is not None
        return PlannedCheck(
            rule="sql",
            metric=TABLE_PLACEHOLDER.sub(table, check.sql.strip().rstrip(";")),
            threshold=None if bounded else check.threshold,
            minimum=check.minimum,
            maximum=check.maximum,
            unit="value" if bounded else "share",
            **base,
        )
    rule = BuiltinCheck(str(check.rule))
    column = check.column
    field = _field(product, column)
    if column is not None and field is None:
        return PlannedCheck(
            rule=rule, metric=None, problem=f"column {column} is not in the schema", **base
        )
    col = ident(column) if column else ""
    if rule in (BuiltinCheck.NOT_NULL, BuiltinCheck.COMPLETENESS):
        columns = (
            [column]
            if column
            else [f.name for f in product.spec.schema_.fields if not f.nullable or f.primary_key]
        )
        if not columns:
            return PlannedCheck(
                rule=rule, metric=None, problem="no column to check: name one", **base
            )
        present = " AND ".join(f"{ident(c)} IS NOT NULL" for c in columns)
        return PlannedCheck(
            rule=rule,
            metric=_share(table, present),
            sample=_rows(product, table, f"NOT ({present})", column),
            threshold=check.threshold,
            **base,
        )
    if rule == BuiltinCheck.UNIQUE:
        key = [column] if column else _key(product)
        cols = ", ".join(ident(c) for c in key)
        set_ = " AND ".join(f"{ident(c)} IS NOT NULL" for c in key)
        groups = f"SELECT count(*) AS n FROM {table} WHERE {set_} GROUP BY {cols}"
        return PlannedCheck(
            rule=rule,
            metric=(
                "SELECT coalesce(1 - sum(n) FILTER (WHERE n > 1)::float8 / nullif(sum(n), 0), 1) "
                f"FROM ({groups}) AS g"
            ),
            sample=(
                f"SELECT {cols}, count(*) AS occurrences FROM {table} WHERE {set_} "
                f"GROUP BY {cols} HAVING count(*) > 1 ORDER BY count(*) DESC, {cols} "
                f"LIMIT {SAMPLE_ROWS}"
            ),
            threshold=check.threshold,
            **base,
        )
    if rule == BuiltinCheck.ACCEPTED_VALUES:
        allowed = (field.constraints.allowed_values if field and field.constraints else None) or []
        if not allowed:
            return PlannedCheck(
                rule=rule,
                metric=None,
                problem=f"column {column} has no constraints.allowedValues",
                **base,
            )
        inside = f"{col} IN ({', '.join(literal(v) for v in allowed)})"
        return _set_values_pass(product, check, table, inside, base)
    if rule == BuiltinCheck.RANGE:
        constraints = field.constraints if field else None
        low = constraints.minimum if constraints else None
        high = constraints.maximum if constraints else None
        if low is None and high is None:
            return PlannedCheck(
                rule=rule,
                metric=None,
                problem=f"column {column} has no constraints.minimum or maximum",
                **base,
            )
        tests = [f"{col} >= {literal(low)}" if low is not None else "true"]
        tests.append(f"{col} <= {literal(high)}" if high is not None else "true")
        return _set_values_pass(product, check, table, " AND ".join(tests), base)
    if rule == BuiltinCheck.ROW_COUNT:
        low = check.minimum if check.minimum is not None or check.maximum is not None else 1
        return PlannedCheck(
            rule=rule,
            metric=f"SELECT count(*) FROM {table}",
            minimum=low,
            maximum=check.maximum,
            unit="rows",
            **base,
        )
    if rule == BuiltinCheck.FRESHNESS:
        stamp = field or next(
            (f for f in product.spec.schema_.fields if f.type == FieldType.TIMESTAMP), None
        )
        if product.spec.sla is None:
            return PlannedCheck(
                rule=rule, metric=None, problem="the product has no sla.freshness", **base
            )
        if stamp is None:
            return PlannedCheck(
                rule=rule,
                metric=None,
                problem=(
                    "no timestamp column to measure the data's freshness by (name one with "
                    "`column`); the freshness of the last successful run is in status.sla"
                ),
                **base,
            )
        newest = f"max({ident(stamp.name)})::timestamptz"
        return PlannedCheck(
            rule=rule,
            metric=("SELECT extract(epoch FROM now() - " + newest + f")::float8 FROM {table}"),
            maximum=seconds(product.spec.sla.freshness),
            unit="seconds",
            **base,
        )
    return PlannedCheck(rule=rule, metric=None, problem=f"rule {rule} is not supported yet", **base)


def _implicit(product: DataProduct, named: set[str]) -> list[QualityCheck]:
    out = []
    for f in product.spec.schema_.fields:
        c = f.constraints
        if c is None:
            continue
        slug = f.name.replace("_", "-").lower()
        wanted = []
        if c.allowed_values:
            wanted.append((f"{slug}-allowed-values", BuiltinCheck.ACCEPTED_VALUES))
        if c.minimum is not None or c.maximum is not None:
            wanted.append((f"{slug}-range", BuiltinCheck.RANGE))
        if c.unique:
            wanted.append((f"{slug}-unique", BuiltinCheck.UNIQUE))
        for name, rule in wanted:
            if name not in named and len(name) <= 63:
                out.append(QualityCheck(name=name, rule=rule, column=f.name))
    return out


def plan(product: DataProduct) -> list[PlannedCheck]:
    """Every check of the product, explicit ones first; none without a table port."""
    table = table_of(product)
    if table is None:
        return []
    explicit = list(product.spec.quality_checks)
    checks = explicit + _implicit(product, {c.name for c in explicit})
    return [plan_check(product, c, table) for c in checks]
