from __future__ import annotations

import copy
from typing import Any

import kopf

from datamesh.api.constants import API_VERSION, GROUP
from datamesh.controller.handling_state import ProductMemory, ProductProgress, previous_upstream


def product(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataProduct",
        "metadata": {
            "name": "orders",
            "namespace": "sales",
            "uid": "uid-1",
            "resourceVersion": "7",
            "labels": {"tier": "gold"},
            "annotations": {"team": "a"},
        },
        "spec": {
            "domain": "sales",
            "inputPorts": [{"product": "customers"}, {"product": "ledger", "domain": "finance"}],
        },
    }
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return body


def policy() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "GovernancePolicy",
        "metadata": {"name": "p", "namespace": "datamesh-system", "uid": "uid-p"},
        "spec": {"enforcement": "block"},
    }


def memory() -> ProductMemory:
    return ProductMemory(kopf.AnnotationsDiffBaseStorage(prefix=GROUP))


def digest(m: ProductMemory, body: dict[str, Any]) -> str:
    return str(m.build(body=kopf.Body(body))["digest"])  # type: ignore[typeddict-item]


def test_digest_follows_what_handlers_react_to() -> None:
    m = memory()
    base = digest(m, product())
    assert digest(m, product()) == base
    for changed in (
        product(spec__domain="finance"),
        product(metadata__labels={"tier": "silver"}),
        product(metadata__annotations={"team": "b"}),
    ):
        assert digest(m, changed) != base


def test_digest_ignores_status_system_fields_and_our_own_annotations() -> None:
    m = memory()
    base = digest(m, product())
    ours = {"team": "a", f"{GROUP}/touch-dummy": "x", f"{GROUP}/kopf-managed": "yes"}
    for same in (
        product(status={"phase": "Ready"}),
        product(metadata__resourceVersion="8"),
        product(metadata__annotations=ours),
        product(
            metadata__annotations={
                "team": "a",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            }
        ),
    ):
        assert digest(m, same) == base


def test_essence_carries_the_declared_upstream() -> None:
    essence = memory().build(body=kopf.Body(product()))
    assert previous_upstream(essence) == ["sales/customers", "finance/ledger"]
    assert previous_upstream(None) == []


def test_products_are_remembered_in_memory_and_never_patched() -> None:
    m = memory()
    body = kopf.Body(product())
    assert m.fetch(body=body) is None  # new: kopf creates it
    patch = kopf.Patch()
    essence = m.build(body=body)
    m.store(body=body, patch=patch, essence=essence)
    assert not patch
    assert m.fetch(body=body) == essence and len(m) == 1
    m.forget("uid-1")
    assert m.fetch(body=body) is None and len(m) == 0


def test_a_product_reconciled_by_an_earlier_run_is_taken_as_handled() -> None:
    m = memory()
    body = kopf.Body(product(status={"observedGeneration": 3}))
    assert m.fetch(body=body) == m.build(body=body)  # no diff: kopf resumes it


def test_retain_drops_products_that_are_gone() -> None:
    m = memory()
    for uid in ("a", "b", "c"):
        body = kopf.Body(product(metadata__uid=uid))
        m.store(body=body, patch=kopf.Patch(), essence=m.build(body=body))
    m.retain({"b"})
    assert len(m) == 1
    assert m.fetch(body=kopf.Body(product(metadata__uid="b"))) is not None


def test_policies_keep_kopfs_annotation() -> None:
    m = memory()
    body = kopf.Body(policy())
    patch = kopf.Patch()
    essence = m.build(body=body)
    assert essence["spec"] == {"enforcement": "block"}
    m.store(body=body, patch=patch, essence=essence)
    annotation = patch["metadata"]["annotations"][f"{GROUP}/last-handled-configuration"]
    stored = copy.deepcopy(policy())
    stored["metadata"]["annotations"] = {f"{GROUP}/last-handled-configuration": annotation}
    assert m.fetch(body=kopf.Body(stored)) == essence
    assert len(m) == 0


def test_a_handler_that_succeeds_at_once_leaves_nothing_to_write_on_a_product() -> None:
    progress = ProductProgress(prefix=GROUP)
    record: kopf.ProgressRecord = {"success": True}
    for body, written in ((product(), False), (policy(), True)):
        patch = kopf.Patch()
        progress.store(key=kopf.HandlerId("h"), record=record, body=kopf.Body(body), patch=patch)
        progress.purge(key=kopf.HandlerId("h"), body=kopf.Body(body), patch=patch)
        assert bool(patch) is written  # policies get kopf's marker, products nothing


def test_a_retried_handler_keeps_its_progress_on_the_product() -> None:
    progress = ProductProgress(prefix=GROUP)
    patch = kopf.Patch()
    record: kopf.ProgressRecord = {"retries": 2, "delayed": "2026-11-22T00:00:00"}
    progress.store(key=kopf.HandlerId("h"), record=record, body=kopf.Body(product()), patch=patch)
    assert list(patch["metadata"]["annotations"]) == [f"{GROUP}/h"]
