"""Keeping the generated ValidatingAdmissionPolicies in line with the block policies.
What they should be is pure (``governance.admission``); this writes the difference, and
reads back what the apiserver made of them (``AdmissionChecks``)."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datamesh.controller import provisioning
from datamesh.controller.kube import Cluster, api_message, is_status
from datamesh.controller.settings import Settings
from datamesh.controller.status import Clock, utcnow
from datamesh.governance import admission, policy

log = logging.getLogger("datamesh.controller.admission_sync")

VAP = "ValidatingAdmissionPolicy"
# The apiserver type-checks a new admission policy asynchronously (its status controller
# writes status.typeChecking, usually well within a second); a sync that wrote one waits
# this long for the verdict, so the policy's own status can carry it at once.
TYPE_CHECK_WAIT_S = 5.0
_POLL_S = 0.2
_MAX_WARNING = 500


@dataclass(frozen=True)
class AdmissionCheck:
    """What the apiserver made of one policy's generated admission policy."""

    generation: int | None  # the policy generation it was generated from
    warnings: tuple[str, ...] = ()  # its type checking's warnings, one per rule
    refused: str | None = None  # why the apiserver would not store it
    checked: bool = False  # whether type checking has run on its current spec


class AdmissionChecks:
    """Policy ref -> ``AdmissionCheck``: written by the sync, read by the policy
    reconciler for the policy's status. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ref: dict[str, AdmissionCheck] = {}

    def get(self, ref: str) -> AdmissionCheck | None:
        with self._lock:
            return self._by_ref.get(ref)

    def replace(self, checks: Mapping[str, AdmissionCheck]) -> None:
        with self._lock:
            self._by_ref = dict(checks)


_SHARED: weakref.WeakKeyDictionary[Cluster, AdmissionChecks] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def admission_checks(cluster: Cluster) -> AdmissionChecks:
    """The checks of the operator talking to ``cluster``: its AdmissionSync and its
    PolicyReconciler share the Cluster, and so find the same record."""
    with _SHARED_LOCK:
        found = _SHARED.get(cluster)
        if found is None:
            found = _SHARED[cluster] = AdmissionChecks()
        return found


def _type_warnings(obj: Mapping[str, Any], rules: list[str]) -> tuple[bool, tuple[str, ...]]:
    """(checked, warnings) from an admission policy's status.typeChecking; a warning
    names its rule ("spec.validations[2].expression" is the third compiled rule)."""
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    if status.get("observedGeneration") != generation:
        return False, ()
    out = []
    for item in (status.get("typeChecking") or {}).get("expressionWarnings") or []:
        where = str(item.get("fieldRef", ""))
        index = where.removeprefix("spec.validations[").partition("]")[0]
        rule = rules[int(index)] if index.isdigit() and int(index) < len(rules) else where
        text = " ".join(str(item.get("warning", "")).split())
        if len(text) > _MAX_WARNING:
            text = text[: _MAX_WARNING - 1] + "…"
        out.append(f"rule {rule}: {text}")
    return True, tuple(out)


class AdmissionSync:
    def __init__(self, cluster: Cluster, settings: Settings, clock: Clock = utcnow) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()

    @property
    def checks(self) -> AdmissionChecks:
        return admission_checks(self.cluster)

    def sync(self, policies: list[policy.CompiledPolicy]) -> int:
        """Bring the generated objects in line with ``policies`` (every policy indexed:
        a policy missing here has its objects deleted), or remove them all when admission
        is off. Returns the number of writes, none when nothing changed. Serialised:
        policy handlers and the timer may call it at once.

        An object the apiserver refuses (its CEL is stricter than the engine's here and
        there: a list literal mixing int and double) is logged and recorded for the
        policy's status instead of failing the sync: the other policies' objects are
        still written."""
        want: dict[str, admission.Admission] = {}
        if self.settings.admission:
            want = admission.desired(
                policies, platform_namespace=self.settings.platform_namespace, now=self.clock()
            )
        writes = 0
        refused: dict[str, str] = {}
        written: dict[str, int] = {}  # admission policy name -> generation written
        listed: dict[str, dict[str, Any]] = {}
        with self._lock:
            for kind, part in ((VAP, "policy"), ("ValidatingAdmissionPolicyBinding", "binding")):
                have = {
                    o["metadata"]["name"]: o
                    for o in self.cluster.list(kind, "", f"{admission.LABEL}=true")
                }
                if kind == VAP:
                    listed = dict(have)
                for name, objects in want.items():
                    manifest = getattr(objects, part)
                    existing = have.pop(name, None)
                    if name in refused:
                        continue  # a binding to a policy that is not there binds nothing
                    try:
                        if existing is None:
                            result = self.cluster.create(kind, "", manifest)
                        elif not provisioning.contains(existing, manifest):
                            version = existing["metadata"]["resourceVersion"]
                            meta = {**manifest["metadata"], "resourceVersion": version}
                            body = {**manifest, "metadata": meta}
                            result = self.cluster.replace(kind, "", name, body)
                        else:
                            continue
                    except Exception as exc:
                        if not is_status(exc, 400, 422):
                            raise
                        refused[name] = api_message(exc)
                        log.warning("the apiserver refused %s %s: %s", kind, name, refused[name])
                        continue
                    writes += 1
                    if kind == VAP:
                        written[name] = int(result.get("metadata", {}).get("generation") or 0)
                for name in have:  # a policy deleted, relaxed to warn, or admission off
                    self.cluster.delete(kind, "", name)
                    writes += 1
            if written:
                listed = self._type_checked(written)
            self.checks.replace(self._checks(policies, listed, refused))
        return writes

    def _type_checked(self, written: Mapping[str, int]) -> dict[str, dict[str, Any]]:
        """The admission policies, once the apiserver has type-checked the ones just
        written (or ``TYPE_CHECK_WAIT_S`` has passed)."""
        deadline = time.monotonic() + TYPE_CHECK_WAIT_S
        while True:
            listed = {
                o["metadata"]["name"]: o
                for o in self.cluster.list(VAP, "", f"{admission.LABEL}=true")
            }
            pending = [
                name
                for name, generation in written.items()
                if name in listed
                and int((listed[name].get("status") or {}).get("observedGeneration") or 0)
                < generation
            ]
            if not pending or time.monotonic() >= deadline:
                return listed
            time.sleep(_POLL_S)

    def _checks(
        self,
        policies: list[policy.CompiledPolicy],
        listed: Mapping[str, Mapping[str, Any]],
        refused: Mapping[str, str],
    ) -> dict[str, AdmissionCheck]:
        """Each block policy's check, from the admission policies as listed."""
        out: dict[str, AdmissionCheck] = {}
        builtin = listed.get(admission.BUILTIN_NAME)
        if builtin is not None and _type_warnings(builtin, [])[1]:
            log.warning("the built-in admission policy has type warnings: %s", builtin["status"])
        if not self.settings.admission:
            return out
        for compiled in policies:
            meta = compiled.policy.metadata
            name = admission.object_name(meta.namespace, meta.name)
            if name in refused:
                out[compiled.ref] = AdmissionCheck(meta.generation, refused=refused[name])
                continue
            obj = listed.get(name)
            if obj is None:
                continue
            annotations = obj.get("metadata", {}).get("annotations") or {}
            generation = annotations.get(f"{admission.ANNOTATION_POLICY}-generation")
            checked, warnings = _type_warnings(obj, [r.name for r in compiled.rules])
            out[compiled.ref] = AdmissionCheck(
                int(generation) if generation and generation.isdigit() else None,
                warnings,
                checked=checked,
            )
        return out
