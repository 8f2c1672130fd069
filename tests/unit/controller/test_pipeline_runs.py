"""Reading a product's pipeline runs: the latest Job decides, an unpullable image is
reported while the Job still waits."""

from __future__ import annotations

from typing import Any

from datamesh.controller import pipeline_runs
from datamesh.controller.pipeline_runs import RunState, latest_run


def job(name: str, created: str, condition: str | None = None, **cond: str) -> dict[str, Any]:
    status: dict[str, Any] = {"active": 1} if condition is None else {}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", **cond}]
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def pod(job_name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"job-name": job_name}},
        "spec": {"containers": [{"name": "pipeline", "image": "localhost/nope:1"}]},
        "status": {
            "containerStatuses": [
                {"name": "pipeline", "state": {"waiting": {"reason": reason, "message": message}}}
            ]
        },
    }


def test_no_job_means_the_pipeline_never_ran() -> None:
    assert latest_run([], []) is None


def test_the_latest_job_decides_not_an_older_failure() -> None:
    jobs = [
        job("p-1", "2026-11-26T01:00:00Z", "Failed", reason="BackoffLimitExceeded"),
        job("p-2", "2026-11-26T02:00:00Z", "Complete", lastTransitionTime="2026-11-26T02:01:00Z"),
    ]
    run = latest_run(jobs, [])
    assert run is not None and run.state == RunState.SUCCEEDED and run.job == "p-2"
    assert "2026-11-26T02:01:00Z" in run.message


def test_a_failed_run_carries_the_jobs_reason_and_says_the_data_is_kept() -> None:
    jobs = [
        job(
            "p-1",
            "2026-11-26T01:00:00Z",
            "Failed",
            reason="BackoffLimitExceeded",
            message="Job has reached the specified backoff limit",
        )
    ]
    run = latest_run(jobs, [])
    assert run is not None and run.state == RunState.FAILED
    assert run.reason == "BackoffLimitExceeded"
    assert "backoff limit" in run.message and "data is kept" in run.message


def test_an_image_that_cannot_be_pulled_names_the_image_while_the_job_waits() -> None:
    jobs = [job("p-1", "2026-11-26T01:00:00Z")]
    pods = [pod("p-1", "ErrImageNeverPull", "image is not present with pull policy Never")]
    run = latest_run(jobs, pods)
    assert run is not None and run.state == RunState.IMAGE_ERROR
    assert run.reason == "ImagePullFailed" and "localhost/nope:1" in run.message


def test_the_kubelets_retries_do_not_change_the_message() -> None:
    jobs = [job("p-1", "2026-11-26T01:00:00Z")]
    first = latest_run(jobs, [pod("p-1", "ErrImagePull", "connection refused")])
    retry = latest_run(jobs, [pod("p-1", "ImagePullBackOff", "Back-off pulling image")])
    assert first == retry


def test_pods_of_other_jobs_and_ordinary_waits_do_not_count() -> None:
    jobs = [job("p-2", "2026-11-26T02:00:00Z")]
    pods = [pod("p-1", "ErrImagePull"), pod("p-2", "ContainerCreating")]
    run = latest_run(jobs, pods)
    assert run is not None and run.state == RunState.RUNNING


def _job(name: str, created: str, done: str | None = None, failed: bool = False) -> dict:  # type: ignore[type-arg]
    conditions = []
    if done:
        conditions.append({"type": "Complete", "status": "True", "lastTransitionTime": done})
    if failed:
        conditions.append({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})
    status = {"conditions": conditions, **({"completionTime": done} if done else {})}
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def test_history_counts_the_kept_runs_and_finds_the_last_success() -> None:
    jobs = [
        _job("a", "2026-12-06T01:00:00Z", done="2026-12-06T01:01:00Z"),
        _job("b", "2026-12-06T02:00:00Z", done="2026-12-06T02:03:00Z"),
        _job("c", "2026-12-06T03:00:00Z", failed=True),
        _job("d", "2026-12-06T04:00:00Z"),  # running
    ]
    runs = pipeline_runs.history(jobs)
    assert (runs.last_success, runs.last_success_job) == ("2026-12-06T02:03:00Z", "b")
    assert (runs.succeeded, runs.failed) == (2, 1)
    assert pipeline_runs.history([]).last_success is None


def test_the_report_is_the_successful_containers_termination_message() -> None:
    def pod(job: str, code: int, message: str, finished: str) -> dict:  # type: ignore[type-arg]
        state = {"terminated": {"exitCode": code, "message": message, "finishedAt": finished}}
        return {
            "metadata": {"labels": {"job-name": job}},
            "status": {"containerStatuses": [{"state": state}]},
        }

    pods = [
        pod("b", 1, "boom", "2026-12-06T02:01:00Z"),
        pod("b", 0, '{"checks": []}', "2026-12-06T02:03:00Z"),
        pod("other", 0, "not ours", "2026-12-06T02:04:00Z"),
    ]
    assert pipeline_runs.termination_message(pods, "b") == '{"checks": []}'
    assert pipeline_runs.termination_message(pods, "zzz") is None
