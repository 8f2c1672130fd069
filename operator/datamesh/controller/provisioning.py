"""Provisioning plans: the Kubernetes objects a product should have. Pure, no I/O.

``plan`` returns the desired children of a product; the operator creates what is missing,
patches what drifted (``drifted``) and leaves the rest alone, so that reconciling an
unchanged product writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from datamesh.api.constants import (
    API_VERSION,
    DOMAIN_GROUP,
    DOMAIN_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PIPELINE_ACCOUNT,
)
from datamesh.api.models import DataProduct, DeletionPolicy

LABEL_PRODUCT = "datamesh.io/product"
LABEL_RETAINED = "datamesh.io/retained"
CONTRACT_KEY = "contract.yaml"
# libyaml's dumper writes the same text as PyYAML's own, six times faster; every
# provisioning reconcile renders the contract to compare it with the ConfigMap.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
PIPELINE_UID = 65532  # the conventional "nonroot" user of distroless images


@dataclass(frozen=True)
class Names:
    """Children's names, all derived from the product's name (at most 40 characters, so
    every one stays within the 63-character limit of names and label values)."""

    product: str

    @property
    def claim(self) -> str:
        return f"{self.product}-data"

    @property
    def cron_job(self) -> str:
        return f"{self.product}-pipeline"

    @property
    def service_account(self) -> str:
        return PIPELINE_ACCOUNT.format(product=self.product)

    @property
    def config_map(self) -> str:
        return f"{self.product}-contract"

    @property
    def warehouse_secret(self) -> str:
        return f"{self.product}-warehouse"

    @property
    def role(self) -> str:
        return f"{self.product}-reader"

    @property
    def role_binding(self) -> str:
        return f"{self.product}-reader"


@dataclass(frozen=True)
class Child:
    """One desired object: its kind (as the operator's client knows it) and manifest."""

    kind: str  # PersistentVolumeClaim, CronJob, ConfigMap, ServiceAccount, Role, RoleBinding
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


def labels(product: DataProduct) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        "app.kubernetes.io/part-of": "datamesh",
        LABEL_PRODUCT: product.metadata.name,
        DOMAIN_LABEL: product.spec.domain,
    }


def owner_reference(product: DataProduct, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "DataProduct",
        "name": product.metadata.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    product: DataProduct, uid: str, name: str, *, owned: bool = True, **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": product.metadata.namespace,
        "labels": labels(product),
        "ownerReferences": [owner_reference(product, uid)] if owned else [],
        **extra,
    }


def contract_document(product: DataProduct) -> dict[str, Any]:
    """What consumers may rely on: schema, SLA, ports, owner, version."""
    spec = product.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    keep = (
        "domain",
        "version",
        "type",
        "classification",
        "retentionDays",
        "owner",
        "description",
        "schema",
        "sla",
        "outputPorts",
        "qualityChecks",
        "deprecation",
        "inputPorts",
    )
    return {"product": product.metadata.name, **{k: spec[k] for k in keep if k in spec}}


def storage_claim(product: DataProduct, uid: str) -> Child | None:
    storage = product.spec.storage
    if storage is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class:
        spec["storageClassName"] = storage.storage_class
    annotations = {
        "datamesh.io/classification": str(product.spec.classification),
        "datamesh.io/retention-days": str(product.spec.retention_days),
        "datamesh.io/encryption-at-rest": str(storage.encryption.at_rest).lower(),
    }
    if storage.encryption.kms_key:
        annotations["datamesh.io/kms-key"] = storage.encryption.kms_key
    names = Names(product.metadata.name)
    # A retained claim has no owner reference at all: a foreground delete of the product
    # (how ArgoCD prunes) makes the garbage collector delete every dependent before any
    # finalizer of ours could let go of it. Only a Delete claim is left to the collector.
    owned = product.spec.deletion_policy == DeletionPolicy.DELETE
    return Child(
        "PersistentVolumeClaim",
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": child_metadata(
                product, uid, names.claim, owned=owned, annotations=annotations
            ),
            "spec": spec,
        },
    )


