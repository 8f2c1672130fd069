"""Status computation: conditions, phases and the no-write guarantee."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from datamesh.api.models import Children, Lineage, Sla, WarehouseStatus
from datamesh.controller import status
from datamesh.controller.pipeline_runs import PipelineRun, RunHistory, RunState
from datamesh.governance import policy
from tests.support.factories import policy_obj, product

T0 = dt.datetime(2026, 11, 22, 10, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
ALL = status.Observed(
    True, True, True, True, False, Children(storage_claim="orders-data", cron_job="orders-pipeline")
)


def evaluation(ok: bool) -> policy.Evaluation:
    rule = {"name": "r", "expression": "true" if ok else "false", "message": "fix it"}
    return policy.evaluate(product(), [policy.compile_policy(policy_obj(rules=[rule]))], now=T0)


def compute(ok: bool, observed: status.Observed = ALL, previous=None, now=T0, warehouse=None):  # type: ignore[no-untyped-def]
    return status.to_dict(
        status.compute(
            generation=3,
            evaluation=evaluation(ok),
            observed=observed,
            lineage=Lineage(),
            previous=previous,
            now=now,
            warehouse=warehouse,
        )
    )


def conditions(st: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}


def test_compliant_product_with_all_children_is_ready() -> None:
    st = compute(True)
    assert st["phase"] == "Ready" and st["observedGeneration"] == 3
    assert conditions(st)["Ready"] == ("True", "Ready")
    assert st["compliance"]["compliant"] is True


def test_non_compliant_product_names_the_rule() -> None:
    st = compute(False)
    assert st["phase"] == "NonCompliant"
    assert conditions(st)["Ready"] == ("False", "NonCompliant")
    assert conditions(st)["PipelineReady"] == ("False", "Suspended")
    assert "datamesh-system/p/r: fix it" in st["conditions"][0]["message"]
    assert st["compliance"]["blocking"] == 1 and st["compliance"]["violationCount"] == 1


def test_missing_children_mean_provisioning_and_problems_mean_failed() -> None:
    none = status.Observed(True, False, True, False, False, Children())
    assert compute(True, none)["phase"] == "Provisioning"
    failed = status.Observed(
        True, False, True, False, False, Children(), problems=("CronJob x: forbidden",)
    )
    st = compute(True, failed)
    assert st["phase"] == "Failed" and "forbidden" in st["conditions"][-1]["message"]


def test_unchanged_product_gets_an_identical_status_so_nothing_is_written() -> None:
    first = compute(True)
    again = compute(True, previous=first, now=T1)
    assert again == first
    assert status.merge_patch(first, again) is None


def test_transition_time_moves_only_when_the_status_moves() -> None:
    first = compute(True)
    flipped = compute(False, previous=first, now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times["Compliant"] == status.timestamp(T1)
    assert times["StorageReady"] == status.timestamp(T0)  # still True
    assert flipped["compliance"]["evaluatedAt"] == status.timestamp(T1)


def test_merge_patch_removes_keys_and_keeps_equal_ones_out() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "gone": True}
    new = {"a": 1, "b": {"c": 2, "d": 4}, "added": [1]}
    assert status.merge_patch(old, new) == {"gone": None, "b": {"d": 4}, "added": [1]}
    assert status.merge_patch(new, new) is None


def test_unresolved_lineage_is_degraded_not_ready() -> None:
    for lineage, reason in (
        (Lineage(missing=["ghost/nowhere"]), "UpstreamMissing"),
        (Lineage(upstream=["sales/a"], cycle=["sales/orders", "sales/a", "sales/orders"]), "Cycle"),
    ):
        st = status.to_dict(
            status.compute(
                generation=3,
                evaluation=evaluation(True),
                observed=ALL,
                lineage=lineage,
                previous=None,
                now=T0,
            )
        )
        assert st["phase"] == "Degraded"
        assert conditions(st)["Ready"] == ("False", reason)
        assert conditions(st)["LineageResolved"] == ("False", reason)


def test_a_child_conflict_fails_the_product_and_names_the_object() -> None:
    observed = status.Observed(
        True,
        False,
        True,
        False,
        False,
        Children(),
        conflicts=("ConfigMap sales/orders-contract already exists and is not ours",),
        blocked=frozenset({"ConfigMap", "CronJob"}),
    )
    st = compute(True, observed)
    assert st["phase"] == "Failed"
    assert conditions(st)["Ready"] == ("False", "ChildConflict")
    assert conditions(st)["PipelineReady"] == ("False", "ChildConflict")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert "ConfigMap sales/orders-contract" in ready["message"]


def test_a_failed_pipeline_run_degrades_the_product_with_the_jobs_reason() -> None:
    failed = PipelineRun("orders-1", RunState.FAILED, "BackoffLimitExceeded", "run failed: x")
    observed = status.Observed(
        True,
        True,
        True,
        True,
        False,
        Children(storage_claim="orders-data", cron_job="orders-pipeline"),
        pipeline_run=failed,
    )
    st = compute(True, observed)
    assert st["phase"] == "Degraded"
    assert conditions(st)["PipelineReady"] == ("False", "BackoffLimitExceeded")
    assert conditions(st)["Ready"] == ("False", "BackoffLimitExceeded")
    assert conditions(st)["StorageReady"] == ("True", "Provisioned")


def test_a_succeeded_run_keeps_the_product_ready_and_says_when() -> None:
    done = PipelineRun("orders-1", RunState.SUCCEEDED, "Succeeded", "run orders-1 completed at T")
    observed = status.Observed(
        True,
        True,
        True,
        True,
        False,
        Children(storage_claim="orders-data", cron_job="orders-pipeline"),
        pipeline_run=done,
    )
    st = compute(True, observed)
    assert st["phase"] == "Ready"
    pipe = next(c for c in st["conditions"] if c["type"] == "PipelineReady")
    assert pipe["reason"] == "Succeeded" and "orders-1 completed" in pipe["message"]


def warehouse_case(outcome: status.WarehouseOutcome | None) -> dict:  # type: ignore[type-arg]
    return compute(True, warehouse=outcome)  # type: ignore[no-any-return]


TABLES = WarehouseStatus(name="main", role="dmp_sales__orders", tables=["sales.orders__o_v1"])


def test_without_a_warehouse_there_is_no_warehouse_condition() -> None:
    st = warehouse_case(None)
    assert "WarehouseReady" not in conditions(st) and "warehouse" not in st


def test_provisioned_tables_are_named_in_status_and_the_product_is_ready() -> None:
    st = warehouse_case(status.WarehouseOutcome(True, "Provisioned", "1 table", TABLES))
    assert conditions(st)["WarehouseReady"] == ("True", "Provisioned")
    assert st["phase"] == "Ready" and st["warehouse"]["tables"] == ["sales.orders__o_v1"]
    assert [c["type"] for c in st["conditions"]][-1] == "Ready"


def test_a_warehouse_failure_degrades_a_provisioned_product_and_delays_a_new_one() -> None:
    down = status.WarehouseOutcome(False, "WarehouseUnavailable", "refused", TABLES, retry=True)
    st = warehouse_case(down)
    assert st["phase"] == "Degraded"
    assert conditions(st)["Ready"] == ("False", "WarehouseUnavailable")
    new = warehouse_case(status.WarehouseOutcome(False, "WarehouseUnavailable", "refused"))
    assert new["phase"] == "Provisioning"


def test_a_breaking_change_degrades_and_a_spec_the_warehouse_cannot_hold_fails() -> None:
    breaking = status.WarehouseOutcome(False, "BreakingChange", "column x is text", TABLES)
    st = warehouse_case(breaking)
    assert st["phase"] == "Degraded" and conditions(st)["Ready"] == ("False", "BreakingChange")
    invalid = warehouse_case(status.WarehouseOutcome(False, "InvalidName", "too long"))
    assert invalid["phase"] == "Failed" and conditions(invalid)["Ready"][1] == "InvalidName"


REPORT = json.dumps(
    {
        "at": "2026-11-22T09:59:00Z",
        "table": "sales.orders__o_v1",
        "checks": [
            {"name": "ids", "rule": "unique", "severity": "critical", "verdict": "Passed"},
            {
                "name": "currency",
                "rule": "accepted_values",
                "severity": "error",
                "verdict": "Failed",
                "value": 0.99,
                "expected": ">= 1",
                "message": "measured 0.99, expected >= 1",
                "sample": [{"order_id": "o1", "currency": "euro"}],
            },
            {"name": "fresh", "rule": "freshness", "severity": "error", "verdict": "Unknown"},
        ],
    }
)
SLA = Sla(freshness="1h", availability=99.0)
DONE = PipelineRun("orders-1", RunState.SUCCEEDED, "Succeeded", "run orders-1 completed")
RUNS = RunHistory("2026-11-22T09:58:00Z", "orders-1", succeeded=1, failed=0)


def measured(report: str | None = REPORT, previous=None, now=T0, runs=RUNS):  # type: ignore[no-untyped-def]
    observed = dataclasses.replace(
        ALL,
        pipeline_run=DONE,
        runs=runs,
        report=("orders-1", report) if report else None,
    )
    return status.to_dict(
        status.compute(
            generation=3,
            evaluation=evaluation(True),
            observed=observed,
            lineage=Lineage(),
            previous=previous,
            now=now,
            warehouse=status.WarehouseOutcome(True, "Provisioned", "1 table", TABLES),
            sla=SLA,
        )
    )


def test_a_failing_error_check_degrades_the_product_with_its_sample() -> None:
    st = measured()
    assert st["phase"] == "Degraded"
    assert conditions(st)["QualityPassed"] == ("False", "CheckFailed")
    assert conditions(st)["Ready"] == ("False", "QualityCheckFailed")
    failed = next(c for c in st["quality"]["checks"] if c["name"] == "currency")
    assert failed["sample"] == ['{"currency":"euro","order_id":"o1"}']
    assert st["quality"]["summary"] == "1 failed" and st["quality"]["job"] == "orders-1"


def test_passing_checks_keep_the_product_ready_and_the_report_is_kept_between_runs() -> None:
    ok = json.loads(REPORT)
    ok["checks"][1]["verdict"] = "Passed"
    st = measured(json.dumps(ok))
    assert st["phase"] == "Ready" and conditions(st)["QualityPassed"] == ("True", "Passed")
    assert "could not run: fresh" in next(
        c["message"] for c in st["conditions"] if c["type"] == "QualityPassed"
    )
    # The next reconcile reads no report: the status keeps the last one, unchanged.
    again = measured(report=None, previous=st)
    assert again == st


def test_the_sla_is_met_until_the_last_success_is_older_than_the_target() -> None:
    st = measured()
    assert conditions(st)["SLAMet"] == ("True", "Met")
    assert st["sla"]["lastSuccess"] == "2026-11-22T09:58:00Z" and st["sla"]["availability"] == 100
    later = measured(report=None, previous=st, now=T0 + dt.timedelta(hours=2))
    assert conditions(later)["SLAMet"] == ("False", "Stale")
    never = measured(report=None, runs=RunHistory(None, None, 0, 1))
    assert conditions(never)["SLAMet"] == ("Unknown", "NoSuccessfulRun")
    assert conditions(never)["QualityPassed"] == ("Unknown", "NotMeasured")
