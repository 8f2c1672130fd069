"""Whose object is it? The operator acts for whoever can write a DataProduct, so it is a
careful deputy: it changes or deletes an object only when the object is this product's
child, and never adopts what another owner controls or what nobody gave it. Pure.

An object is the product's child when its controller owner reference is a DataProduct of
the product's name (the current one, or an earlier one of the same name whose children
the garbage collector has not reached yet: those are doomed without an owner anyway).
An object with no controller at all is ours when the operator's labels name this product,
as a ReplicaSet adopts the orphans its selector matches: a claim of a ``Retain`` product
carries no owner reference (so no cascade can reach it), a retained claim waits for a
returning product of the same name, and `kubectl delete --cascade=orphan` leaves the
other children ownerless. Adopting never widens anything: an adopted object is brought
to the plan, and one whose immutable fields differ is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datamesh.api.constants import GROUP, MANAGED_BY, MANAGED_BY_LABEL
from datamesh.controller.provisioning import LABEL_PRODUCT, Child

# What each child needs to exist before it can work: the job mounts the claim and the
# contract and runs as the service account; the binding grants the role.
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "CronJob": ("PersistentVolumeClaim", "ConfigMap", "ServiceAccount"),
    "RoleBinding": ("Role",),
}


def controller_of(existing: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = existing.get("metadata", {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def is_ours(child: Child, existing: Mapping[str, Any], product: str) -> bool:
    """Whether ``existing`` (the object found under the child's name) is this product's."""
    controller = controller_of(existing)
    if controller is not None:
        return (
            controller.get("kind") == "DataProduct"
            and str(controller.get("apiVersion", "")).split("/")[0] == GROUP
            and controller.get("name") == product
        )
    labels = existing.get("metadata", {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(LABEL_PRODUCT) == product


def describe(existing: Mapping[str, Any]) -> str:
    """Who holds a foreign object, for the conflict message."""
    controller = controller_of(existing)
    if controller is not None:
        return f"controlled by {controller.get('kind')}/{controller.get('name')}"
    return "not created by the operator for this product"


def immutable_change(child: Child, existing: Mapping[str, Any]) -> str | None:
    """The field the plan wants different that the apiserver never lets change in place:
    a binding's roleRef, a claim's storage class or access modes. None when none."""
    desired = child.manifest
    if child.kind == "RoleBinding" and existing.get("roleRef") != desired["roleRef"]:
        have = existing.get("roleRef") or {}
        return (
            f"roleRef is {have.get('kind')}/{have.get('name')}, the plan says "
            f"{desired['roleRef']['kind']}/{desired['roleRef']['name']}"
        )
    if child.kind == "PersistentVolumeClaim":
        spec, want = existing.get("spec") or {}, desired["spec"]
        wanted_class = want.get("storageClassName")
        if wanted_class is not None and spec.get("storageClassName") != wanted_class:
            return (
                f"storageClassName is {spec.get('storageClassName')!r}, the product asks for "
                f"{wanted_class!r}"
            )
        if spec.get("accessModes") is not None and spec["accessModes"] != want["accessModes"]:
            return f"accessModes are {spec['accessModes']}, the plan says {want['accessModes']}"
    return None
