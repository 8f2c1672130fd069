"""Prometheus metrics of the operator. One registry, served by ``serve``."""

from __future__ import annotations

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
