"""Applying a product's provisioning plan to the cluster: create what is missing, repair
what drifted, suspend the pipeline of a non-compliant product, and keep or release the
storage when the product is deleted. The plan itself is pure (``provisioning``)."""

from __future__ import annotations

from typing import Any

from datamesh.api.constants import MANAGED_BY
from datamesh.api.models import Children, DataProduct, DeletionPolicy
from datamesh.controller import provisioning, status
from datamesh.controller.kube import Cluster, api_message, is_status


def ensure(
    cluster: Cluster,
    product: DataProduct,
    uid: str,
    compliant: bool,
    *,
    create_first: bool = False,
) -> status.Observed:
    """Create what is missing (compliant products only), repair drift, suspend the
    pipeline of a non-compliant product; never delete storage. ``create_first`` tries
    the create before any read (one request instead of two for a new product); a
    conflict falls back to read-and-compare, so the result is the same."""
    names = provisioning.Names(product.metadata.name)
    ns = product.metadata.namespace
    found: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for child in provisioning.plan(product, uid, compliant=compliant):
        try:
            existing = (
                None if create_first and compliant else cluster.get(child.kind, ns, child.name)
            )
            if existing is None:
                if not compliant:
                    continue  # provision nothing new for a non-compliant product
                try:
                    found[child.kind] = cluster.create(child.kind, ns, child.manifest)
                    continue  # just created from the plan: nothing can have drifted
                except Exception as exc:
                    if not is_status(exc, 409):
                        raise
                    existing = cluster.get(child.kind, ns, child.name)
                    if existing is None:
                        raise
            if compliant:
                patch = provisioning.drift_patch(child, existing)
            elif child.kind == "CronJob" and not existing.get("spec", {}).get("suspend"):
                patch = {"spec": {"suspend": True}}
            else:
                patch = None  # a non-compliant product's children are left as they are
            if patch:
                existing = cluster.patch(child.kind, ns, child.name, patch)
            found[child.kind] = existing
        except Exception as exc:
            problems.append(f"{child.kind} {child.name}: {api_message(exc)}")
    if product.spec.pipeline is None:
        remove_pipeline(cluster, ns, names.cron_job, problems)
    cron = found.get("CronJob")
    return status.Observed(
        storage_wanted=product.spec.storage is not None,
        storage_exists="PersistentVolumeClaim" in found,
        pipeline_wanted=product.spec.pipeline is not None,
        pipeline_exists=cron is not None,
        pipeline_suspended=bool(cron and cron.get("spec", {}).get("suspend")),
        children=Children(
            storage_claim=names.claim if "PersistentVolumeClaim" in found else None,
            cron_job=names.cron_job if cron else None,
            config_map=names.config_map if "ConfigMap" in found else None,
            service_account=names.service_account if "ServiceAccount" in found else None,
            role=names.role if "Role" in found else None,
            role_binding=names.role_binding if "RoleBinding" in found else None,
        ),
        problems=tuple(problems),
    )


def remove_pipeline(cluster: Cluster, namespace: str, name: str, problems: list[str]) -> None:
    """A product that dropped its pipeline loses the CronJob the operator made for it."""
    try:
        existing = cluster.get("CronJob", namespace, name)
        labels = (existing or {}).get("metadata", {}).get("labels", {})
        if existing and labels.get("app.kubernetes.io/managed-by") == MANAGED_BY:
            cluster.delete("CronJob", namespace, name)
    except Exception as exc:
        problems.append(f"CronJob {name}: {api_message(exc)}")


def release_storage(
    cluster: Cluster, namespace: str, name: str, uid: str, product: DataProduct | None
) -> str:
    """On deletion: keep the claim (Retain, the default: no owner reference left, so no
    cascade can reach it, and labelled for re-adoption) or delete it (Delete)."""
    if product is None or product.spec.storage is None:
        return "no storage"
    claim_name = provisioning.Names(name).claim
    if product.spec.deletion_policy == DeletionPolicy.DELETE:
        cluster.delete("PersistentVolumeClaim", namespace, claim_name)
        return f"deleted claim {claim_name}"
    claim = cluster.get("PersistentVolumeClaim", namespace, claim_name)
    if claim is None:
        return "no claim to retain"
    owners = [o for o in claim["metadata"].get("ownerReferences") or [] if o.get("uid") != uid]
    cluster.patch(
        "PersistentVolumeClaim",
        namespace,
        claim_name,
        {
            "metadata": {
                "ownerReferences": owners or None,
                "labels": {provisioning.LABEL_RETAINED: "true"},
            },
        },
    )
    return f"retained claim {claim_name}"
