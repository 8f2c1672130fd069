"""A policy's matched and violating counts follow product changes within seconds, with the
resync turned off so that it cannot be what updates them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
