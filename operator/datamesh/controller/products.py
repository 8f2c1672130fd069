"""Reconciling one product: evaluate the policies that apply, make its children match
the plan, compute its status and write only what changed.

Level-triggered and idempotent: every call computes the whole desired state from the
product, the policies and the children it finds. The work queue calls ``reconcile`` for
events, the sweep and the resync; the policy reconciler calls it for re-evaluations
(``provision=False``: children are touched only when the verdict flipped).
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from datamesh.api.models import Children, DataProduct, Lineage, Phase, WarehouseStatus
from datamesh.controller import children, metrics, provisioning, status
from datamesh.controller.events import EventRecorder
from datamesh.controller.index import ProductEntry
from datamesh.controller.kube import Cluster, is_status
from datamesh.controller.settings import Settings
from datamesh.controller.status import Clock, WarehouseOutcome, utcnow
from datamesh.controller.warehousing import WarehouseProvisioner
from datamesh.dataplane.warehouse.plan import Consumer
from datamesh.governance import access, policy
from datamesh.governance.lineage import Lookup, cycle_through, resolve


@dataclass
class Outcome:
    """What one reconcile decided, for fan-out logs and metrics."""

    phase: str
    compliant: bool
    violated_policies: frozenset[str] = frozenset()
    wrote_status: bool = False
    # A transient failure reported in status: the queue tries again with backoff.
    retry: bool = False


class ProductReconciler:
    """One product at a time per key (a lock lives only while a reconcile holds it);
    remembers the status it last wrote per uid, since only the operator writes it."""

    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        clock: Clock = utcnow,
        warehouse: WarehouseProvisioner | None = None,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.warehouse = warehouse or WarehouseProvisioner(cluster, {}, drift_seconds=0)
        self.clock = clock
        self.events = EventRecorder(cluster, clock)
        self.tally = metrics.PhaseTally()
        self._locks: weakref.WeakValueDictionary[tuple[str, str], threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._locks_guard = threading.Lock()
        # uid -> (observedGeneration, status JSON) last written by this process
        self._written: dict[str, tuple[int | None, str]] = {}
        # uid -> the latest successful run whose pods were read for a quality report
        self._runs_read: dict[str, str] = {}

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def reconcile(
        self,
        entry: ProductEntry,
        *,
        policies: Iterable[policy.CompiledPolicy],
        lineage: Lookup,
        namespaces: Mapping[str, str | None],
        trigger: str,
        provision: bool = True,
    ) -> Outcome:
        """Reconcile ``entry``; ``namespaces`` maps a namespace to its domain (from the
        namespace index), ``trigger`` labels the metrics."""
        started = time.perf_counter()
        outcome = "error"
        try:
            with self._lock(entry.key):
                result = self._reconcile(entry, policies, lineage, namespaces, provision)
            outcome = "changed" if result.wrote_status else "unchanged"
            return result
        finally:
            metrics.RECONCILES.labels(trigger, outcome).inc()
            metrics.RECONCILE_SECONDS.labels(trigger).observe(time.perf_counter() - started)

    def _reconcile(
        self,
        entry: ProductEntry,
        policies: Iterable[policy.CompiledPolicy],
        lineage: Lookup,
        namespaces: Mapping[str, str | None],
        provision: bool,
    ) -> Outcome:
        if entry.product is None:
            return self._invalid(entry)
        product = entry.product
        now = self.clock()
        evaluation = policy.evaluate(
            product,
            policies,
            now=now,
            platform_namespace=self.settings.platform_namespace,
            namespace_domain=namespaces.get(entry.namespace),
            builtin=access.violations(product, lineage.product),
        )
        previous = self._previous_status(entry)
        # Before the children: the pipeline's login Secret exists before its CronJob.
        warehouse = self._warehouse(product, entry.uid, lineage, previous, evaluation.compliant)
        secret = (
            provisioning.Names(product.metadata.name).warehouse_secret
            if warehouse is not None and warehouse.status is not None
            else None
        )
        if needs_children_pass(
            provision, previous, compliant=evaluation.compliant, warehouse_secret=secret
        ):
            # A product that never had children creates them straight away; one that
            # had reads them first and repairs only what drifted.
            fresh = not (previous.get("children") or {})
            observed = children.ensure(
                self.cluster,
                product,
                entry.uid,
                evaluation.compliant,
                create_first=fresh,
                warehouse_secret=secret,
                read_reports=self.warehouse.enabled,
                reported_job=self._reported_job(entry.uid, previous),
            )
            if observed.runs is not None and observed.runs.last_success_job:
                with self._locks_guard:
                    self._runs_read[entry.uid] = observed.runs.last_success_job
        else:
            observed = observed_from_status(product, previous, compliant=evaluation.compliant)
        new = status.compute(
            generation=entry.generation,
            evaluation=evaluation,
            observed=observed,
            lineage=lineage_of(product, lineage),
            previous=previous,
            now=now,
            warehouse=warehouse,
            sla=product.spec.sla,
        )
        written = status.to_dict(new)
        wrote = self._write_status(entry, previous, written)
        metrics.record_quality(entry.key, (written.get("quality") or {}).get("checks"))
        violated = frozenset((v.policy, str(v.enforcement)) for v in evaluation.violations)
        self.tally.record(entry.key, str(new.phase), violated)
        return Outcome(
            str(new.phase),
            evaluation.compliant,
            frozenset(p for p, _ in violated),
            wrote,
            retry=warehouse is not None and warehouse.retry,
        )

    def _warehouse(
        self,
        product: DataProduct,
        uid: str,
        lineage: Lookup,
        previous: Mapping[str, Any],
        compliant: bool,
    ) -> WarehouseOutcome | None:
        """The warehouse step; a non-compliant product's objects are neither created nor
        changed (what its status said of them stays)."""
        if not self.warehouse.enabled:
            return None
        if not compliant:
            before = previous.get("warehouse")
            return WarehouseOutcome(
                False,
                "NonCompliant",
                "nothing is provisioned or changed in the warehouse while the product is "
                "non-compliant",
                status=WarehouseStatus.model_validate(before) if before else None,
            )
        return self.warehouse.provision(product, uid, consumers(product, lineage), previous)

    def _reported_job(self, uid: str, previous: Mapping[str, Any]) -> str | None:
        """The run whose report is already in status, or whose pods were already read
        (a run that left none): its pods are not listed again."""
        with self._locks_guard:
            seen = self._runs_read.get(uid)
        return seen or (previous.get("quality") or {}).get("job")

    def _invalid(self, entry: ProductEntry) -> Outcome:
        """An object the apiserver stored but the model refuses (e.g. after a schema
        change): report it in status, touch nothing else."""
        now = self.clock()
        current = entry.status
        prev = current.get("conditions") or []
        ready = status.condition(
            "Ready", False, "InvalidSpec", entry.error or "invalid", prev, now, entry.generation
        )
        new = {
            "observedGeneration": entry.generation,
            "phase": Phase.FAILED.value,
            "conditions": [ready.model_dump(by_alias=True, exclude_none=True)],
        }
        merged = {**current, **new}
        wrote = self._write_status(entry, self._previous_status(entry), merged)
        self.tally.record(entry.key, Phase.FAILED.value, frozenset())
        return Outcome(Phase.FAILED.value, False, wrote_status=wrote)

    def handled(self, entry: ProductEntry) -> bool:
        """Whether this process already wrote a status for the entry's generation (the
        index may not have seen that write yet)."""
        with self._locks_guard:
            written = self._written.get(entry.uid)
        return written is not None and written[0] == entry.generation

    def _previous_status(self, entry: ProductEntry) -> Mapping[str, Any]:
        """Only the operator writes a product's status, so what it last wrote is the truth;
        the index can lag behind its own writes when one product is reconciled twice in
        quick succession, and comparing against a stale status would write again."""
        with self._locks_guard:
            written = self._written.get(entry.uid)
        return dict(json.loads(written[1])) if written else entry.status

    def _write_status(
        self, entry: ProductEntry, old: Mapping[str, Any], new: dict[str, Any]
    ) -> bool:
        patch = status.merge_patch(dict(old), new)
        if patch is not None:
            try:
                self.cluster.patch(
                    "DataProduct", entry.namespace, entry.name, {"status": patch}, sub="status"
                )
            except Exception as exc:
                if not is_status(exc, 404):
                    raise
                return False  # deleted while this reconcile ran: nothing left to report on
            self.events.phase_changed(entry, old, new)
            self.events.measures_changed(entry, old, new)
        text = json.dumps(new, separators=(",", ":"))
        with self._locks_guard:
            self._written[entry.uid] = (new.get("observedGeneration"), text)
        return patch is not None

    def finalize(self, entry: ProductEntry) -> str:
        """On deletion: keep or drop its tables (this raises while the warehouse is
        unreachable, so the deletion waits for it), keep or release its storage, then
        forget the product."""
        tables = self.warehouse.release(entry.product) if entry.product is not None else "no tables"
        storage = children.release_storage(
            self.cluster, entry.namespace, entry.name, entry.uid, entry.product
        )
        self.tally.record(entry.key, None, frozenset())
        metrics.record_quality(entry.key, None)
        self.warehouse.forget(entry.uid)
        with self._locks_guard:
            self._written.pop(entry.uid, None)
            self._runs_read.pop(entry.uid, None)
        return f"{storage}; {tables}"


def consumers(product: DataProduct, lineage: Lookup) -> list[Consumer]:
    """The products whose input ports read this one and that it grants read: their
    pipelines' roles get SELECT on its tables (one that is not granted is non-compliant
    by the access-along-lineage rule, and gets nothing)."""
    out = []
    for ref in lineage.consumers(product.ref):
        consumer = lineage.product(ref)
        if consumer is not None and access.grants(product, consumer):
            out.append(Consumer(consumer.spec.domain, consumer.metadata.name))
    return sorted(out, key=lambda c: (c.domain, c.product))


def needs_children_pass(
    provision: bool,
    previous: Mapping[str, Any],
    *,
    compliant: bool,
    warehouse_secret: str | None = None,
) -> bool:
    """Whether this reconcile reads and repairs the children, or may take them from the
    last status (a re-evaluation after a policy or lineage change). It must when asked,
    when the verdict flipped, when nothing was written yet, when the last pass failed (a
    status taken over from a failed pass would claim progress that is not happening, so
    the failure is looked at again and reported again), and when the pipeline's
    warehouse login appeared since (its CronJob must load it)."""
    was_compliant = (previous.get("compliance") or {}).get("compliant")
    had_secret = (previous.get("children") or {}).get("warehouseSecret")
    return (
        provision
        or not previous
        or was_compliant is not compliant
        or previous.get("phase") == Phase.FAILED.value
        or (warehouse_secret is not None and had_secret != warehouse_secret)
    )


def lineage_of(product: DataProduct, lookup: Lookup) -> Lineage:
    upstream, downstream, missing = resolve(product, lookup)
    cycle = cycle_through(product, lookup) or None
    return Lineage(upstream=upstream, downstream=downstream, missing=missing, cycle=cycle)


def observed_from_status(
    product: DataProduct, previous: Mapping[str, Any], *, compliant: bool
) -> status.Observed:
    """What the last full reconcile saw, for re-evaluations that do not touch children.
    Compliance has not changed since, so the job is as that reconcile planned it:
    suspended when the product is non-compliant or its spec pauses it."""
    children_seen = Children.model_validate(previous.get("children") or {})
    return status.Observed(
        storage_wanted=product.spec.storage is not None,
        storage_exists=children_seen.storage_claim is not None,
        pipeline_wanted=product.spec.pipeline is not None,
        pipeline_exists=children_seen.cron_job is not None,
        pipeline_suspended=provisioning.pipeline_suspended(product, compliant=compliant),
        children=children_seen,
    )
