"""Prometheus metrics of the operator. One registry, served by ``serve``."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter as CounterOf
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "datamesh_reconciles_total",
    "Product reconciles, by trigger and outcome.",
    ["trigger", "outcome"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "datamesh_reconcile_duration_seconds",
    "Time to reconcile one product.",
    ["trigger"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_WRITES = Counter(
    "datamesh_api_writes_total",
    "Writes the operator sent to the apiserver.",
    ["verb", "kind"],
    registry=REGISTRY,
)
WAREHOUSE_STATEMENTS = Counter(
    "datamesh_warehouse_statements_total",
    "Statements sent to a warehouse to change it (catalog reads not counted).",
    ["warehouse"],
    registry=REGISTRY,
)
PRODUCTS_BY_PHASE = Gauge(
    "datamesh_products",
    "Products by phase, as of the last reconcile of each.",
    ["phase"],
    registry=REGISTRY,
)
VIOLATIONS = Gauge(
    "datamesh_policy_violations",
    "Products violating each policy.",
    ["policy", "enforcement"],
    registry=REGISTRY,
)
QUALITY_VERDICT = Gauge(
    "datamesh_quality_check_passed",
    "Each product's quality checks: 1 passed, 0 failed, -1 unknown (could not run).",
    ["namespace", "product", "check", "severity"],
    registry=REGISTRY,
)
QUALITY_VALUE = Gauge(
    "datamesh_quality_check_value",
    "What each quality check measured (a share, rows, seconds or the query's value).",
    ["namespace", "product", "check"],
    registry=REGISTRY,
)
DATA_AGE = Gauge(
    "datamesh_data_age_seconds",
    "Age of each product's newest row when its freshness check last ran.",
    ["namespace", "product"],
    registry=REGISTRY,
)
UNHANDLED_ERRORS = Counter(
    "datamesh_unhandled_errors_total",
    "Errors that escaped a handler.",
    ["handler"],
    registry=REGISTRY,
)


def serve(port: int, address: str) -> None:
    if port:
        start_http_server(port, addr=address, registry=REGISTRY)


@dataclass
class PhaseTally:
    """Per-product phase and violations, so the gauges are exact without rescanning:
    each record replaces what the product counted before."""

    phases: dict[tuple[str, str], str] = field(default_factory=dict)
    violations: dict[tuple[str, str], frozenset[tuple[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set whenever a product's phase or violations change, or it goes: the policies'
    # matched and violating counts may have moved (see handlers.policy_status_loop).
    changed: threading.Event = field(default_factory=threading.Event)
    # policy ref -> products whose last evaluation it failed
    violators: CounterOf[str] = field(default_factory=CounterOf)

    def record(
        self, key: tuple[str, str], phase: str | None, violated: frozenset[tuple[str, str]]
    ) -> None:
        """``phase`` None: the product is gone and counts no more."""
        with self.lock:
            if self.phases.get(key) != phase or self.violations.get(key) != violated:
                self.changed.set()
            old_phase = self.phases.pop(key, None)
            if old_phase:
                PRODUCTS_BY_PHASE.labels(old_phase).dec()
            for pol, enf in self.violations.pop(key, frozenset()):
                VIOLATIONS.labels(pol, enf).dec()
                self.violators[pol] -= 1
            if phase is None:
                return
            self.phases[key] = phase
            PRODUCTS_BY_PHASE.labels(phase).inc()
            self.violations[key] = violated
            for pol, enf in violated:
                VIOLATIONS.labels(pol, enf).inc()
                self.violators[pol] += 1

    def violating(self, policy: str) -> int:
        """Products whose last evaluation failed ``policy`` (``namespace/name``)."""
        with self.lock:
            return max(0, self.violators[policy])

    def counted(self) -> int:
        """Products with a recorded verdict."""
        with self.lock:
            return len(self.phases)


_VERDICTS = {"Passed": 1.0, "Failed": 0.0}
_quality_series: dict[tuple[str, str], set[tuple[str, str]]] = {}
_quality_seen: dict[tuple[str, str], object] = {}
_quality_lock = threading.Lock()


def record_quality(key: tuple[str, str], checks: list[dict[str, object]] | None) -> None:
    """The product's latest verdicts as gauges; None (or a product gone) removes them."""
    namespace, product = key
    with _quality_lock:
        if key in _quality_seen and _quality_seen[key] == checks:
            return  # the same verdicts as last time: nothing to change
        _quality_seen[key] = checks
        if checks is None:
            _quality_seen.pop(key)
        for check, severity in _quality_series.pop(key, set()):
            QUALITY_VERDICT.remove(namespace, product, check, severity)
            with contextlib.suppress(KeyError):
                QUALITY_VALUE.remove(namespace, product, check)
        with contextlib.suppress(KeyError):
            DATA_AGE.remove(namespace, product)
        if not checks:
            return
        series = set()
        for c in checks:
            name, severity = str(c.get("name")), str(c.get("severity"))
            QUALITY_VERDICT.labels(namespace, product, name, severity).set(
                _VERDICTS.get(str(c.get("verdict")), -1.0)
            )
            value = c.get("value")
            if isinstance(value, int | float):
                QUALITY_VALUE.labels(namespace, product, name).set(value)
                if c.get("rule") == "freshness":
                    DATA_AGE.labels(namespace, product).set(value)
            series.add((name, severity))
        _quality_series[key] = series
