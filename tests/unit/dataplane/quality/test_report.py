"""The report a check pod leaves in its termination message stays within 4096 bytes and
never loses a failing verdict to the limit."""

from __future__ import annotations

import json

from datamesh.dataplane.quality.report import MAX_BYTES, decode, encode
from datamesh.dataplane.quality.run import CheckResult


def result(i: int, verdict: str = "Passed", rows: int = 0) -> CheckResult:
    return CheckResult(
        name=f"check-{i:02d}-" + "x" * 50,
        rule="not_null",
        severity="error",
        verdict=verdict,
        expected=">= 1",
        value=0.5,
        message="measured 0.5, expected >= 1" * 3,
        sample=[{"id": f"row-{r}", "text": "y" * 200} for r in range(rows)],
    )


def test_a_small_report_keeps_everything() -> None:
    text = encode("2026-12-06T00:00:00Z", "s.t", [result(1, "Failed", rows=2)])
    doc = decode(text)
    assert doc is not None and doc["checks"][0]["sample"][0]["id"] == "row-0"
    assert len(doc["checks"][0]["sample"][0]["text"]) == 64  # long cells are cut


def test_a_large_report_fits_and_keeps_every_failing_verdict() -> None:
    results = [result(i, rows=5) for i in range(60)] + [result(99, "Failed", rows=5)]
    text = encode("2026-12-06T00:00:00Z", "s.t", results)
    assert len(text.encode()) <= MAX_BYTES
    doc = json.loads(text)
    assert any(c["name"].startswith("check-99") and c["verdict"] == "Failed" for c in doc["checks"])
    assert doc["omitted"] == 61 - len(doc["checks"])


def test_what_is_not_a_report_is_none() -> None:
    assert decode("killed") is None and decode("[1]") is None and decode('{"x": 1}') is None
