"""Status: what the operator writes back onto a product, computed without I/O.

Conditions follow the Kubernetes conventions: ``lastTransitionTime`` changes only when a
condition's status changes, so that an unchanged product's status is byte-for-byte the
same and nothing is written (``merge_patch`` returns None).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datamesh.api.models import (
    CheckStatus,
    Children,
    Compliance,
    Condition,
    DataProductStatus,
    Enforcement,
    EvaluatedPolicy,
    Lineage,
    Phase,
    QualityStatus,
    Sla,
    SlaStatus,
    WarehouseStatus,
)
from datamesh.controller.pipeline_runs import PipelineRun, RunHistory, RunState
from datamesh.dataplane.quality.plan import seconds
from datamesh.dataplane.quality.report import decode
from datamesh.governance.policy import Evaluation

MAX_MESSAGE = 1024

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Observed:
    """What the operator saw of the product's children in this reconcile."""

    storage_wanted: bool
    storage_exists: bool
    pipeline_wanted: bool
    pipeline_exists: bool
    pipeline_suspended: bool
    children: Children
    problems: tuple[str, ...] = ()  # API errors that stopped provisioning
    conflicts: tuple[str, ...] = ()  # objects under a child's name that are not ours
    blocked: frozenset[str] = frozenset()  # kinds not provisioned because of a conflict
    pipeline_run: PipelineRun | None = None  # the latest Job of the CronJob, if any ran
    runs: RunHistory | None = None  # the runs the CronJob keeps (None: not read this time)
    report: tuple[str, str] | None = None  # (job, quality report) of a run not yet read


@dataclass(frozen=True)
class WarehouseOutcome:
    """What the warehouse step found (``warehousing``), for the product's status."""

    ok: bool
    reason: str
    message: str
    status: WarehouseStatus | None = None
    # A transient failure (the warehouse unreachable): reconcile again with backoff.
    retry: bool = False


# Warehouse reasons that only a change of the product's spec or of the chart can fix.
WAREHOUSE_SPEC_REASONS = frozenset({"InvalidName", "UnmappedType", "UnknownWarehouse"})


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def condition(
    type_: str,
    ok: bool | None,
    reason: str,
    message: str,
    previous: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    generation: int,
) -> Condition:
    status = "Unknown" if ok is None else "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=_clip(message),
        last_transition_time=since or timestamp(now),
        observed_generation=generation,
    )


def _compliance(
    evaluation: Evaluation, previous: Mapping[str, Any] | None, now: dt.datetime
) -> Compliance:
    result = Compliance(
        compliant=evaluation.compliant,
        blocking=evaluation.blocking,
        warnings=evaluation.warnings,
        audits=evaluation.audits,
        violation_count=len(evaluation.violations),
        violations=list(evaluation.violations),
        policies=list(evaluation.policies),
    )
    # The verdict is the violations and the set of policies that produced them. When it
    # is unchanged, evaluatedAt and the recorded policy generations stay as they were, so
    # that editing a policy without changing any result writes to no product.
    before = dict(previous or {})
    stamp = before.pop("evaluatedAt", None)
    old_policies = before.pop("policies", None) or []
    now_dump = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    new_policies = now_dump.pop("policies")
    same = before == now_dump and sorted(p.get("policy") for p in old_policies) == sorted(
        p["policy"] for p in new_policies
    )
    if same and stamp:
        return result.model_copy(
            update={
                "evaluated_at": stamp,
                "policies": [EvaluatedPolicy.model_validate(p) for p in old_policies],
            }
        )
    return result.model_copy(update={"evaluated_at": timestamp(now)})


