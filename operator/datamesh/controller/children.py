"""Applying a product's provisioning plan to the cluster: create what is missing, repair
what drifted, suspend the pipeline of a non-compliant product, and keep or release the
storage when the product is deleted. The plan itself is pure (``provisioning``)."""

from __future__ import annotations

from typing import Any

from datamesh.api.models import Children, DataProduct, DeletionPolicy
from datamesh.controller import ownership, pipeline_runs, provisioning, status
from datamesh.controller.kube import Cluster, api_message, is_status


def ensure(
    cluster: Cluster,
    product: DataProduct,
    uid: str,
    compliant: bool,
    *,
    create_first: bool = False,
    warehouse_secret: str | None = None,
    read_reports: bool = False,
    reported_job: str | None = None,
) -> status.Observed:
    """Create what is missing (compliant products only), repair drift, suspend the
    pipeline of a non-compliant product; never delete storage. An object under a child's
    name that is not this product's (``ownership``) is left exactly as it is, reported as
    a conflict, and nothing that depends on it is provisioned. ``create_first`` tries the
    create before any read (one request instead of two for a new product); a conflict
    falls back to read-and-compare, so the result is the same."""
    names = provisioning.Names(product.metadata.name)
    ns = product.metadata.namespace
    found: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    conflicts: list[str] = []
    blocked: set[str] = set()  # kinds that are foreign, or wait on a foreign one
    planned = provisioning.plan(
        product, uid, compliant=compliant, warehouse_secret=warehouse_secret
    )
    for child in planned:
        waits_on = [k for k in ownership.DEPENDS_ON.get(child.kind, ()) if k in blocked]
        if waits_on:
            blocked.add(child.kind)
            continue
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
            if not ownership.is_ours(child, existing, product.metadata.name):
                blocked.add(child.kind)
                conflicts.append(
                    f"{child.kind} {ns}/{child.name} already exists and is "
                    f"{ownership.describe(existing)}: the operator leaves it alone; remove "
                    "it or rename the product"
                )
                continue
            existing = _settle_immutable(cluster, child, existing, compliant, problems)
            if existing is None:
                continue
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
        remove_pipeline(cluster, product, problems)
    cron = found.get("CronJob")
    run = runs = report = None
    if cron is not None:
        try:
            run, runs, report = _latest_run(
                cluster, ns, product.metadata.name, reported_job if read_reports else ""
            )
        except Exception as exc:
            problems.append(f"pipeline runs of {names.cron_job}: {api_message(exc)}")
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
            warehouse_secret=warehouse_secret,
        ),
        problems=tuple(problems),
        conflicts=tuple(conflicts),
        blocked=frozenset(blocked),
        pipeline_run=run,
        runs=runs,
        report=report,
    )


def _latest_run(
    cluster: Cluster, ns: str, product: str, reported_job: str | None
) -> tuple[pipeline_runs.PipelineRun | None, pipeline_runs.RunHistory, tuple[str, str] | None]:
    """The latest run of the product's CronJob, the runs it keeps, and the quality report
    of the newest successful run when it is not ``reported_job`` (already in status;
    ``""`` reads no report: only runs with a warehouse check their table).
    Pods are read only while a run is active (an image that cannot be pulled, which the
    Job itself never says) or when a successful run has a report not yet read."""
    jobs = cluster.list("Job", ns, f"{provisioning.LABEL_PRODUCT}={product}")
    run = pipeline_runs.latest_run(jobs, [])
    runs = pipeline_runs.history(jobs)
    if run is not None and run.state == pipeline_runs.RunState.RUNNING:
        pods = cluster.list("Pod", ns, f"job-name={run.job}")
        run = pipeline_runs.latest_run(jobs, pods)
    report = None
    newest = runs.last_success_job
    if newest is not None and reported_job != "" and newest != reported_job:
        pods = cluster.list("Pod", ns, f"job-name={newest}")
        message = pipeline_runs.termination_message(pods, newest)
        report = (newest, message) if message else None
    return run, runs, report


def _settle_immutable(
    cluster: Cluster,
    child: provisioning.Child,
    existing: dict[str, Any],
    compliant: bool,
    problems: list[str],
) -> dict[str, Any] | None:
    """An owned child whose immutable fields differ from the plan: a claim is never
    replaced (its data would go), so it is reported and not counted as provisioned; any
    other child is deleted and created from the plan (compliant products only)."""
    change = ownership.immutable_change(child, existing)
    if change is None:
        return existing
    ns = child.manifest["metadata"]["namespace"]
    if child.kind == "PersistentVolumeClaim":
        problems.append(
            f"{child.kind} {child.name}: {change}; a claim is never replaced, so move the "
            "data and delete the claim, or change the product back"
        )
        return None
    if not compliant:
        return None
    cluster.delete(child.kind, ns, child.name)
    return cluster.create(child.kind, ns, child.manifest)


def remove_pipeline(cluster: Cluster, product: DataProduct, problems: list[str]) -> None:
    """A product that dropped its pipeline loses the CronJob it owns (and only that)."""
    ns, name = product.metadata.namespace, provisioning.Names(product.metadata.name).cron_job
    try:
        existing = cluster.get("CronJob", ns, name)
        child = provisioning.Child("CronJob", {"metadata": {"name": name}})
        if existing and ownership.is_ours(child, existing, product.metadata.name):
            cluster.delete("CronJob", ns, name)
    except Exception as exc:
        problems.append(f"CronJob {name}: {api_message(exc)}")


def release_storage(
    cluster: Cluster, namespace: str, name: str, uid: str, product: DataProduct | None
) -> str:
    """On deletion: keep the claim (Retain, the default: no owner reference left, so no
    cascade can reach it, and labelled for re-adoption) or delete it (Delete). A claim
    under that name that is not this product's is left alone either way."""
    if product is None or product.spec.storage is None:
        return "no storage"
    claim_name = provisioning.Names(name).claim
    claim = cluster.get("PersistentVolumeClaim", namespace, claim_name)
    if claim is None:
        return "no claim to release"
    probe = provisioning.Child("PersistentVolumeClaim", {"metadata": {"name": claim_name}})
    if not ownership.is_ours(probe, claim, name):
        return f"claim {claim_name} is not this product's: left alone"
    if product.spec.deletion_policy == DeletionPolicy.DELETE:
        cluster.delete("PersistentVolumeClaim", namespace, claim_name)
        return f"deleted claim {claim_name}"
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
