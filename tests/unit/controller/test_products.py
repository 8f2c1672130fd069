"""Reconciling one product: its lock, and the observed state read back from its status."""

from __future__ import annotations

from typing import cast

from datamesh.controller.kube import Cluster
from datamesh.controller.products import (
    ProductReconciler,
    needs_children_pass,
    observed_from_status,
)
from datamesh.controller.settings import Settings
from datamesh.controller.status import utcnow
from tests.support.factories import product


def test_a_products_lock_lives_only_while_held() -> None:
    reconciler = ProductReconciler(cast(Cluster, None), Settings(), clock=utcnow)
    with reconciler._lock(("ns", "a")):  # as the reconcile holds it: no other reference
        assert reconciler._lock(("ns", "a")).locked()  # a second reconcile waits on it
        assert len(reconciler._locks) == 1
    assert len(reconciler._locks) == 0


def test_a_re_evaluation_without_children_reads_the_job_state_from_the_plan() -> None:
    previous = {"children": {"cronJob": "orders-pipeline", "storageClaim": "orders-data"}}
    job = {"schedule": "0 * * * *", "image": "busybox:1.36"}
    active = product(pipeline=job)
    paused = product(pipeline={**job, "suspend": True})
    assert not observed_from_status(active, previous, compliant=True).pipeline_suspended
    assert observed_from_status(paused, previous, compliant=True).pipeline_suspended
    assert observed_from_status(active, previous, compliant=False).pipeline_suspended
    seen = observed_from_status(product(), previous, compliant=True)
    assert not seen.pipeline_wanted and not seen.pipeline_suspended
    assert seen.storage_exists and seen.children.storage_claim == "orders-data"


def test_a_failed_product_is_looked_at_again_on_every_reconcile() -> None:
    ready = {"phase": "Ready", "compliance": {"compliant": True}}
    failed = {"phase": "Failed", "compliance": {"compliant": True}}
    assert not needs_children_pass(False, ready, compliant=True)  # a plain re-evaluation
    assert needs_children_pass(False, failed, compliant=True)
    assert needs_children_pass(False, ready, compliant=False)  # the verdict flipped
    assert needs_children_pass(False, {}, compliant=True)  # never reconciled
    assert needs_children_pass(True, ready, compliant=True)


def test_a_warehouse_login_that_appeared_reaches_the_cron_job_on_a_re_evaluation() -> None:
    """The first pass's warehouse step failed (no Secret yet) and a lineage re-evaluation
    provisioned the tables: the CronJob must be patched to load the login then."""
    before = {"phase": "Provisioning", "compliance": {"compliant": True}, "children": {}}
    assert needs_children_pass(False, before, compliant=True, warehouse_secret="o-warehouse")
    after = {**before, "children": {"warehouseSecret": "o-warehouse"}}
    assert not needs_children_pass(False, after, compliant=True, warehouse_secret="o-warehouse")