def pipeline_suspended(product: DataProduct, *, compliant: bool) -> bool:
    """A product's job runs only while it is compliant and its spec does not pause it."""
    job = product.spec.pipeline
    return job is not None and (job.suspend or not compliant)


def pipeline(
    product: DataProduct, uid: str, *, compliant: bool, warehouse_secret: str | None = None
) -> Child | None:
    """The refresh CronJob, under the "restricted" Pod Security Standard. With a
    warehouse, the pod gets the product's warehouse login as libpq's variables (PGHOST,
    PGUSER...) from ``warehouse_secret``, and a source Secret's as SOURCE_PG*."""
    job = product.spec.pipeline
    if job is None:
        return None
    names = Names(product.metadata.name)
    mounts = [
        {"name": "contract", "mountPath": "/etc/datamesh/contract", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "contract", "configMap": {"name": names.config_map}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if product.spec.storage is not None:
        mounts.insert(0, {"name": "data", "mountPath": "/data"})
        volumes.insert(0, {"name": "data", "persistentVolumeClaim": {"claimName": names.claim}})
    container: dict[str, Any] = {
        "name": "pipeline",
        "image": job.image,
        "env": [
            {"name": "DATAMESH_PRODUCT", "value": product.metadata.name},
            {"name": "DATAMESH_DOMAIN", "value": product.spec.domain},
            {"name": "DATAMESH_VERSION", "value": product.spec.version},
        ],
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if job.sql is not None:
        container["env"].append({"name": "DATAMESH_SQL", "value": job.sql})
    env_from: list[dict[str, Any]] = []
    if warehouse_secret is not None:
        env_from.append({"secretRef": {"name": warehouse_secret}})
    if job.source_secret is not None:
        env_from.append({"prefix": "SOURCE_", "secretRef": {"name": job.source_secret}})
    if env_from:
        container["envFrom"] = env_from
    if job.command:
        container["command"] = list(job.command)
    pod = {
        "metadata": {"labels": labels(product)},
        "spec": {
            "serviceAccountName": names.service_account,
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": PIPELINE_UID,
                "runAsGroup": PIPELINE_UID,
                "fsGroup": PIPELINE_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        },
    }
    return Child(
        "CronJob",
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": child_metadata(product, uid, names.cron_job),
            "spec": {
                "schedule": job.schedule,
                "suspend": pipeline_suspended(product, compliant=compliant),
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": {"labels": labels(product)},
                    "spec": {"backoffLimit": 2, "template": pod},
                },
            },
        },
    )


def contract_config_map(product: DataProduct, uid: str) -> Child:
    body = yaml.dump(contract_document(product), Dumper=_DUMPER, sort_keys=True, width=100)
    return Child(
        "ConfigMap",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": child_metadata(product, uid, Names(product.metadata.name).config_map),
            "data": {CONTRACT_KEY: body},
        },
    )


def service_account(product: DataProduct, uid: str) -> Child:
    return Child(
        "ServiceAccount",
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": child_metadata(product, uid, Names(product.metadata.name).service_account),
            "automountServiceAccountToken": False,
        },
    )


def reader_role(product: DataProduct, uid: str) -> Child:
    names = Names(product.metadata.name)
    return Child(
        "Role",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": child_metadata(product, uid, names.role),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [names.config_map],
                    "verbs": ["get", "watch"],
                },
                {
                    "apiGroups": ["datamesh.io"],
                    "resources": ["dataproducts"],
                    "resourceNames": [product.metadata.name],
                    "verbs": ["get", "watch"],
                },
            ],
        },
    )


def reader_subjects(product: DataProduct) -> list[dict[str, str]]:
    readers = product.spec.access.readers
    subjects = [
        {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": DOMAIN_GROUP.format(domain=d),
        }
        for d in readers.domains
    ]
    subjects += [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}
        for g in readers.groups
    ]
    for ref in readers.service_accounts:
        namespace, name = ref.split("/", 1)
        subjects.append({"kind": "ServiceAccount", "name": name, "namespace": namespace})
    return subjects


