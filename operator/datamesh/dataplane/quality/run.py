"""Running planned checks against the warehouse: each in a read-only transaction with a
statement timeout, as the product's own role. A check that cannot run (the warehouse
gone, the time limit hit, a permission missing) is ``Unknown`` with the reason, never
``Failed`` and never a hang."""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from datamesh.dataplane.quality.plan import PlannedCheck

PASSED, FAILED, UNKNOWN = "Passed", "Failed", "Unknown"
STATEMENT_TIMEOUT_MS = 30_000


@dataclass
class CheckResult:
    name: str
    rule: str
    severity: str
    verdict: str
    expected: str
    value: float | None = None
    message: str = ""
    sample: list[dict[str, Any]] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """A sample cell as JSON can carry it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_checks(
    conn: psycopg.Connection[Any],
    checks: list[PlannedCheck],
    *,
    timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> list[CheckResult]:
    results: list[CheckResult] = []
    gone: str | None = None  # the connection broke: the rest cannot run either
    for check in checks:
        result = CheckResult(check.name, check.rule, check.severity, UNKNOWN, check.expectation)
        results.append(result)
        if check.problem is not None or check.metric is None:
            result.message = check.problem or "nothing to measure"
            continue
        if gone is not None:
            result.message = gone
            continue
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms))
                )
                # Prepared: the extended protocol takes one statement, so a query that
                # slipped a second one past the scan (a COMMIT) fails instead.
                row = conn.execute(check.metric.encode(), prepare=True).fetchone()
                value = row[0] if row else None
                if value is None:
                    result.message = "the query returned no value"
                    continue
                result.value = float(value)
                ok = check.passes(result.value)
                result.verdict = PASSED if ok else FAILED
                if not ok and check.sample is not None:
                    cur = conn.execute(check.sample.encode(), prepare=True)
                    names = [d.name for d in cur.description or []]
                    result.sample = [
                        {n: _plain(v) for n, v in zip(names, r, strict=True)}
                        for r in cur.fetchall()
                    ]
        except psycopg.errors.QueryCanceled:
            result.verdict, result.value = UNKNOWN, None
            result.message = f"statement timeout: no answer within {timeout_ms / 1000:g} s"
        except psycopg.OperationalError as exc:
            result.verdict, result.value = UNKNOWN, None
            gone = f"the warehouse could not be reached: {_first_line(exc)}"
            result.message = gone
        except psycopg.Error as exc:
            result.verdict, result.value = UNKNOWN, None
            result.message = f"the check could not run: {_first_line(exc)}"
        except (TypeError, ValueError):
            result.verdict, result.value = UNKNOWN, None
            result.message = "the query did not return a number"
        else:
            if result.verdict == FAILED:
                result.message = f"measured {result.value:g}, expected {check.expectation}" + (
                    f"; {len(result.sample)} failing rows shown" if result.sample else ""
                )
            elif result.verdict == PASSED:
                result.message = f"measured {result.value:g}"
    return results
