"""Reconciling policies: which products a policy change touches, re-evaluating them in
parallel, and the policy's own status (Valid, matched and violating counts)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from datamesh.api.models import Enforcement, GovernancePolicy
from datamesh.controller import metrics, status
from datamesh.controller.admission_sync import admission_checks
from datamesh.controller.index import ProductEntry
from datamesh.controller.kube import Cluster
from datamesh.controller.products import Outcome
from datamesh.controller.settings import Settings
from datamesh.controller.status import Clock, utcnow
from datamesh.governance import policy

log = logging.getLogger("datamesh.controller.policies")

# The condition carrying the apiserver's verdict on a block policy's admission policy, and
# the prefix of the warnings it adds.
ADMISSION_CHECKED = "AdmissionChecked"
_ADMISSION = "admission: "


class PolicyReconciler:
    def __init__(self, cluster: Cluster, settings: Settings, clock: Clock = utcnow) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        # One pool for every fan-out, so concurrent policy events share the configured
        # number of threads instead of multiplying it.
        self._pool = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="datamesh-fanout"
        )

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

    def write_status(
        self,
        compiled: policy.CompiledPolicy | None,
        body: Mapping[str, Any],
        products: Sequence[ProductEntry],
        namespaces: Mapping[str, str | None],
        violating: int | None = None,
    ) -> bool:
        """Valid condition, matched and violating counts. Returns whether it wrote."""
        meta = body.get("metadata", {})
        old = dict(body.get("status") or {})
        new = self.compute_status(compiled, body, products, namespaces, violating)
        patch = status.merge_patch(old, new)
        if patch is None:
            return False
        log.debug("policy %s/%s status patch: %s", meta.get("namespace"), meta.get("name"), patch)
        self.cluster.patch(
            "GovernancePolicy",
            str(meta.get("namespace")),
            str(meta.get("name")),
            {"status": patch},
            sub="status",
        )
        return True

    def compute_status(
        self,
        compiled: policy.CompiledPolicy | None,
        body: Mapping[str, Any],
        products: Sequence[ProductEntry],
        namespaces: Mapping[str, str | None],
        violating: int | None = None,
    ) -> dict[str, Any]:
        """The status the policy should have: a policy the model refuses, or one outside
        the platform namespace and every domain's, is invalid; one that compiles counts
        the live products it matches and those it finds violating (evaluated here, unless
        the caller knows ``violating`` from the products' last reconciles)."""
        generation = int(body.get("metadata", {}).get("generation") or 0)
        previous = (body.get("status") or {}).get("conditions") or []
        now = self.clock()

        def valid(ok: bool, reason: str, message: str, type_: str = "Valid") -> dict[str, Any]:
            cond = status.condition(type_, ok, reason, message, previous, now, generation)
            return cond.model_dump(by_alias=True, exclude_none=True)

        if compiled is None:
            return {
                "observedGeneration": generation,
                "conditions": [valid(False, "InvalidSpec", "the policy does not match its schema")],
                "errors": [],
            }
        ns = self.settings.platform_namespace
        where = str(body.get("metadata", {}).get("namespace", ""))
        if where != ns and not namespaces.get(where):
            message = (
                f"namespace {where!r} is neither the platform namespace {ns!r} nor a domain's "
                "namespace (labelled datamesh.io/domain): the policy governs nothing"
            )
            return {
                "observedGeneration": generation,
                "conditions": [valid(False, "OutsideDomain", message)],
                "matched": 0,
                "violating": 0,
                "errors": [],
            }
        matched = [
            e.product
            for e in products
            if e.product is not None
            and not e.deleting
            and policy.applies(compiled.policy, e.product, ns)
        ]
        if violating is None:
            violating = sum(
                bool(policy.evaluate(p, [compiled], now=now, platform_namespace=ns).violations)
                for p in matched
            )
        if compiled.valid:
            condition = valid(True, "Compiled", f"{len(compiled.rules)} rules compiled")
        else:
            condition = valid(False, "InvalidExpression", "; ".join(compiled.errors))
        conditions = [condition]
        live = [e.product for e in products if e.product is not None and not e.deleting]
        stale = policy.stale_exceptions(compiled.policy, live, ns)
        warnings = [message for _, message in stale]
        if self._enforced_at_admission(compiled):
            checked = self._admission_checked(compiled, generation)
            if checked is None:  # not checked yet (a restart, a sync to come): keep what was said
                kept = [
                    dict(c)
                    for c in previous
                    if c.get("type") == ADMISSION_CHECKED
                    and c.get("observedGeneration") == generation
                ]
                conditions += kept
                said = ((body.get("status") or {}).get("warnings") or []) if kept else []
                warnings += [w for w in said if str(w).startswith(_ADMISSION)]
            else:
                ok, reason, message, found = checked
                conditions.append(valid(ok, reason, message, ADMISSION_CHECKED))
                warnings += found
        return {
            "observedGeneration": generation,
            "conditions": conditions,
            "matched": len(matched),
            "violating": violating,
            "errors": list(compiled.errors),
            "warnings": warnings,
        }

    def _enforced_at_admission(self, compiled: policy.CompiledPolicy) -> bool:
        return self.settings.admission and compiled.policy.spec.enforcement == Enforcement.BLOCK

    def _admission_checked(
        self, compiled: policy.CompiledPolicy, generation: int
    ) -> tuple[bool, str, str, list[str]] | None:
        """(ok, reason, message, warnings) for the AdmissionChecked condition: what the
        apiserver made of the block policy's generated admission policy (its own type
        checking, a second opinion on the rules); None until it has checked this
        generation."""
        check = admission_checks(self.cluster).get(compiled.ref)
        if check is None or check.generation != generation:
            return None
        if check.refused is not None:
            message = f"the apiserver refused the generated admission policy: {check.refused}"
            return False, "Refused", message, [_ADMISSION + message]
        if not check.checked:
            return None
        if check.warnings:
            found = [f"{_ADMISSION}type checking warns: {w}" for w in check.warnings]
            return False, "TypeWarnings", "; ".join(check.warnings), found
        return True, "TypeChecked", "the apiserver type-checked every rule: no warnings", []