def compute(
    *,
    generation: int,
    evaluation: Evaluation,
    observed: Observed,
    lineage: Lineage,
    previous: Mapping[str, Any] | None,
    now: dt.datetime,
    warehouse: WarehouseOutcome | None = None,
    sla: Sla | None = None,
) -> DataProductStatus:
    """The whole status from this reconcile's inputs. The phase is decided in order,
    first match wins:

    - ``Failed``: an object under a child's name is not this product's (reason
      ``ChildConflict``), or the apiserver refused a child (its message is Ready's);
    - ``NonCompliant``: a block rule fails (nothing new is provisioned);
    - ``Failed`` too: the warehouse cannot hold the product as specified (a name over
      its limit, a warehouse the platform does not have);
    - ``Degraded``: provisioned, but the pipeline's last run failed or cannot pull its
      image (Ready is False with the run's reason), the warehouse is unreachable or
      refused a change of the table that needs a new major version, or an upstream is
      missing or lineage has a cycle (Ready is False with that reason);
    - ``Ready``: storage and pipeline are there, or were not asked for;
    - ``Provisioning``: otherwise, children are still being created.

    Every condition keeps its ``lastTransitionTime`` from ``previous`` unless its status
    changed, so an unchanged product yields an identical status and no write."""
    prev = previous or {}
    prev_conditions = prev.get("conditions") or []

    def cond(type_: str, ok: bool | None, reason: str, message: str) -> Condition:
        return condition(type_, ok, reason, message, prev_conditions, now, generation)

    blocking = [v for v in evaluation.violations if v.enforcement == Enforcement.BLOCK]
    if evaluation.compliant:
        compliant = cond(
            "Compliant",
            True,
            "Compliant",
            f"{len(evaluation.policies)} policies evaluated, no blocking "
            f"violation ({evaluation.warnings} warnings)",
        )
    else:
        compliant = cond(
            "Compliant",
            False,
            "NonCompliant",
            "; ".join(f"{v.policy}/{v.rule}: {v.message}" for v in blocking),
        )

    if not observed.storage_wanted:
        storage = cond("StorageReady", True, "NotRequested", "the product asks for no storage")
    elif "PersistentVolumeClaim" in observed.blocked:
        storage = cond("StorageReady", False, "ChildConflict", "; ".join(observed.conflicts))
    elif observed.storage_exists:
        storage = cond(
            "StorageReady", True, "Provisioned", f"claim {observed.children.storage_claim} exists"
        )
    elif not evaluation.compliant:
        storage = cond(
            "StorageReady",
            False,
            "NonCompliant",
            "storage is not provisioned while the product is non-compliant",
        )
    else:
        storage = cond("StorageReady", False, "Provisioning", "the claim is being created")

    run = observed.pipeline_run
    run_failing = run is not None and run.state in (RunState.FAILED, RunState.IMAGE_ERROR)
    if not observed.pipeline_wanted:
        pipe = cond("PipelineReady", True, "NotRequested", "the product has no pipeline")
    elif "CronJob" in observed.blocked:
        pipe = cond(
            "PipelineReady",
            False,
            "ChildConflict",
            "the cron job is not provisioned: " + "; ".join(observed.conflicts),
        )
    elif observed.pipeline_exists and not evaluation.compliant:
        pipe = cond(
            "PipelineReady",
            False,
            "Suspended",
            f"cron job {observed.children.cron_job} is suspended: the product is non-compliant",
        )
    elif observed.pipeline_exists and run_failing:
        assert run is not None
        pipe = cond("PipelineReady", False, run.reason, run.message)
    elif observed.pipeline_exists:
        state = "suspended by spec.pipeline.suspend" if observed.pipeline_suspended else "active"
        last = f"; {run.message}" if run else "; it has not run yet"
        pipe = cond(
            "PipelineReady",
            True,
            "Succeeded" if run and run.state == RunState.SUCCEEDED else "Scheduled",
            f"cron job {observed.children.cron_job} is {state}{last}",
        )
    elif not evaluation.compliant:
        pipe = cond(
            "PipelineReady",
            False,
            "NonCompliant",
            "the pipeline is not provisioned while the product is non-compliant",
        )
    else:
        pipe = cond("PipelineReady", False, "Provisioning", "the cron job is being created")

    if lineage.cycle:
        lineage_cond = cond(
            "LineageResolved", False, "Cycle", "lineage cycle: " + " -> ".join(lineage.cycle)
        )
    elif lineage.missing:
        lineage_cond = cond(
            "LineageResolved",
            False,
            "UpstreamMissing",
            "upstream products not found: " + ", ".join(lineage.missing),
        )
    else:
        lineage_cond = cond(
            "LineageResolved", True, "Resolved", f"{len(lineage.upstream)} upstream products found"
        )

    warehouse_cond = (
        cond("WarehouseReady", warehouse.ok, warehouse.reason, warehouse.message)
        if warehouse is not None
        else None
    )
    warehouse_failed = warehouse is not None and not warehouse.ok
    # Quality and the SLA are measured on the warehouse's tables: reported with one.
    measured = warehouse is not None and warehouse.status is not None
    quality = quality_of(observed, prev) if measured else None
    sla_status = sla_of(sla, observed, prev, quality) if measured and sla else None
    quality_cond = sla_cond = None
    failing = failing_checks(quality)
    if measured:
        quality_cond = _quality_condition(quality, failing, cond)
    if sla_status is not None and sla is not None:
        sla_cond = _sla_condition(sla, sla_status, now, cond)
    if observed.conflicts:
        phase = Phase.FAILED
        ready = cond("Ready", False, "ChildConflict", "; ".join(observed.conflicts))
    elif observed.problems:
        phase = Phase.FAILED
        ready = cond("Ready", False, "ProvisioningFailed", "; ".join(observed.problems))
    elif not evaluation.compliant:
        phase = Phase.NON_COMPLIANT
        ready = cond("Ready", False, "NonCompliant", compliant.message)
    elif warehouse is not None and warehouse.reason in WAREHOUSE_SPEC_REASONS:
        phase = Phase.FAILED
        ready = cond("Ready", False, warehouse.reason, warehouse.message)
    elif warehouse is not None and warehouse_failed and warehouse.status is None:
        phase = Phase.PROVISIONING  # nothing in the warehouse yet: retried with backoff
        ready = cond("Ready", False, warehouse.reason, warehouse.message)
    elif storage.status == "True" and observed.pipeline_exists and run_failing:
        # Provisioned, but its last run failed: the data is stale, nothing is removed.
        phase = Phase.DEGRADED
        ready = cond("Ready", False, pipe.reason, pipe.message)
    elif storage.status == "True" and pipe.status == "True" and warehouse_failed:
        assert warehouse is not None
        # The tables are there and served, but not as the spec says, or not reachable.
        phase = Phase.DEGRADED
        ready = cond("Ready", False, warehouse.reason, warehouse.message)
    elif storage.status == "True" and pipe.status == "True" and failing:
        # The data is served, but an error or critical check fails on it: nothing is
        # deprovisioned; the product says what is wrong with its data.
        assert quality_cond is not None
        phase = Phase.DEGRADED
        ready = cond("Ready", False, "QualityCheckFailed", quality_cond.message)
    elif storage.status == "True" and pipe.status == "True" and lineage_cond.status == "False":
        phase = Phase.DEGRADED
        ready = cond("Ready", False, lineage_cond.reason, lineage_cond.message)
    elif storage.status == "True" and pipe.status == "True":
        phase = Phase.READY
        ready = cond("Ready", True, "Ready", "compliant and every child is provisioned")
    else:
        phase = Phase.PROVISIONING
        ready = cond("Ready", False, "Provisioning", "children are being provisioned")

    return DataProductStatus(
        observed_generation=generation,
        phase=phase,
        conditions=[
            c
            for c in (
                compliant,
                storage,
                pipe,
                lineage_cond,
                warehouse_cond,
                quality_cond,
                sla_cond,
                ready,
            )
            if c
        ],
        compliance=_compliance(evaluation, prev.get("compliance"), now),
        children=observed.children,
        lineage=lineage,
        warehouse=warehouse.status if warehouse is not None else None,
        quality=quality,
        sla=sla_status,
    )


