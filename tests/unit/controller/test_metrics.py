"""The phase tally keeps gauges and per-policy violators exact without rescanning."""

from __future__ import annotations

from datamesh.controller import metrics
from datamesh.controller.metrics import PhaseTally


def test_violators_follow_each_products_last_verdict() -> None:
    tally = PhaseTally()
    a, b = ("ns", "a"), ("ns", "b")
    tally.record(a, "NonCompliant", frozenset({("g/sla", "block"), ("g/doc", "warn")}))
    tally.record(b, "NonCompliant", frozenset({("g/sla", "block")}))
    assert (tally.violating("g/sla"), tally.violating("g/doc"), tally.counted()) == (2, 1, 2)
    assert tally.changed.is_set()
    tally.changed.clear()
    tally.record(b, "NonCompliant", frozenset({("g/sla", "block")}))  # the same verdict
    assert not tally.changed.is_set()
    tally.record(a, "Ready", frozenset())
    tally.record(b, None, frozenset())  # deleted
    assert (tally.violating("g/sla"), tally.violating("g/doc"), tally.counted()) == (0, 0, 1)
    assert tally.changed.is_set()


def test_quality_gauges_follow_the_latest_verdicts_and_go_with_the_product() -> None:
    key = ("sales", "quality-metrics-test")
    checks: list[dict[str, object]] = [
        {"name": "ids", "severity": "critical", "verdict": "Passed", "value": 1.0},
        {
            "name": "fresh",
            "severity": "error",
            "verdict": "Failed",
            "rule": "freshness",
            "value": 7200,
        },
        {"name": "custom", "severity": "warning", "verdict": "Unknown"},
    ]

    def sample(name: str, **labels: str) -> float | None:
        return metrics.REGISTRY.get_sample_value(name, labels)

    metrics.record_quality(key, checks)
    base = {"namespace": "sales", "product": "quality-metrics-test"}
    assert sample("datamesh_quality_check_passed", **base, check="ids", severity="critical") == 1
    assert sample("datamesh_quality_check_passed", **base, check="fresh", severity="error") == 0
    assert sample("datamesh_quality_check_passed", **base, check="custom", severity="warning") == -1
    assert sample("datamesh_data_age_seconds", **base) == 7200
    metrics.record_quality(key, checks[:1])
    assert sample("datamesh_quality_check_passed", **base, check="fresh", severity="error") is None
    metrics.record_quality(key, None)
    assert sample("datamesh_quality_check_passed", **base, check="ids", severity="critical") is None
