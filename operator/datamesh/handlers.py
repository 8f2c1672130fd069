"""kopf handlers: thin. They gather inputs (indexes, bodies) and call the reconciler.

Indexes keep every policy (compiled once per change), product and namespace in memory, so
no handler lists anything from the apiserver.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import kopf

from datamesh import metrics, policy
from datamesh.kube import Cluster
from datamesh.lineage import upstream_refs
from datamesh.model import GROUP, VERSION, GovernancePolicy
from datamesh.persistence import ProductMemory, ProductProgress, previous_upstream
from datamesh.reconciler import ProductEntry, Reconciler, compile_policy_body
from datamesh.settings import Settings
from datamesh.workqueue import Item, WorkQueue

PRODUCTS = (GROUP, VERSION, "dataproducts")
POLICIES = (GROUP, VERSION, "governancepolicies")
DOMAIN_LABEL = "datamesh.io/domain"
ADMISSION_SYNC_S = 10.0
SWEEP_S = 10.0
ADMISSION_GRACE_S = 30.0

log = logging.getLogger("datamesh.handlers")


class State:
    """Set once by ``main`` before kopf starts, and by the startup handler (indexes)."""

    settings: Settings
    reconciler: Reconciler
    queue: WorkQueue
    memory: ProductMemory
    indexes: ClassVar[dict[str, kopf.Index[Any, Any]]] = {}
    # kopf calls no handler before every index is complete: the first call marks it.
    indexed = False


def configure(settings: Settings, cluster: Cluster) -> None:
    State.settings = settings
    State.reconciler = Reconciler(cluster, settings)
    State.queue = WorkQueue(settings.workers, _process)
    State.memory = ProductMemory(
        kopf.AnnotationsDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    )


def _process(key: Any, item: Item) -> None:
    """A queued product, reconciled from the index's latest state."""
    products = State.indexes["product_index"]
    entry = next(iter(products.get(("product", *key)) or ()), None)
    if entry is None or entry.deleting:
        return  # gone, or the delete handler owns it now
    State.reconciler.reconcile(
        entry,
        policies=_policies(State.indexes["policy_index"]),
        lineage=IndexLookup(products),
        namespaces=_namespaces(State.indexes["namespace_index"]),
        trigger=item.trigger,
        provision=item.provision,
    )


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
    """Each product under its key, plus lineage keys: ("ref", domain/name) for lookups
    and ("consumer", upstream ref) -> its own ref, so lineage needs no scan."""
    key = ("product", namespace, name)
    current = State.indexes.get("product_index")  # still this product's previous entry
    previous = next(iter(current.get(key) or ()), None) if current is not None else None
    entry = ProductEntry.from_body(body, previous)
    keys: dict[Any, Any] = {key: entry}
    if entry.product is not None and not entry.deleting:
        keys[("ref", entry.product.ref)] = (namespace, name)
        for upstream in upstream_refs(entry.product):
            keys[("consumer", upstream)] = entry.product.ref
    return keys


class IndexLookup:
    """Lineage answers straight from the product index."""

    def __init__(self, idx: kopf.Index[Any, Any]) -> None:
        self.idx = idx

    def exists(self, ref: str) -> bool:
        return ("ref", ref) in self.idx

    def consumers(self, ref: str) -> list[str]:
        store = self.idx.get(("consumer", ref))
        return list(store) if store is not None else []

    def upstream(self, ref: str) -> list[str]:
        entry = self.entry(ref)
        return upstream_refs(entry.product) if entry and entry.product else []

    def entry(self, ref: str) -> ProductEntry | None:
        keys = self.idx.get(("ref", ref))
        for namespace, name in keys or ():
            for entry in self.idx.get(("product", namespace, name)) or ():
                return cast(ProductEntry, entry)
        return None


@kopf.index("", "v1", "namespaces")
async def namespace_index(name: str, labels: kopf.Labels, **_: Any) -> Any:
    return {name: labels.get(DOMAIN_LABEL, name)}


def _policies(idx: kopf.Index[Any, Any]) -> list[policy.CompiledPolicy]:
    return [compiled for store in idx.values() for compiled, _ in store]


def _products(idx: kopf.Index[Any, Any]) -> list[ProductEntry]:
    return [e for key, store in idx.items() if key[0] == "product" for e in store]


def _namespaces(idx: kopf.Index[Any, Any]) -> dict[str, str]:
    return {name: next(iter(store)) for name, store in idx.items()}


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
    State.indexed = True
    State.queue.add((namespace, name), provision=True, trigger=str(reason))
    if reason != "resume":
        before = previous_upstream(old) if isinstance(old, Mapping) else []
        _refresh_lineage(ProductEntry.from_body(body), before, product_index)


