"""Provisioning plans and drift detection, without a cluster."""

from __future__ import annotations

import copy

import yaml

from datamesh.controller import provisioning
from tests.support.factories import product

UID = "0000-uid"


def full_product(**overrides: object):  # type: ignore[no-untyped-def]
    spec = {
        "pipeline": {"schedule": "0 * * * *", "image": "img:1", "command": ["run"]},
        "access": {
            "readers": {
                "domains": ["finance"],
                "groups": ["auditors"],
                "serviceAccounts": ["bi/dashboards"],
            },
            "auditLogging": True,
        },
    }
    spec.update(overrides)
    return product(**spec)


def by_kind(children: list[provisioning.Child]) -> dict[str, provisioning.Child]:
    return {c.kind: c for c in children}


def test_plan_has_every_child_in_creation_order_with_owner_references() -> None:
    children = provisioning.plan(full_product(deletionPolicy="Delete"), UID, compliant=True)
    assert [c.kind for c in children] == [
        "PersistentVolumeClaim",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "CronJob",
    ]
    for child in children:
        meta = child.manifest["metadata"]
        assert meta["namespace"] == "sales"
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "datamesh.io/v1alpha1",
                "kind": "DataProduct",
                "name": "orders",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert meta["labels"]["datamesh.io/product"] == "orders"
        assert len(child.name) <= 63


def test_claim_carries_size_class_and_governance_annotations() -> None:
    claim = by_kind(
        provisioning.plan(
            full_product(
                storage={
                    "size": "5Gi",
                    "class": "fast",
                    "encryption": {"atRest": True, "kmsKey": "k1"},
                }
            ),
            UID,
            compliant=True,
        )
    )["PersistentVolumeClaim"].manifest
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["metadata"]["annotations"] == {
        "datamesh.io/classification": "internal",
        "datamesh.io/retention-days": "365",
        "datamesh.io/encryption-at-rest": "true",
        "datamesh.io/kms-key": "k1",
    }


def test_pipeline_meets_the_restricted_pod_security_standard() -> None:
    cron = by_kind(provisioning.plan(full_product(), UID, compliant=True))["CronJob"].manifest
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {v["name"] for v in pod["volumes"]} == {"data", "contract", "tmp"}
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "orders-data"
    assert pod["serviceAccountName"] == "orders-pipeline"
    assert cron["spec"]["suspend"] is False


def test_non_compliant_plan_suspends_the_pipeline() -> None:
    cron = by_kind(provisioning.plan(full_product(), UID, compliant=False))["CronJob"]
    assert cron.manifest["spec"]["suspend"] is True


def test_no_storage_and_no_pipeline_mean_no_claim_and_no_cron_job() -> None:
    kinds = {c.kind for c in provisioning.plan(product(storage=None), UID, compliant=True)}
    assert kinds == {"ConfigMap", "ServiceAccount", "Role", "RoleBinding"}


def test_readers_become_role_binding_subjects() -> None:
    binding = by_kind(provisioning.plan(full_product(), UID, compliant=True))["RoleBinding"]
    assert binding.manifest["subjects"] == [
        {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": "datamesh:domain:finance",
        },
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "auditors"},
        {"kind": "ServiceAccount", "name": "dashboards", "namespace": "bi"},
    ]
    role = by_kind(provisioning.plan(full_product(), UID, compliant=True))["Role"].manifest
    assert role["rules"][0]["resourceNames"] == ["orders-contract"]
    assert set(role["rules"][0]["verbs"]) == {"get", "watch"}


def test_contract_holds_what_consumers_rely_on() -> None:
    cm = by_kind(provisioning.plan(full_product(), UID, compliant=True))["ConfigMap"].manifest
    contract = yaml.safe_load(cm["data"]["contract.yaml"])
    assert contract["product"] == "orders" and contract["version"] == "1.0.0"
    assert [f["name"] for f in contract["schema"]["fields"]] == ["order_id", "amount"]
    assert "access" not in contract and "pipeline" not in contract


