from __future__ import annotations

import copy
from typing import Any, cast

from datamesh.controller.kube import Cluster
from datamesh.controller.index import ProductEntry
from datamesh.controller.products import ProductReconciler, observed_from_status
from datamesh.controller.status import utcnow
from datamesh.controller.settings import Settings
from tests.factories import product, product_dict


def body(**changes: Any) -> dict[str, Any]:
    doc = product_dict()
    doc["metadata"].update(uid="uid-1", generation=2, labels={"tier": "gold"})
    doc["status"] = {"observedGeneration": 2, "phase": "Ready"}
    for key, value in changes.items():
        if key == "status":
            doc["status"] = value
        elif key == "description":
            doc["spec"]["description"] = value
        else:
            doc["metadata"][key] = value
    return doc


def test_status_is_kept_as_text_and_decoded_on_use() -> None:
    entry = ProductEntry.from_body(body())
    assert entry.status == {"observedGeneration": 2, "phase": "Ready"}
    assert entry.observed_generation == 2 and not entry.pending
    entry.status["phase"] = "changed"  # a copy each time: the entry cannot be mutated
    assert entry.status["phase"] == "Ready"
    assert ProductEntry.from_body(body(generation=3)).pending
    assert ProductEntry.from_body(body(status=None)).status == {}


def test_a_status_only_event_reuses_the_parsed_product() -> None:
    first = ProductEntry.from_body(body())
    later = ProductEntry.from_body(body(status={"observedGeneration": 2, "phase": "X"}), first)
    assert later.product is first.product
    assert later.status["phase"] == "X"


def test_a_spec_or_label_change_parses_again() -> None:
    first = ProductEntry.from_body(body())
    assert first.product is not None
    changed_spec = ProductEntry.from_body(body(generation=3, description="new words"), first)
    assert changed_spec.product is not first.product
    assert changed_spec.product is not None
    assert changed_spec.product.spec.description == "new words"
    relabelled = ProductEntry.from_body(body(labels={"tier": "silver"}), first)
    assert relabelled.product is not None
    assert relabelled.product.metadata.labels == {"tier": "silver"}
    other = ProductEntry.from_body(body(uid="uid-2"), first)  # deleted and recreated
    assert other.product is not first.product


def test_an_invalid_product_is_reported_not_reused() -> None:
    broken = body(generation=3)  # a spec change always moves the generation
    broken["spec"] = copy.deepcopy(broken["spec"])
    del broken["spec"]["domain"]
    entry = ProductEntry.from_body(broken, ProductEntry.from_body(body()))
    assert entry.product is None
    assert entry.error is not None and "domain" in entry.error


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
