"""What a product's pipeline runs say: the latest Job of its CronJob, read with the pods of
that Job. Pure: the operator lists Jobs and pods by the product's label and passes them
in; the product's status (``status.compute``) turns the result into ``PipelineReady``.

A run is judged by its Job (Complete or Failed, with the Job's own reason), except while
it is still active: then a pod that cannot start its container because of its image
(ErrImagePull, ImagePullBackOff, ErrImageNeverPull, InvalidImageName) is reported at once
as ``ImagePullFailed``, naming the image, instead of a Job that waits silently until its deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)


IMAGE_PULL_FAILED = "ImagePullFailed"


class RunState(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    RUNNING = "Running"
    IMAGE_ERROR = "ImageError"


@dataclass(frozen=True)
class PipelineRun:
    """The latest run of a product's pipeline."""

    job: str
    state: RunState
    reason: str
    message: str


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _started(job: Mapping[str, Any]) -> str:
    meta = job.get("metadata") or {}
    # RFC 3339 UTC timestamps of one format sort as strings; the name breaks ties.
    return f"{meta.get('creationTimestamp', '')}/{meta.get('name', '')}"


def _image_problem(pods: Iterable[Mapping[str, Any]], job: str) -> tuple[str, str] | None:
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if labels.get("job-name") != job:
            continue
        spec_images = {
            c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []
        }
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_ERRORS:
                image = spec_images.get(cs.get("name")) or cs.get("image") or "?"
                # One reason and a message that does not change while the kubelet retries
                # (ErrImagePull and ImagePullBackOff alternate): the status is written once.
                return IMAGE_PULL_FAILED, (
                    f"image {image} of run {job} cannot be pulled or is not on the node; "
                    f"see `kubectl describe pods -l job-name={job}`"
                )
    return None


def latest_run(
    jobs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> PipelineRun | None:
    """The latest Job's outcome, or None when the pipeline never ran."""
    ordered = sorted(jobs, key=_started)
    if not ordered:
        return None
    job = ordered[-1]
    name = str((job.get("metadata") or {}).get("name", ""))
    if (done := _condition(job, "Complete")) is not None:
        return PipelineRun(
            name,
            RunState.SUCCEEDED,
            "Succeeded",
            f"run {name} completed at {done.get('lastTransitionTime', '?')}",
        )
    if (failed := _condition(job, "Failed")) is not None:
        reason = str(failed.get("reason") or "Failed")
        detail = failed.get("message") or reason
        return PipelineRun(
            name,
            RunState.FAILED,
            reason,
            f"run {name} failed: {detail}; the product's data is kept as it was",
        )
    problem = _image_problem(pods, name)
    if problem is not None:
        return PipelineRun(name, RunState.IMAGE_ERROR, problem[0], problem[1])
    return PipelineRun(name, RunState.RUNNING, "Running", f"run {name} is running")


@dataclass(frozen=True)
class RunHistory:
    """The runs the CronJob still keeps (its history limits bound them)."""

    last_success: str | None  # when the newest successful run finished (RFC 3339)
    last_success_job: str | None
    succeeded: int
    failed: int


def history(jobs: Iterable[Mapping[str, Any]]) -> RunHistory:
    succeeded = [j for j in jobs if _condition(j, "Complete") is not None]
    failed = sum(1 for j in jobs if _condition(j, "Failed") is not None)
    newest = max(succeeded, key=_started, default=None)
    finished = None
    if newest is not None:
        done = _condition(newest, "Complete") or {}
        finished = (newest.get("status") or {}).get("completionTime") or done.get(
            "lastTransitionTime"
        )
    return RunHistory(
        last_success=str(finished) if finished else None,
        last_success_job=str((newest.get("metadata") or {}).get("name")) if newest else None,
        succeeded=len(succeeded),
        failed=failed,
    )


def termination_message(pods: Iterable[Mapping[str, Any]], job: str) -> str | None:
    """What the run's successful container left in its termination message (the quality
    report), from the newest pod of ``job`` that has one."""
    found: list[tuple[str, str]] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get("job-name") != job:
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            done = (cs.get("state") or {}).get("terminated") or {}
            if done.get("exitCode") == 0 and done.get("message"):
                found.append((str(done.get("finishedAt") or ""), str(done["message"])))
    return max(found)[1] if found else None