def _as_stored(child: provisioning.Child) -> dict:
    """What the apiserver returns: our fields plus defaults and bookkeeping."""
    stored = copy.deepcopy(child.manifest)
    stored["metadata"].update(uid="x", resourceVersion="7", creationTimestamp="t")
    stored["metadata"]["labels"]["added-by-someone"] = "yes"
    if child.kind == "CronJob":
        stored["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    if child.kind == "PersistentVolumeClaim":
        stored["spec"]["volumeMode"] = "Filesystem"
        stored["status"] = {"phase": "Pending"}
    return stored


def test_defaults_and_foreign_fields_are_not_drift() -> None:
    for child in provisioning.plan(full_product(), UID, compliant=True):
        assert provisioning.drift_patch(child, _as_stored(child)) is None, child.kind


def test_changed_fields_are_patched() -> None:
    children = by_kind(provisioning.plan(full_product(), UID, compliant=True))
    stored = _as_stored(children["CronJob"])
    stored["spec"]["schedule"] = "5 * * * *"
    patch = provisioning.drift_patch(children["CronJob"], stored)
    assert patch is not None and patch["spec"]["schedule"] == "0 * * * *"
    stored = _as_stored(children["ConfigMap"])
    stored["data"]["contract.yaml"] = "tampered"
    assert provisioning.drift_patch(children["ConfigMap"], stored) == {
        "data": children["ConfigMap"].manifest["data"]
    }


def test_only_the_claim_size_is_patched() -> None:
    claim = by_kind(provisioning.plan(full_product(), UID, compliant=True))["PersistentVolumeClaim"]
    stored = _as_stored(claim)
    stored["spec"]["resources"]["requests"]["storage"] = "1Mi"
    stored["spec"]["storageClassName"] = "other"
    assert provisioning.drift_patch(claim, stored) == {
        "spec": {"resources": {"requests": {"storage": "1Gi"}}}
    }


def test_retained_claim_is_readopted() -> None:
    claim = by_kind(provisioning.plan(full_product(), UID, compliant=True))["PersistentVolumeClaim"]
    stored = _as_stored(claim)
    stored["metadata"]["labels"][provisioning.LABEL_RETAINED] = "true"
    patch = provisioning.drift_patch(claim, stored)
    assert patch == {
        "metadata": {
            "labels": {**claim.manifest["metadata"]["labels"], provisioning.LABEL_RETAINED: None}
        }
    }


def test_a_retained_claim_has_no_owner_so_no_cascade_can_delete_it() -> None:
    # The default policy is Retain: the claim must not depend on the product at all.
    claim = by_kind(provisioning.plan(full_product(), UID, compliant=True))["PersistentVolumeClaim"]
    assert claim.manifest["metadata"]["ownerReferences"] == []
    for other in provisioning.plan(full_product(), UID, compliant=True):
        if other.kind != "PersistentVolumeClaim":
            assert other.manifest["metadata"]["ownerReferences"][0]["uid"] == UID


def test_switching_the_deletion_policy_moves_only_our_owner_reference() -> None:
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other"}
    retain = by_kind(provisioning.plan(full_product(), UID, compliant=True))[
        "PersistentVolumeClaim"
    ]
    delete = by_kind(provisioning.plan(full_product(deletionPolicy="Delete"), UID, compliant=True))[
        "PersistentVolumeClaim"
    ]
    owned = _as_stored(delete)
    owned["metadata"]["ownerReferences"].insert(0, foreign)
    # Delete -> Retain: ours goes, the foreign owner stays.
    assert provisioning.drift_patch(retain, owned) == {"metadata": {"ownerReferences": [foreign]}}
    # Retain -> Delete: ours is added after the foreign one.
    unowned = _as_stored(retain)
    unowned["metadata"]["ownerReferences"] = [foreign]
    patch = provisioning.drift_patch(delete, unowned)
    assert patch is not None
    assert [o["uid"] for o in patch["metadata"]["ownerReferences"]] == ["other", UID]
    # A claim left behind by an earlier product of the same name is taken over.
    stale = _as_stored(delete)
    stale["metadata"]["ownerReferences"][0]["uid"] = "old-uid"
    patch = provisioning.drift_patch(delete, stale)
    assert patch is not None
    assert [o["uid"] for o in patch["metadata"]["ownerReferences"]] == [UID]


def test_names_fit_within_kubernetes_limits_for_the_longest_product_name() -> None:
    names = provisioning.Names("x" * 40)
    for name in (names.claim, names.cron_job, names.config_map, names.role, names.warehouse_secret):
        assert len(name) <= 52  # CronJob names must leave room for the Job suffix


def test_a_binding_without_readers_is_not_drift_when_the_apiserver_drops_its_empty_list() -> None:
    # Found on a real node: every resync patched every reader-less product's binding.
    binding = by_kind(provisioning.plan(product(), UID, compliant=True))["RoleBinding"]
    assert binding.manifest["subjects"] == []
    stored = _as_stored(binding)
    del stored["subjects"]
    assert provisioning.drift_patch(binding, stored) is None
    stored["subjects"] = [{"kind": "Group", "name": "someone", "apiGroup": "x"}]
    assert provisioning.drift_patch(binding, stored) == {"subjects": []}


def test_the_pipeline_gets_its_warehouse_login_and_source_as_libpq_variables() -> None:
    job = {
        "schedule": "0 * * * *",
        "image": "img:1",
        "command": ["datamesh-sql"],
        "sql": "SELECT * FROM shop.orders",
        "sourceSecret": "shop-db",
    }
    children = provisioning.plan(
        full_product(pipeline=job), UID, compliant=True, warehouse_secret="orders-warehouse"
    )
    cron = by_kind(children)["CronJob"].manifest
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [
        {"secretRef": {"name": "orders-warehouse"}},
        {"prefix": "SOURCE_", "secretRef": {"name": "shop-db"}},
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DATAMESH_SQL"] == "SELECT * FROM shop.orders"
    # Without a warehouse (none configured), nothing refers to a Secret.
    plain = by_kind(provisioning.plan(full_product(), UID, compliant=True))["CronJob"].manifest
    (container,) = plain["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert "envFrom" not in container
