"""The phase tally keeps gauges and per-policy violators exact without rescanning."""

from __future__ import annotations

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
