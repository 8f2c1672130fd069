"""A custom check's SQL only reads."""

from __future__ import annotations

import pytest

from datamesh.governance.quality_sql import refusal


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM {{ table }}",
        "with t as (select 1 as n) select n from t;",
        "SELECT count(*) FROM t WHERE note = 'please DELETE me; now'",
        'SELECT "update" FROM t -- DROP TABLE t',
        "SELECT $$ insert $$",
    ],
)
def test_reading_queries_pass(query: str) -> None:
    assert refusal(query) is None


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "empty"),
        ("DELETE FROM t", "starts with DELETE"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", "uses DELETE"),
        ("SELECT * INTO backup FROM t", "INTO creates a table"),
        ("/* hi */ TRUNCATE t", "starts with TRUNCATE"),
    ],
)
def test_writing_queries_are_refused(query: str, fragment: str) -> None:
    reason = refusal(query)
    assert reason is not None and fragment in reason
