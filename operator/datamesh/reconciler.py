"""Reconciling products and policies: gather what is observed, call the pure functions,
apply the difference. The kopf handlers in ``handlers`` only wire events to this.

Level-triggered and idempotent: every call computes the whole desired state from the
product, the policies and the children it finds, and writes only what differs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from datamesh import admission, metrics, policy, provisioning, status
from datamesh.kube import Cluster, api_message, is_status
from datamesh.lineage import Lookup, cycle_through, resolve
from datamesh.model import (
    API_VERSION,
    Children,
    Condition,
    DataProduct,
    DeletionPolicy,
    GovernancePolicy,
    Lineage,
    Phase,
)
from datamesh.settings import Settings

log = logging.getLogger("datamesh.reconciler")

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ProductEntry:
    """A product as the in-memory index holds it: parsed, with identity and status.

    The index holds one per product for the operator's lifetime, so the status is kept
    as its JSON text (a fifth of the memory of the decoded tree) and decoded on use."""

    namespace: str
    name: str
    uid: str
    generation: int
    product: DataProduct | None
    status_json: str = "{}"
    observed_generation: int | None = None
    error: str | None = None
    deleting: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.status_json))

    @property
    def pending(self) -> bool:
        """Not reconciled at its current generation (as far as the index has seen)."""
        return not self.deleting and self.observed_generation != self.generation

    @classmethod
    def from_body(
        cls, body: Mapping[str, Any], previous: ProductEntry | None = None
    ) -> ProductEntry:
        """``previous``, the entry the index held before this event, lends its parsed
        product when the event changed neither spec nor labels (status writes, kopf's
        finalizer): most events, and parsing is most of the cost of indexing one."""
        meta = body.get("metadata", {})
        uid = str(meta.get("uid", ""))
        generation = int(meta.get("generation") or 0)
        product: DataProduct | None = None
        error = None
        if (
            previous is not None
            and previous.product is not None
            and previous.uid == uid
            and previous.generation == generation
            and previous.product.metadata.labels == (meta.get("labels") or {})
        ):
            product = previous.product
        else:
            try:
                product = DataProduct.model_validate(dict(body))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                error = f"{where}: {first['msg']}"
        raw_status = body.get("status") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=uid,
            generation=generation,
            product=product,
            status_json=json.dumps(raw_status, separators=(",", ":")),
            observed_generation=raw_status.get("observedGeneration"),
            error=error,
            deleting=bool(meta.get("deletionTimestamp")),
        )


def compile_policy_body(body: Mapping[str, Any]) -> policy.CompiledPolicy | None:
    try:
        return policy.compile_policy(GovernancePolicy.model_validate(dict(body)))
    except ValidationError:
        return None  # the apiserver's schema makes this unreachable; never crash on it


@dataclass
class Outcome:
    phase: str
    compliant: bool
    violated_policies: frozenset[str] = frozenset()
    wrote_status: bool = False


@dataclass
class Tally:
    """Per-product phase and violations, so gauges are exact without rescanning."""

    phases: dict[tuple[str, str], str] = field(default_factory=dict)
    violations: dict[tuple[str, str], frozenset[tuple[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, key: tuple[str, str], phase: str | None, violated: frozenset[tuple[str, str]]
    ) -> None:
        with self.lock:
            old_phase = self.phases.pop(key, None)
            if old_phase:
                metrics.PRODUCTS_BY_PHASE.labels(old_phase).dec()
            for pol, enf in self.violations.pop(key, frozenset()):
                metrics.VIOLATIONS.labels(pol, enf).dec()
            if phase is None:
                return
            self.phases[key] = phase
            metrics.PRODUCTS_BY_PHASE.labels(phase).inc()
            self.violations[key] = violated
            for pol, enf in violated:
                metrics.VIOLATIONS.labels(pol, enf).inc()


class Reconciler:
    def __init__(self, cluster: Cluster, settings: Settings, clock: Clock = utcnow) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        self.tally = Tally()
        # A lock lives while a reconcile holds it: products come and go, locks with them.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], threading.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._locks_guard = threading.Lock()
        self._admission_lock = threading.Lock()
        # uid -> (observedGeneration, status JSON) last written by this process
        self._written: dict[str, tuple[int | None, str]] = {}
        # One pool for every fan-out (policy changes, lineage, resync), so concurrent
        # policy events share the configured number of threads instead of multiplying it.
        self._pool = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="datamesh-fanout"
        )

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    # -- products ------------------------------------------------------------------------

    def namespace_domain(self, namespace: str, namespaces: Mapping[str, str]) -> str:
        """A namespace belongs to the domain in its `datamesh.io/domain` label, or to the
        domain of its own name."""
        return namespaces.get(namespace, namespace)

    def reconcile(
        self,
        entry: ProductEntry,
        *,
        policies: Iterable[policy.CompiledPolicy],
        lineage: Lookup,
        namespaces: Mapping[str, str],
        trigger: str,
        provision: bool = True,
    ) -> Outcome:
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
        namespaces: Mapping[str, str],
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
            namespace_domain=self.namespace_domain(entry.namespace, namespaces),
        )
        previous = self._previous_status(entry)
        was_compliant = (previous.get("compliance") or {}).get("compliant")
        if provision or was_compliant is not evaluation.compliant or not previous:
            # A product that never had children creates them straight away; one that
            # had reads them first and repairs only what drifted.
            fresh = not (previous.get("children") or {})
            observed = self.ensure_children(
                product, entry.uid, evaluation.compliant, create_first=fresh
            )
        else:
            observed = observed_from_status(product, previous, compliant=evaluation.compliant)
        new = status.compute(
            generation=entry.generation,
            evaluation=evaluation,
            observed=observed,
            lineage=lineage_of(product, lineage),
            previous=previous,
            now=now,
        )
        wrote = self._write_status(entry, previous, status.to_dict(new))
        violated = frozenset((v.policy, str(v.enforcement)) for v in evaluation.violations)
        self.tally.record(entry.key, str(new.phase), violated)
        return Outcome(
            str(new.phase), evaluation.compliant, frozenset(p for p, _ in violated), wrote
        )

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
            self.cluster.patch(
                "DataProduct", entry.namespace, entry.name, {"status": patch}, sub="status"
            )
            self._events(entry, old, new)
        text = json.dumps(new, separators=(",", ":"))
        with self._locks_guard:
            self._written[entry.uid] = (new.get("observedGeneration"), text)
        return patch is not None

    def _events(self, entry: ProductEntry, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """One Event per state change: phase, and compliance verdict."""
        old_phase, new_phase = old.get("phase"), new.get("phase")
        if old_phase == new_phase:
            return
        ready: Mapping[str, Any] = next(
            (c for c in new.get("conditions", []) if c["type"] == "Ready"), {}
        )
        kind = "Normal" if new_phase in (Phase.READY.value, Phase.PROVISIONING.value) else "Warning"
        message = f"phase {old_phase or 'none'} -> {new_phase}: {ready.get('message', '')}"
        self.post_event(entry, kind, str(new_phase), message)

    def post_event(self, entry: ProductEntry, kind: str, reason: str, message: str) -> None:
        stamp = status.timestamp(self.clock())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{entry.name}.", "namespace": entry.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": "DataProduct",
                "name": entry.name,
                "namespace": entry.namespace,
                "uid": entry.uid,
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": provisioning.MANAGED_BY},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.cluster.create("Event", entry.namespace, event)
        except Exception as exc:  # an event is never worth failing a reconcile
            log.warning(
                "could not post event on %s/%s: %s", entry.namespace, entry.name, api_message(exc)
            )

    def ensure_children(
        self, product: DataProduct, uid: str, compliant: bool, *, create_first: bool = False
    ) -> status.Observed:
        """Create what is missing (compliant products only), repair drift, suspend the
        pipeline of a non-compliant product; never delete storage. ``create_first`` tries
        the create before any read (one request instead of two for a new product); a
        conflict falls back to read-and-compare, so the result is the same."""
        names = provisioning.Names(product.metadata.name)
        ns = product.metadata.namespace
        found: dict[str, dict[str, Any]] = {}
        problems: list[str] = []
        for child in provisioning.plan(product, uid, compliant=compliant):
            try:
                existing = (
                    None
                    if create_first and compliant
                    else self.cluster.get(child.kind, ns, child.name)
                )
                if existing is None:
                    if not compliant:
                        continue  # provision nothing new for a non-compliant product
                    try:
                        existing = self.cluster.create(child.kind, ns, child.manifest)
                        found[child.kind] = existing
                        continue  # just created from the plan: nothing can have drifted
                    except Exception as exc:
                        if not is_status(exc, 409):
                            raise
                        existing = self.cluster.get(child.kind, ns, child.name)
                        if existing is None:
                            raise
                if compliant:
                    patch = provisioning.drift_patch(child, existing)
                elif child.kind == "CronJob" and not existing.get("spec", {}).get("suspend"):
                    patch = {"spec": {"suspend": True}}
                else:
                    patch = None  # a non-compliant product's children are left as they are
                if patch:
                    existing = self.cluster.patch(child.kind, ns, child.name, patch)
                found[child.kind] = existing
            except Exception as exc:
                problems.append(f"{child.kind} {child.name}: {api_message(exc)}")
        if product.spec.pipeline is None:
            self._remove_pipeline(ns, names.cron_job, problems)
        cron = found.get("CronJob")
        return status.Observed(
            storage_wanted=product.spec.storage is not None,
            storage_exists="PersistentVolumeClaim" in found,
            pipeline_wanted=product.spec.pipeline is not None,
            pipeline_exists=cron is not None,
            pipeline_suspended=bool(cron and cron.get("spec", {}).get("suspend")),
            children=Children(
                storage_claim=names.claim if "PersistentVolumeClaim" in found else None,
                cron_job=names.cron_job if cron else None,
                config_map=names.config_map if "ConfigMap" in found else None,
                service_account=names.service_account if "ServiceAccount" in found else None,
                role=names.role if "Role" in found else None,
                role_binding=names.role_binding if "RoleBinding" in found else None,
            ),
            problems=tuple(problems),
        )

    def _remove_pipeline(self, namespace: str, name: str, problems: list[str]) -> None:
        try:
            existing = self.cluster.get("CronJob", namespace, name)
            labels = (existing or {}).get("metadata", {}).get("labels", {})
            if existing and labels.get("app.kubernetes.io/managed-by") == provisioning.MANAGED_BY:
                self.cluster.delete("CronJob", namespace, name)
        except Exception as exc:
            problems.append(f"CronJob {name}: {api_message(exc)}")

    def finalize(self, entry: ProductEntry) -> str:
        """On deletion: keep the claim (Retain, the default) or let it go (Delete)."""
        product = entry.product
        self.tally.record(entry.key, None, frozenset())
        with self._locks_guard:
            self._written.pop(entry.uid, None)
        if product is None or product.spec.storage is None:
            return "no storage"
        claim_name = provisioning.Names(entry.name).claim
        if product.spec.deletion_policy == DeletionPolicy.DELETE:
            self.cluster.delete("PersistentVolumeClaim", entry.namespace, claim_name)
            return f"deleted claim {claim_name}"
        claim = self.cluster.get("PersistentVolumeClaim", entry.namespace, claim_name)
        if claim is None:
            return "no claim to retain"
        owners = [
            o for o in claim["metadata"].get("ownerReferences") or [] if o.get("uid") != entry.uid
        ]
        self.cluster.patch(
            "PersistentVolumeClaim",
            entry.namespace,
            claim_name,
            {
                "metadata": {
                    "ownerReferences": owners or None,
                    "labels": {provisioning.LABEL_RETAINED: "true"},
                },
            },
        )
        return f"retained claim {claim_name}"

    # -- policies ------------------------------------------------------------------------

    def sync_admission(self, policies: list[policy.CompiledPolicy]) -> int:
        """Bring the generated admission objects in line with the block policies (or remove
        them all when admission is off). Returns the number of writes; none when nothing
        changed. Serialised: policy handlers and the resync may call it at once."""
        want: dict[str, admission.Admission] = {}
        if self.settings.admission:
            want = admission.desired(
                policies, platform_namespace=self.settings.platform_namespace, now=self.clock()
            )
        writes = 0
        with self._admission_lock:
            for kind, part in (
                ("ValidatingAdmissionPolicy", "policy"),
                ("ValidatingAdmissionPolicyBinding", "binding"),
            ):
                have = {
                    o["metadata"]["name"]: o
                    for o in self.cluster.list(kind, "", f"{admission.LABEL}=true")
                }
                for name, objects in want.items():
                    manifest = getattr(objects, part)
                    existing = have.pop(name, None)
                    if existing is None:
                        self.cluster.create(kind, "", manifest)
                        writes += 1
                    elif not provisioning.contains(existing, manifest):
                        version = existing["metadata"]["resourceVersion"]
                        meta = {**manifest["metadata"], "resourceVersion": version}
                        self.cluster.replace(kind, "", name, {**manifest, "metadata": meta})
                        writes += 1
                for name in have:  # a policy deleted, relaxed to warn, or admission off
                    self.cluster.delete(kind, "", name)
                    writes += 1
        return writes

    def affected_by(
        self,
        ref: str,
        old: GovernancePolicy | None,
        new: GovernancePolicy | None,
        products: Iterable[ProductEntry],
    ) -> list[ProductEntry]:
        """Products a policy change can touch: matched before, matched now, or carrying
        the policy in their last evaluation."""
        ns = self.settings.platform_namespace
        out = []
        for entry in products:
            if entry.product is None or entry.deleting:
                continue
            listed = any(
                p.get("policy") == ref
                for p in (entry.status.get("compliance") or {}).get("policies") or []
            )
            if listed or any(
                p is not None and policy.applies(p, entry.product, ns) for p in (old, new)
            ):
                out.append(entry)
        return out

    def fan_out(
        self,
        entries: list[ProductEntry],
        work: Callable[[ProductEntry], Outcome],
    ) -> list[Outcome | None]:
        """Run ``work`` on many products with the configured number of threads; a failure
        of one never stops the others."""

        def safe(entry: ProductEntry) -> Outcome | None:
            try:
                return work(entry)
            except Exception:
                metrics.UNHANDLED_ERRORS.labels("fan-out").inc()
                log.exception("reconciling %s/%s failed", entry.namespace, entry.name)
                return None

        if len(entries) <= 1:
            return [safe(e) for e in entries]
        return list(self._pool.map(safe, entries))

    def policy_status(
        self,
        compiled: policy.CompiledPolicy | None,
        body: Mapping[str, Any],
        products: Iterable[ProductEntry],
        namespaces: Mapping[str, str],
    ) -> bool:
        """Valid condition, matched and violating counts. Returns whether it wrote."""
        meta = body.get("metadata", {})
        generation = int(meta.get("generation") or 0)
        old = dict(body.get("status") or {})
        now = self.clock()
        if compiled is None:
            valid = status.condition(
                "Valid",
                False,
                "InvalidSpec",
                "the policy does not match its schema",
                old.get("conditions") or [],
                now,
                generation,
            )
            new: dict[str, Any] = {
                "observedGeneration": generation,
                "conditions": [valid.model_dump(by_alias=True, exclude_none=True)],
                "errors": [],
            }
        else:
            ns = self.settings.platform_namespace
            matched = [
                e
                for e in products
                if e.product is not None
                and not e.deleting
                and policy.applies(compiled.policy, e.product, ns)
            ]
            violating = 0
            for entry in matched:
                assert entry.product is not None
                result = policy.evaluate(entry.product, [compiled], now=now, platform_namespace=ns)
                violating += bool(result.violations)
            if compiled.valid:
                valid = status.condition(
                    "Valid",
                    True,
                    "Compiled",
                    f"{len(compiled.rules)} rules compiled",
                    old.get("conditions") or [],
                    now,
                    generation,
                )
            else:
                valid = status.condition(
                    "Valid",
                    False,
                    "InvalidExpression",
                    "; ".join(compiled.errors),
                    old.get("conditions") or [],
                    now,
                    generation,
                )
            new = {
                "observedGeneration": generation,
                "conditions": [valid.model_dump(by_alias=True, exclude_none=True)],
                "matched": len(matched),
                "violating": violating,
                "errors": list(compiled.errors),
            }
        patch = status.merge_patch(old, new)
        if patch is None:
            return False
        log.debug(
            "policy %s/%s status patch: %s (was %s)",
            meta.get("namespace"),
            meta.get("name"),
            patch,
            old,
        )
        self.cluster.patch(
            "GovernancePolicy",
            str(meta.get("namespace")),
            str(meta.get("name")),
            {"status": patch},
            sub="status",
        )
        return True


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
    children = Children.model_validate(previous.get("children") or {})
    return status.Observed(
        storage_wanted=product.spec.storage is not None,
        storage_exists=children.storage_claim is not None,
        pipeline_wanted=product.spec.pipeline is not None,
        pipeline_exists=children.cron_job is not None,
        pipeline_suspended=provisioning.pipeline_suspended(product, compliant=compliant),
        children=children,
    )


def phase_counts(tally: Tally) -> Counter[str]:
    with tally.lock:
        return Counter(tally.phases.values())


__all__ = ["Condition", "Outcome", "ProductEntry", "Reconciler", "compile_policy_body"]