def quality_of(observed: Observed, prev: Mapping[str, Any]) -> QualityStatus | None:
    """The quality status: from a report not read before, else as the status had it."""
    if observed.report is not None:
        job, text = observed.report
        doc = decode(text)
        if doc is not None:
            return _quality_from_report(job, doc)
    before = prev.get("quality")
    return QualityStatus.model_validate(before) if before else None


def _quality_from_report(job: str, doc: Mapping[str, Any]) -> QualityStatus:
    checks = []
    for item in doc.get("checks") or []:
        if not isinstance(item, Mapping) or "name" not in item:
            continue
        checks.append(
            CheckStatus(
                name=str(item["name"]),
                rule=str(item.get("rule", "")),
                severity=str(item.get("severity", "error")),
                verdict=str(item.get("verdict", "Unknown")),
                value=item.get("value") if isinstance(item.get("value"), int | float) else None,
                expected=item.get("expected"),
                message=_clip(str(item["message"])) if item.get("message") else None,
                sample=[
                    json.dumps(row, separators=(",", ":"), sort_keys=True)[:256]
                    for row in (item.get("sample") or [])[:5]
                ],
            )
        )
    failed = sum(1 for c in checks if c.verdict == "Failed")
    passed = sum(1 for c in checks if c.verdict == "Passed")
    summary = f"{failed} failed" if failed else f"{passed}/{len(checks)} passed"
    return QualityStatus(
        summary=summary,
        last_run=str(doc.get("at")) if doc.get("at") else None,
        job=job,
        table=str(doc.get("table")) if doc.get("table") else None,
        checks=checks,
    )


