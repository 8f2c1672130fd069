"""Whose object is it: the operator changes only its own children."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from datamesh.controller import ownership, provisioning
from tests.support.factories import product

UID = "uid-1"
JOB = {"schedule": "0 * * * *", "image": "busybox:1.36"}


def child(kind: str, **spec: Any) -> provisioning.Child:
    children = provisioning.plan(
        product(storage={"size": "1Gi", **spec}, deletionPolicy="Delete", pipeline=JOB),
        UID,
        compliant=True,
    )
    return next(c for c in children if c.kind == kind)


def stored(c: provisioning.Child, **meta: Any) -> dict[str, Any]:
    obj = copy.deepcopy(c.manifest)
    obj["metadata"].update(meta)
    return obj


def test_a_child_the_product_controls_is_ours() -> None:
    cm = child("ConfigMap")
    assert ownership.is_ours(cm, stored(cm), "orders")
    # an earlier product of the same name, deleted and recreated: adopted
    earlier = [{**cm.manifest["metadata"]["ownerReferences"][0], "uid": "old"}]
    assert ownership.is_ours(cm, stored(cm, ownerReferences=earlier), "orders")


@pytest.mark.parametrize(
    "meta",
    [
        {"ownerReferences": [], "labels": {}},  # a team's own object
        {"ownerReferences": [], "labels": {"app.kubernetes.io/managed-by": "datamesh-operator"}},
        {
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "controller": True}
            ]
        },
        {
            "ownerReferences": [
                {
                    "apiVersion": "datamesh.io/v1alpha1",
                    "kind": "DataProduct",
                    "name": "customers",
                    "controller": True,
                }
            ]
        },
    ],
)
def test_anything_else_under_a_childs_name_is_foreign(meta: dict[str, Any]) -> None:
    for kind in ("ConfigMap", "RoleBinding", "Role", "ServiceAccount", "CronJob"):
        found = child(kind)
        assert not ownership.is_ours(found, stored(found, **meta), "orders"), kind


def test_an_orphan_with_the_operators_labels_for_this_product_is_adopted() -> None:
    for kind in ("ConfigMap", "RoleBinding", "CronJob", "PersistentVolumeClaim"):
        found = child(kind)
        assert ownership.is_ours(found, stored(found, ownerReferences=[]), "orders"), kind


def test_a_retain_claim_is_ours_by_the_operators_labels_only() -> None:
    claim = child("PersistentVolumeClaim")
    labels = provisioning.labels(product())
    assert ownership.is_ours(claim, stored(claim, ownerReferences=[], labels=labels), "orders")
    retained = {**labels, provisioning.LABEL_RETAINED: "true"}
    assert ownership.is_ours(claim, stored(claim, ownerReferences=[], labels=retained), "orders")
    other = {**labels, provisioning.LABEL_PRODUCT: "customers"}
    assert not ownership.is_ours(claim, stored(claim, ownerReferences=[], labels=other), "orders")
    assert not ownership.is_ours(claim, stored(claim, ownerReferences=[], labels={}), "orders")


def test_immutable_changes_are_named() -> None:
    binding = child("RoleBinding")
    assert ownership.immutable_change(binding, stored(binding)) is None
    changed = stored(binding)
    changed["roleRef"] = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "view",
    }
    message = ownership.immutable_change(binding, changed)
    assert message is not None and "ClusterRole/view" in message
    claim = child("PersistentVolumeClaim", **{"class": "fast"})
    moved = stored(claim)
    moved["spec"]["storageClassName"] = "slow"
    assert "storageClassName is 'slow'" in str(ownership.immutable_change(claim, moved))
    assert ownership.immutable_change(claim, stored(claim)) is None


def test_the_job_and_the_binding_wait_on_what_they_use() -> None:
    assert set(ownership.DEPENDS_ON["CronJob"]) == {
        "PersistentVolumeClaim",
        "ConfigMap",
        "ServiceAccount",
    }
    assert ownership.DEPENDS_ON["RoleBinding"] == ("Role",)
