"""Which checks a product gets and how each is measured, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from datamesh.dataplane.quality.plan import plan, seconds
from tests.support.factories import product

FIELDS = [
    {"name": "id", "type": "string", "primaryKey": True, "nullable": False},
    {"name": "line", "type": "integer", "primaryKey": True, "nullable": False},
    {"name": "status", "type": "string", "constraints": {"allowedValues": ["open", "it's"]}},
    {"name": "qty", "type": "integer", "constraints": {"minimum": 1}},
    {"name": "at", "type": "timestamp"},
]


def checked(checks: list[dict[str, Any]], **spec: Any):  # type: ignore[no-untyped-def]
    return {
        c.name: c
        for c in plan(
            product(
                outputPorts=[{"name": "rows", "type": "table", "location": "x"}],
                schema={"format": "parquet", "fields": FIELDS},
                qualityChecks=checks,
                **spec,
            )
        )
    }


def test_constraints_add_their_checks_after_the_explicit_ones() -> None:
    names = list(checked([{"name": "key", "rule": "unique"}]))
    assert names == ["key", "status-allowed-values", "qty-range"]


def test_unique_without_a_column_is_over_the_primary_key() -> None:
    key = checked([{"name": "key", "rule": "unique"}])["key"]
    assert key.metric is not None and 'GROUP BY "id", "line"' in key.metric
    assert key.sample is not None and "HAVING count(*) > 1" in key.sample


def test_allowed_values_are_quoted_literals_and_samples_show_the_key() -> None:
    check = checked([])["status-allowed-values"]
    assert check.metric is not None and "IN ('open', 'it''s')" in check.metric
    assert check.sample is not None and check.sample.startswith('SELECT "id", "line", "status"')
    assert check.threshold == 1.0 and check.passes(1.0) and not check.passes(0.99)


def test_freshness_is_measured_against_the_sla_on_a_timestamp_column() -> None:
    fresh = checked(
        [{"name": "f", "rule": "freshness"}], sla={"freshness": "15m", "availability": 99}
    )["f"]
    assert fresh.maximum == 900 and fresh.unit == "seconds" and 'max("at")' in (fresh.metric or "")
    assert fresh.passes(899) and not fresh.passes(901)
    assert fresh.expectation == "<= 900 s"


def test_a_check_that_cannot_run_says_why() -> None:
    out = checked(
        [
            {"name": "ghost", "rule": "not_null", "column": "nope"},
            {"name": "values", "rule": "accepted_values", "column": "qty"},
            {"name": "refs", "rule": "referential_integrity", "column": "id"},
            {"name": "writes", "sql": "DELETE FROM {{ table }}"},
        ]
    )
    assert out["ghost"].problem == "column nope is not in the schema"
    assert out["values"].problem == "column qty has no constraints.allowedValues"
    assert out["refs"].problem is not None and "not supported" in out["refs"].problem
    assert out["writes"].problem is not None and "only reads" in out["writes"].problem


def test_row_count_and_sql_bounds() -> None:
    out = checked(
        [
            {"name": "rows", "rule": "row_count"},
            {"name": "few", "rule": "row_count", "minimum": 10, "maximum": 20},
            {"name": "total", "sql": "SELECT sum(qty) FROM {{ table }};", "maximum": 5},
        ]
    )
    assert (out["rows"].minimum, out["rows"].maximum) == (1, None)
    assert out["few"].passes(15) and not out["few"].passes(21) and not out["few"].passes(9)
    assert out["total"].metric == 'SELECT sum(qty) FROM "sales"."orders__rows_v1"'
    assert out["total"].threshold is None and out["total"].passes(5) and not out["total"].passes(6)


@pytest.mark.parametrize(("text", "value"), [("15m", 900), ("1h", 3600), ("2d", 172800)])
def test_durations(text: str, value: int) -> None:
    assert seconds(text) == value
