"""kopf handlers: thin. They gather inputs from the indexes and event bodies, call the
reconcilers, and return; the work queue runs product reconciles off kopf's event loop.

Indexes keep every policy (compiled once per change), product and namespace in memory,
so no handler lists anything from the apiserver. kopf runs no handler (and no event
handler) before every index is complete; ``indexes_complete`` turns that into a flag the
timers wait for, because a timer that acts on half-filled indexes would delete the
admission objects of policies not yet indexed and sweep products not yet seen.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import kopf
import psycopg

from datamesh.api.constants import GROUP, MANAGED_BY, MANAGED_BY_LABEL, VERSION, namespace_domain
from datamesh.controller import metrics, pipeline_runs, provisioning
from datamesh.controller.admission_sync import AdmissionSync
from datamesh.controller.handling_state import ProductMemory, ProductProgress, previous_upstream
from datamesh.controller.index import (
    IndexLookup,
    ProductEntry,
    compile_policy_body,
    namespaces_of,
    parse_policy,
    policies_of,
    product_at,
    product_keys,
    products_of,
)
from datamesh.controller.kube import Cluster
from datamesh.controller.policies import PolicyReconciler
from datamesh.controller.products import ProductReconciler
from datamesh.controller.settings import Settings
from datamesh.controller.warehouses import WarehouseConnection
from datamesh.controller.warehousing import WarehouseProvisioner
from datamesh.controller.workqueue import Item, WorkQueue
from datamesh.governance import policy
from datamesh.governance.lineage import upstream_refs

PRODUCTS = (GROUP, VERSION, "dataproducts")
POLICIES = (GROUP, VERSION, "governancepolicies")
NAMESPACES = ("", "v1", "namespaces")
JOBS = ("batch", "v1", "jobs")
PODS = ("", "v1", "pods")
ADMISSION_SYNC_S = 10.0
SWEEP_S = 10.0
POLICY_STATUS_S = 2.0

log = logging.getLogger("datamesh.controller.handlers")


class State:
    """Set once by ``configure`` before kopf starts, and by the startup handler."""

    settings: Settings
    products: ProductReconciler
    policies: PolicyReconciler
    admission: AdmissionSync
    queue: WorkQueue
    memory: ProductMemory
    indexes: ClassVar[dict[str, kopf.Index[Any, Any]]] = {}
    # Set by the first handler kopf runs: every index is complete from then on.
    indexed = threading.Event()
    admission_synced_once = False
    tasks: ClassVar[list[asyncio.Task[None]]] = []


def configure(
    settings: Settings,
    cluster: Cluster,
    warehouses: Mapping[str, WarehouseConnection] | None = None,
) -> None:
    State.settings = settings
    provisioner = WarehouseProvisioner(
        cluster, warehouses or {}, drift_seconds=settings.warehouse_drift_seconds
    )
    State.products = ProductReconciler(cluster, settings, warehouse=provisioner)
    State.policies = PolicyReconciler(cluster, settings)
    State.admission = AdmissionSync(cluster, settings)
    State.queue = WorkQueue(settings.workers, _process)
    State.memory = ProductMemory(
        kopf.AnnotationsDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    )
    State.indexed = threading.Event()
    State.admission_synced_once = False


def _process(key: Any, item: Item) -> bool:
    """A queued product, reconciled from the index's latest state; True asks the queue
    to try again with backoff (a transient failure, already reported in status)."""
    products = State.indexes["product_index"]
    entry = product_at(products, key)
    if entry is None or entry.deleting:
        return False  # gone, or the delete handler owns it now
    outcome = State.products.reconcile(
        entry,
        policies=policies_of(State.indexes["policy_index"]),
        lineage=IndexLookup(products),
        namespaces=namespaces_of(State.indexes["namespace_index"]),
        trigger=item.trigger,
        provision=item.provision,
    )
    return outcome.retry


# -- indexes ----------------------------------------------------------------------------------


@kopf.index(*POLICIES)
def policy_index(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
    """Compiled once per change; the status is kept to write only what changed."""
    compiled = compile_policy_body(body)
    if compiled is None:
        return {}
    snapshot = {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "generation": body.get("metadata", {}).get("generation"),
        },
        "status": dict(body.get("status") or {}),
    }
    return {(namespace, name): (compiled, snapshot)}


@kopf.index(*PRODUCTS)
async def product_index(body: kopf.Body, namespace: str, name: str, **_: Any) -> Any:
    """Each product under its key, plus its lineage keys (see ``index``)."""
    current = State.indexes.get("product_index")  # still this product's previous entry
    previous = product_at(current, (namespace, name)) if current is not None else None
    return product_keys(namespace, name, ProductEntry.from_body(body, previous))


@kopf.index(*NAMESPACES)
async def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> Any:
    return {name: namespace_domain(dict(labels))}


@kopf.on.event(*NAMESPACES)
async def indexes_complete(**_: Any) -> None:
    """Namespaces always exist, so this runs once kopf has filled every index, even in
    a cluster with no products and no policies."""
    State.indexed.set()


# -- products ---------------------------------------------------------------------------------


@kopf.on.resume(*PRODUCTS)
@kopf.on.create(*PRODUCTS)
@kopf.on.update(*PRODUCTS)
async def reconcile_product(
    body: kopf.Body,
    reason: str,
    old: Any,
    namespace: str,
    name: str,
    product_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    """Only enqueues: the work queue reconciles from the index (see ``workqueue``).
    Async, like the indexers, because none of them waits on anything: kopf runs them in
    its event loop instead of handing each event to a thread."""
    State.indexed.set()
    State.queue.add((namespace, name), provision=True, trigger=str(reason))
    if reason != "resume":
        before = previous_upstream(old) if isinstance(old, Mapping) else []
        _refresh_lineage(ProductEntry.from_body(body), before, product_index)


def _run_changed(labels: kopf.Labels, namespace: str | None) -> None:
    product = labels.get(provisioning.LABEL_PRODUCT)
    if product and namespace:
        State.queue.add((namespace, product), provision=True, trigger="pipeline-run")


@kopf.on.event(*JOBS, labels={MANAGED_BY_LABEL: MANAGED_BY})
def pipeline_job_event(
    type: str | None, labels: kopf.Labels, namespace: str | None, **_: Any
) -> None:
    """A run started, finished or failed: the product's PipelineReady follows. The
    initial listing (type None) is skipped: at start-up every product is resumed and
    reads its runs anyway, and queueing them here first would only delay that."""
    if type is not None:
        _run_changed(labels, namespace)


@kopf.on.event(*PODS, labels={MANAGED_BY_LABEL: MANAGED_BY})
def pipeline_pod_event(
    type: str | None,
    labels: kopf.Labels,
    namespace: str | None,
    status: kopf.Status,
    **_: Any,
) -> None:
    """Only a pod that cannot pull its image: its Job would say nothing until it gives up."""
    if type is None:
        return
    waiting = [
        (cs.get("state") or {}).get("waiting") or {} for cs in status.get("containerStatuses") or []
    ]
    if any(w.get("reason") in pipeline_runs.IMAGE_ERRORS for w in waiting):
        _run_changed(labels, namespace)


@kopf.on.delete(*PRODUCTS)
def delete_product(
    body: kopf.Body, product_index: kopf.Index[Any, Any], logger: kopf.Logger, **_: Any
) -> None:
    entry = ProductEntry.from_body(body)
    try:
        logger.info(State.products.finalize(entry))
    except psycopg.Error as exc:
        # The finalizer stays until the warehouse answers: Delete must drop the tables.
        raise kopf.TemporaryError(f"the warehouse is unreachable: {exc}", delay=15) from exc
    State.memory.forget(entry.uid)
    _refresh_lineage(entry, [], product_index)


def _refresh_lineage(
    entry: ProductEntry, before: list[str], product_index: kopf.Index[Any, Any]
) -> None:
    """A product's arrival, change or departure changes its neighbours' lineage status:
    the products it reads or read ``before`` (their downstream) and the products that
    read it."""
    if entry.product is None:
        return
    lookup = IndexLookup(product_index)
    refs = {*upstream_refs(entry.product), *lookup.consumers(entry.product.ref), *before}
    for ref in sorted(refs):
        neighbour = lookup.entry(ref)
        if neighbour is not None and neighbour.key != entry.key:
            State.queue.add(neighbour.key, provision=False, trigger="lineage")


# -- policies ---------------------------------------------------------------------------------


@kopf.on.create(*POLICIES)
@kopf.on.update(*POLICIES)
@kopf.on.delete(*POLICIES, optional=True)
def policy_changed(
    body: kopf.Body,
    old: Any,
    reason: str,
    namespace: str,
    name: str,
    policy_index: kopf.Index[Any, Any],
    product_index: kopf.Index[Any, Any],
    namespace_index: kopf.Index[Any, Any],
    logger: kopf.Logger,
    **_: Any,
) -> None:
    State.indexed.set()
    ref = f"{namespace}/{name}"
    deleted = reason == "delete"
    policies = [c for c in policies_of(policy_index) if not (deleted and c.ref == ref)]
    before = parse_policy(old) if isinstance(old, Mapping) else None
    after = None if deleted else parse_policy(body)
    products = products_of(product_index)
    namespaces = namespaces_of(namespace_index)
    affected = State.policies.affected_by(ref, before, after, products)
    outcomes = State.policies.fan_out(
        affected,
        lambda e: State.products.reconcile(
            e,
            policies=policies,
            lineage=IndexLookup(product_index),
            namespaces=namespaces,
            trigger="policy",
            provision=False,
        ),
    )
    changed = sum(1 for o in outcomes if o and o.wrote_status)
    logger.info(f"policy {ref} {reason}: re-evaluated {len(affected)} products, {changed} changed")
    sync_admission(policies)
    if not deleted:
        compiled = next((c for c in policies if c.ref == ref), None)
        State.policies.write_status(compiled, body, products, namespaces)


@kopf.on.resume(*POLICIES)
def policy_resumed(
    body: kopf.Body,
    namespace: str,
    name: str,
    policy_index: kopf.Index[Any, Any],
    product_index: kopf.Index[Any, Any],
    namespace_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    State.indexed.set()
    ref = f"{namespace}/{name}"
    policies = policies_of(policy_index)
    if not State.admission_synced_once:  # the first resume syncs every policy at once
        State.admission_synced_once = True
        sync_admission(policies)
    compiled = next((c for c in policies if c.ref == ref), None)
    State.policies.write_status(
        compiled, body, products_of(product_index), namespaces_of(namespace_index)
    )


def sync_admission(policies: list[policy.CompiledPolicy]) -> None:
    """Never fails a policy handler: the admission loop retries what did not get written.
    Callers pass every indexed policy, so they must run after indexing is complete."""
    try:
        writes = State.admission.sync(policies)
    except Exception as exc:
        log.error("could not update the admission policies (retrying on a timer): %s", exc)
        return
    if writes:
        log.info("admission policies updated (%d writes)", writes)


def admission_round(policy_index: kopf.Index[Any, Any]) -> bool:
    """One timer round: sync, but only once the indexes are complete (with half of the
    policies indexed, a sync would delete the other half's admission objects)."""
    if not State.indexed.is_set():
        return False
    sync_admission(policies_of(policy_index))
    return True


async def admission_loop(policy_index: kopf.Index[Any, Any]) -> None:
    """Exceptions lapse with time and admission CEL has no clock, so the objects are
    regenerated on a timer too; this also removes them when admission is turned off."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(ADMISSION_SYNC_S)
        await loop.run_in_executor(None, admission_round, policy_index)


def sweep_round(product_index: kopf.Index[Any, Any]) -> int:
    """Queue every product the index shows as not reconciled at its generation, once the
    indexes are complete; returns how many were queued."""
    if not State.indexed.is_set():
        return 0
    products = products_of(product_index)
    State.memory.retain({entry.uid for entry in products})
    queued = 0
    for entry in products:
        if entry.pending and not State.queue.holds(entry.key) and not State.products.handled(entry):
            State.queue.add(entry.key, provision=True, trigger="sweep")
            queued += 1
    return queued


async def sweep_loop(product_index: kopf.Index[Any, Any]) -> None:
    """kopf can drop an object's handling when its own patch fails through an apiserver
    outage (tests/e2e/test_faults.py saw 3 of 500 products never handled); the sweep finds
    them within seconds, from memory, without waiting for the full resync. Idle when all
    is settled. Runs in the event loop: it only reads memory and enqueues."""
    while True:
        await asyncio.sleep(SWEEP_S)
        sweep_round(product_index)


def policy_status_round() -> bool:
    """Rewrite the policies' matched and violating counts when a product's phase or
    violations changed since the last round (creations, edits, deletions), so a policy's
    status follows the products within seconds, not only on resync. Writes only counts
    that moved. Cheap enough to run every few seconds through a burst: the violating
    counts come from the products' last verdicts (no CEL is evaluated), and it waits
    until every live product has one (after a restart, counts from half the products
    would be written and then corrected)."""
    tally = State.products.tally
    if not State.indexed.is_set() or not tally.changed.is_set():
        return False
    products = products_of(State.indexes["product_index"])
    if tally.counted() < sum(1 for e in products if not e.deleting):
        return False
    tally.changed.clear()
    _write_policy_statuses(products, from_tally=True)
    return True


def _write_policy_statuses(products: list[ProductEntry], *, from_tally: bool) -> None:
    """Every indexed policy's status against ``products``; violating counts from the
    products' last verdicts, or evaluated afresh."""
    tally = State.products.tally
    namespaces = namespaces_of(State.indexes["namespace_index"])
    for store in list(State.indexes["policy_index"].values()):
        for compiled, snapshot in store:
            violating = tally.violating(compiled.ref) if from_tally else None
            State.policies.write_status(compiled, snapshot, products, namespaces, violating)


async def policy_status_loop() -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(POLICY_STATUS_S)
        try:
            await loop.run_in_executor(None, policy_status_round)
        except Exception:
            metrics.UNHANDLED_ERRORS.labels("policy-status").inc()
            log.exception("refreshing the policies' status failed")


# -- operator lifecycle -----------------------------------------------------------------------


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings,
    policy_index: kopf.Index[Any, Any],
    product_index: kopf.Index[Any, Any],
    namespace_index: kopf.Index[Any, Any],
    **_: Any,
) -> None:
    settings.persistence.finalizer = f"{GROUP}/storage-protection"
    # Products' handling state stays off the products (see handling_state).
    settings.persistence.progress_storage = ProductProgress(prefix=GROUP)
    settings.persistence.diffbase_storage = State.memory
    settings.posting.enabled = False  # the reconciler posts one event per state change
    settings.execution.max_workers = State.settings.workers
    # Per-object workers must stay unbounded (kopf's default): at start-up every worker
    # waits for the indexes to be complete, and indexing needs workers too, so a limit
    # below the number of objects deadlocks (tests/e2e/test_faults.py found it). They exit
    # soon after their object goes quiet.
    settings.batching.idle_timeout = 0.5
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    State.indexes.update(
        policy_index=policy_index, product_index=product_index, namespace_index=namespace_index
    )
    loop = asyncio.get_running_loop()
    # Held on State: the event loop keeps only weak references to tasks.
    State.tasks = [
        loop.create_task(admission_loop(policy_index)),
        loop.create_task(sweep_loop(product_index)),
        loop.create_task(policy_status_loop()),
    ]
    if State.settings.resync_seconds:
        State.tasks.append(loop.create_task(_resync(product_index)))


async def _resync(product_index: kopf.Index[Any, Any]) -> None:
    """Level-triggered safety net: re-check every product (and repair drifted or deleted
    children) on a timer. Writes nothing for products that are as they should be."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(State.settings.resync_seconds)
        try:
            await loop.run_in_executor(None, _resync_once, product_index)
        except Exception:
            metrics.UNHANDLED_ERRORS.labels("resync").inc()
            log.exception("resync failed")


def _resync_once(product_index: kopf.Index[Any, Any]) -> None:
    products = products_of(product_index)
    for entry in products:
        if not entry.deleting:
            State.queue.add(entry.key, provision=True, trigger="resync")
    # Matched and violating counts move with the products; refresh them here too.
    _write_policy_statuses(products, from_tally=False)


@kopf.on.probe(id="products")
def probe_products(product_index: kopf.Index[Any, Any], **_: Any) -> int:
    return len(products_of(product_index))