def reader_binding(product: DataProduct, uid: str) -> Child:
    names = Names(product.metadata.name)
    return Child(
        "RoleBinding",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": child_metadata(product, uid, names.role_binding),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": names.role,
            },
            "subjects": reader_subjects(product),
        },
    )


def plan(
    product: DataProduct, uid: str, *, compliant: bool, warehouse_secret: str | None = None
) -> list[Child]:
    """Every child the product should have, in creation order (the claim and contract
    before the job that mounts them). A non-compliant product's job is planned suspended;
    the caller only creates what is new for compliant products. ``warehouse_secret`` is
    the pipeline's warehouse login (written by the warehouse step), when it has one."""
    children = [
        storage_claim(product, uid),
        contract_config_map(product, uid),
        service_account(product, uid),
        reader_role(product, uid),
        reader_binding(product, uid),
        pipeline(product, uid, compliant=compliant, warehouse_secret=warehouse_secret),
    ]
    return [c for c in children if c is not None]


def contains(existing: Any, desired: Any) -> bool:
    """Whether ``existing`` already has everything ``desired`` sets. The apiserver adds
    defaults and other controllers add fields; those never count as drift."""
    if isinstance(desired, Mapping):
        return isinstance(existing, Mapping) and all(
            contains(existing.get(k), v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(desired)
            and all(contains(e, d) for e, d in zip(existing, desired, strict=True))
        )
    return bool(existing == desired)


# Fields of each kind the operator owns and patches; the rest is left to others.
_OWNED_TOP = {
    "PersistentVolumeClaim": ("spec",),
    "CronJob": ("spec",),
    "ConfigMap": ("data",),
    "ServiceAccount": ("automountServiceAccountToken",),
    "Role": ("rules",),
    "RoleBinding": ("subjects",),
}


def _owners(current: list[dict[str, Any]], meta: Mapping[str, Any]) -> list[Any] | None:
    """The owner references to write, or None when they are right: other owners are kept,
    ours (any DataProduct of this name, e.g. one deleted and recreated) made as desired."""
    product = meta["labels"][LABEL_PRODUCT]
    theirs = [
        o for o in current if not (o.get("kind") == "DataProduct" and o.get("name") == product)
    ]
    wanted = theirs + list(meta["ownerReferences"])
    if len(wanted) == len(current) and all(
        contains(c, w) for c, w in zip(current, wanted, strict=True)
    ):
        return None
    return wanted


def drift_patch(child: Child, existing: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings ``existing`` to the desired state, or None when it is
    already there. A claim's spec is immutable but for its size, so only that is patched."""
    desired = child.manifest
    meta = desired["metadata"]
    current_meta = existing.get("metadata", {})
    patch: dict[str, Any] = {}
    meta_patch: dict[str, Any] = {}
    current_labels = current_meta.get("labels") or {}
    if not contains(current_labels, meta["labels"]) or LABEL_RETAINED in current_labels:
        # A retained claim being re-adopted loses its "retained" mark.
        meta_patch["labels"] = {
            **meta["labels"],
            **({LABEL_RETAINED: None} if LABEL_RETAINED in current_labels else {}),
        }
    if "annotations" in meta and not contains(
        current_meta.get("annotations", {}), meta["annotations"]
    ):
        meta_patch["annotations"] = meta["annotations"]
    owners = _owners(current_meta.get("ownerReferences") or [], meta)
    if owners is not None:
        meta_patch["ownerReferences"] = owners
    if meta_patch:
        patch["metadata"] = meta_patch
    for key in _OWNED_TOP[child.kind]:
        if child.kind == "PersistentVolumeClaim":
            size = desired["spec"]["resources"]
            if not contains(existing.get("spec", {}).get("resources"), size):
                patch["spec"] = {"resources": size}
            continue
        want, have = desired.get(key), existing.get(key)
        if want in ([], {}) and not have:
            continue  # the apiserver drops an empty list: absent is what was asked for
        if not contains(have, want):
            patch[key] = want
    return patch or None