@kopf.on.delete(*PRODUCTS)
def delete_product(
    body: kopf.Body,
    policy_index: kopf.Index[Any, Any],
    product_index: kopf.Index[Any, Any],
    namespace_index: kopf.Index[Any, Any],
    logger: kopf.Logger,
    **_: Any,
) -> None:
    entry = ProductEntry.from_body(body)
    logger.info(State.reconciler.finalize(entry))
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
    ref = f"{namespace}/{name}"
    deleted = reason == "delete"
    policies = [c for c in _policies(policy_index) if not (deleted and c.ref == ref)]
    before = _parse_policy(old) if isinstance(old, Mapping) else None
    after = None if deleted else _parse_policy(body)
    products = _products(product_index)
    namespaces = _namespaces(namespace_index)
    reconciler = State.reconciler
    affected = reconciler.affected_by(ref, before, after, products)
    outcomes = reconciler.fan_out(
        affected,
        lambda e: reconciler.reconcile(
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
    _sync_admission(policies)
    if not deleted:
        compiled = next((c for c in policies if c.ref == ref), None)
        reconciler.policy_status(compiled, body, products, namespaces)


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
    ref = f"{namespace}/{name}"
    policies = _policies(policy_index)
    if not State.indexed:  # the first resume syncs admission for every policy at once
        _sync_admission(policies)
    compiled = next((c for c in policies if c.ref == ref), None)
    State.reconciler.policy_status(
        compiled, body, _products(product_index), _namespaces(namespace_index)
    )


def _sync_admission(policies: list[policy.CompiledPolicy]) -> None:
    """Never fails a policy handler: the admission loop retries what did not get written."""
    State.indexed = True
    try:
        writes = State.reconciler.sync_admission(policies)
    except Exception as exc:
        log.error("could not update the admission policies (retrying on a timer): %s", exc)
        return
    if writes:
        log.info("admission policies updated (%d writes)", writes)


async def _admission_loop(policy_index: kopf.Index[Any, Any]) -> None:
    """Exceptions lapse with time and admission CEL has no clock, so the objects are
    regenerated on a timer too; this also removes them when admission is turned off.
    The first round waits for the indexes (a handler has run) or ADMISSION_GRACE_S."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        await asyncio.sleep(ADMISSION_SYNC_S)
        if State.indexed or loop.time() - started > ADMISSION_GRACE_S:
            await loop.run_in_executor(None, _sync_admission, _policies(policy_index))


async def _sweep_loop(product_index: kopf.Index[Any, Any]) -> None:
    """Queue every product the index shows as not reconciled at its generation. kopf can
    drop an object's handling when its own patch fails through an apiserver outage
    (tests/e2e/test_faults.py saw 3 of 500 products never handled); this finds them within
    seconds, from memory, without waiting for the full resync. Idle when all is settled."""
    while True:
        await asyncio.sleep(SWEEP_S)
        if not State.indexed:
            continue
        products = _products(product_index)
        State.memory.retain({entry.uid for entry in products})
        for entry in products:
            if (
                entry.pending
                and not State.queue.holds(entry.key)
                and not State.reconciler.handled(entry)
            ):
                State.queue.add(entry.key, provision=True, trigger="sweep")


def _parse_policy(body: Mapping[str, Any] | None) -> GovernancePolicy | None:
    if not body or "spec" not in body:
        return None
    try:
        return GovernancePolicy.model_validate({"metadata": {}, **dict(body)})
    except ValueError:
        return None


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
    # Products' handling state stays off the products (see persistence).
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
    asyncio.get_running_loop().create_task(_admission_loop(policy_index))
    asyncio.get_running_loop().create_task(_sweep_loop(product_index))
    if State.settings.resync_seconds:
        asyncio.get_running_loop().create_task(
            _resync(policy_index, product_index, namespace_index)
        )


async def _resync(
    policy_index: kopf.Index[Any, Any],
    product_index: kopf.Index[Any, Any],
    namespace_index: kopf.Index[Any, Any],
) -> None:
    """Level-triggered safety net: re-check every product (and repair drifted or deleted
    children) on a timer. Writes nothing for products that are as they should be."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(State.settings.resync_seconds)
        try:
            await loop.run_in_executor(
                None,
                _resync_once,
                policy_index,
                product_index,
                _namespaces(namespace_index),
            )
        except Exception:
            metrics.UNHANDLED_ERRORS.labels("resync").inc()
            log.exception("resync failed")


def _resync_once(
    policy_index: kopf.Index[Any, Any],
    product_index: kopf.Index[Any, Any],
    namespaces: dict[str, str],
) -> None:
    reconciler = State.reconciler
    products = _products(product_index)
    for entry in products:
        if not entry.deleting:
            State.queue.add(entry.key, provision=True, trigger="resync")
    # Matched and violating counts move with the products; refresh them here too.
    for store in list(policy_index.values()):
        for compiled, snapshot in store:
            reconciler.policy_status(compiled, snapshot, products, namespaces)


@kopf.on.probe(id="products")
def probe_products(product_index: kopf.Index[Any, Any], **_: Any) -> int:
    return len(_products(product_index))
