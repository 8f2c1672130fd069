"""ProductEntry, what the products index holds: the status kept as text, and the parsed
product reused until the spec, the labels or the object change."""

from __future__ import annotations

import copy
from typing import Any

from datamesh.controller.index import ProductEntry
from tests.support.factories import product_dict


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