def failing_checks(quality: QualityStatus | None) -> list[CheckStatus]:
    """Failed checks that make the product Degraded (error and critical ones)."""
    if quality is None:
        return []
    return [
        c for c in quality.checks if c.verdict == "Failed" and c.severity in ("error", "critical")
    ]


def _quality_condition(
    quality: QualityStatus | None,
    failing: list[CheckStatus],
    cond: Callable[[str, bool | None, str, str], Condition],
) -> Condition:
    if quality is None:
        return cond("QualityPassed", None, "NotMeasured", "no check has run on the table yet")
    if failing:
        return cond(
            "QualityPassed",
            False,
            "CheckFailed",
            "; ".join(f"{c.name} ({c.severity}): {c.message or c.verdict}" for c in failing),
        )
    unknown = [c.name for c in quality.checks if c.verdict == "Unknown"]
    warned = [c.name for c in quality.checks if c.verdict == "Failed"]
    notes = ""
    if warned:
        notes += f"; failing below error severity: {', '.join(warned)}"
    if unknown:
        notes += f"; could not run: {', '.join(unknown)}"
    return cond("QualityPassed", True, "Passed", f"{quality.summary} on {quality.table}{notes}")


def sla_of(
    sla: Sla, observed: Observed, prev: Mapping[str, Any], quality: QualityStatus | None
) -> SlaStatus:
    before = SlaStatus.model_validate(prev["sla"]) if prev.get("sla") else None
    runs = observed.runs
    freshness = next(
        (c for c in (quality.checks if quality else []) if c.rule == "freshness"), None
    )
    if runs is None:  # not read this time: as the status had it
        last_success = before.last_success if before else None
        availability = before.availability if before else None
        recent = before.recent_runs if before else 0
    else:
        last_success = runs.last_success or (before.last_success if before else None)
        recent = runs.succeeded + runs.failed
        availability = round(100.0 * runs.succeeded / recent, 2) if recent else None
    return SlaStatus(
        freshness_target=sla.freshness,
        availability_target=sla.availability,
        last_success=last_success,
        data_age_seconds=round(freshness.value) if freshness and freshness.value else None,
        availability=availability,
        recent_runs=recent,
    )


def _sla_condition(
    sla: Sla,
    measured: SlaStatus,
    now: dt.datetime,
    cond: Callable[[str, bool | None, str, str], Condition],
) -> Condition:
    """Messages name targets and times, never a running age: the condition is written
    when it changes, not at every resync."""
    target = seconds(sla.freshness)
    if measured.last_success is None:
        return cond("SLAMet", None, "NoSuccessfulRun", "the pipeline has not succeeded yet")
    finished = dt.datetime.fromisoformat(measured.last_success.replace("Z", "+00:00"))
    if (now - finished).total_seconds() > target:
        return cond(
            "SLAMet",
            False,
            "Stale",
            f"the last successful run finished at {measured.last_success}, longer ago than "
            f"the {sla.freshness} freshness target",
        )
    if measured.data_age_seconds is not None and measured.data_age_seconds > target:
        return cond(
            "SLAMet",
            False,
            "DataStale",
            f"the newest row was older than the {sla.freshness} freshness target when last checked",
        )
    if measured.availability is not None and measured.availability < sla.availability:
        return cond(
            "SLAMet",
            False,
            "AvailabilityBelowTarget",
            f"{measured.availability:g}% of the last {measured.recent_runs} runs succeeded; "
            f"the target is {sla.availability:g}%",
        )
    return cond(
        "SLAMet",
        True,
        "Met",
        f"last successful run at {measured.last_success}, within the {sla.freshness} target",
    )


def to_dict(status: DataProductStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def merge_patch(old: Any, new: Any) -> Any:
    """RFC 7386 merge patch from ``old`` to ``new``; None when they are equal."""
    if old == new:
        return None
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            sub = merge_patch(old[key], value)
            patch[key] = (
                sub if isinstance(old[key], Mapping) and isinstance(value, Mapping) else value
            )
    return patch or None
