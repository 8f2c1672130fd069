"""The operator with its resync turned off, so that the periodic safety net cannot be what
makes these hold: a policy's counts follow product changes within seconds, and a failure
stays reported through re-evaluations and restarts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support import ROOT
from tests.support.cluster import Cluster
from tests.support.factories import dump, product_dict
from tests.support.kube import get, phase
from tests.support.live_repo import apply_live
from tests.support.operator import Operator
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def no_resync(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    operator = Operator(crds, tmp_path_factory.mktemp("no-resync"), resync_seconds="0")
    apply_live(crds)
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def counts(cluster: Cluster) -> tuple[int, int]:
    gp = get(cluster, "gp", "datamesh-system", "sla-required") or {}
    st = gp.get("status", {})
    return int(st.get("matched", 0)), int(st.get("violating", 0))


def test_policy_counts_follow_products_within_seconds(no_resync: Operator, namespace: str) -> None:
    cluster = no_resync.cluster
    wait_for(lambda: counts(cluster)[0] > 0, what="the policy's first counts")
    matched, violating = counts(cluster)
    doc = product_dict(domain=namespace, sla=None)
    doc["metadata"] = {"name": "ledger", "namespace": namespace}
    cluster.kubectl("apply", "-f", "-", input=dump(doc))
    wait_for(lambda: phase(cluster, namespace, "ledger") == "NonCompliant", what="NonCompliant")
    wait_for(
        lambda: counts(cluster) == (matched + 1, violating + 1),
        timeout=10,
        what="one more matched and violating product",
    )
    cluster.kubectl("delete", "dataproduct", "ledger", "-n", namespace, "--wait=true")
    wait_for(
        lambda: counts(cluster) == (matched, violating),
        timeout=10,
        what="the counts back after the deletion",
    )


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    obj = get(cluster, "dataproduct", namespace, name) or {}
    conditions = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def test_a_refused_child_stays_failed_through_re_evaluations_and_restarts(
    no_resync: Operator, namespace: str
) -> None:
    cluster = no_resync.cluster
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-claims", "namespace": namespace},
        "spec": {"hard": {"persistentvolumeclaims": "0"}},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(quota))
    doc = product_dict(domain=namespace)
    doc["metadata"] = {"name": "ledger", "namespace": namespace}
    cluster.kubectl("apply", "-f", "-", input=dump(doc))
    failed = wait_for(
        lambda: (
            (c := ready(cluster, namespace, "ledger")).get("reason") == "ProvisioningFailed" and c
        ),
        what="the refused claim reported",
    )
    assert "quota" in failed["message"]

    # A policy edit re-evaluates every product it matches without touching children.
    policy_file = ROOT / "policies" / "global" / "sla-required.yaml"
    cluster.kubectl(
        "patch", "gp", "sla-required", "-n", "datamesh-system", "--type=merge",
        "-p", json.dumps({"spec": {"description": "Edited to re-evaluate every product."}}),
    )  # fmt: skip
    try:
        wait_for(
            lambda: no_resync.metric_sum("datamesh_reconciles_total", trigger="policy") > 0,
            what="a re-evaluation",
        )
        wait_for(
            lambda: (
                (get(cluster, "gp", "datamesh-system", "sla-required") or {})
                .get("status", {})
                .get("observedGeneration")
                == (get(cluster, "gp", "datamesh-system", "sla-required") or {})
                .get("metadata", {})
                .get("generation")
            ),
            what="the policy's status for its new generation",
        )
        assert phase(cluster, namespace, "ledger") == "Failed"
        assert ready(cluster, namespace, "ledger")["message"] == failed["message"]
    finally:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(policy_file))

    no_resync.stop()
    no_resync.start()
    wait_for(
        lambda: no_resync.metric_sum("datamesh_reconciles_total", trigger="resume") > 0,
        what="the products resumed",
    )
    assert phase(cluster, namespace, "ledger") == "Failed"
    assert "quota" in ready(cluster, namespace, "ledger")["message"]
