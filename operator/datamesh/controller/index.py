"""What the operator's in-memory indexes hold and how handlers read them.

kopf keeps three indexes (policies, products, namespaces), filled from its watches; no
handler lists anything from the apiserver. A product is indexed as a ``ProductEntry``
under ("product", namespace, name), plus lineage keys: ("ref", domain/name) for lookups
and ("consumer", upstream ref) for the products that read it, so lineage needs no scan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import kopf
from pydantic import ValidationError

from datamesh.api.fieldpath import field_path
from datamesh.api.models import DataProduct, GovernancePolicy
from datamesh.governance import policy
from datamesh.governance.lineage import upstream_refs


@dataclass(frozen=True)
class ProductEntry:
    """A product as the in-memory index holds it: parsed, with identity and status.

    The index holds one per product for the operator's lifetime, so the status is kept
    as its JSON text (a fifth of the memory of the decoded tree) and decoded on use."""

    namespace: str
    name: str
    uid: str
    generation: int
    product: DataProduct | None
    status_json: str = "{}"
    observed_generation: int | None = None
    error: str | None = None
    deleting: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.status_json))

    @property
    def pending(self) -> bool:
        """Not reconciled at its current generation (as far as the index has seen)."""
        return not self.deleting and self.observed_generation != self.generation

    @classmethod
    def from_body(
        cls, body: Mapping[str, Any], previous: ProductEntry | None = None
    ) -> ProductEntry:
        """``previous``, the entry the index held before this event, lends its parsed
        product when the event changed neither spec nor labels (status writes, kopf's
        finalizer): most events, and parsing is most of the cost of indexing one."""
        meta = body.get("metadata", {})
        uid = str(meta.get("uid", ""))
        generation = int(meta.get("generation") or 0)
        product: DataProduct | None = None
        error = None
        if (
            previous is not None
            and previous.product is not None
            and previous.uid == uid
            and previous.generation == generation
            and previous.product.metadata.labels == (meta.get("labels") or {})
        ):
            product = previous.product
        else:
            try:
                product = DataProduct.model_validate(dict(body))
            except ValidationError as exc:
                first = exc.errors()[0]
                error = f"{field_path(first['loc'])}: {first['msg']}"
        raw_status = body.get("status") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=uid,
            generation=generation,
            product=product,
            status_json=json.dumps(raw_status, separators=(",", ":")),
            observed_generation=raw_status.get("observedGeneration"),
            error=error,
            deleting=bool(meta.get("deletionTimestamp")),
        )


def compile_policy_body(body: Mapping[str, Any]) -> policy.CompiledPolicy | None:
    """A stored policy, compiled; None when the model refuses it (the apiserver's schema
    makes that unreachable, but the operator never crashes on it)."""
    try:
        return policy.compile_policy(GovernancePolicy.model_validate(dict(body)))
    except ValidationError:
        return None


def parse_policy(body: Mapping[str, Any] | None) -> GovernancePolicy | None:
    """A policy as an event's old or new body shows it, or None when there is none."""
    if not body or "spec" not in body:
        return None
    try:
        return GovernancePolicy.model_validate({"metadata": {}, **dict(body)})
    except ValueError:
        return None


def product_keys(namespace: str, name: str, entry: ProductEntry) -> dict[tuple[str, ...], Any]:
    """The index keys one product contributes: itself and its lineage edges."""
    keys: dict[tuple[str, ...], Any] = {("product", namespace, name): entry}
    if entry.product is not None and not entry.deleting:
        keys[("ref", entry.product.ref)] = (namespace, name)
        for upstream in upstream_refs(entry.product):
            keys[("consumer", upstream)] = entry.product.ref
    return keys


class IndexLookup:
    """Lineage answers straight from the product index (``governance.lineage.Lookup``)."""

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

    def product(self, ref: str) -> DataProduct | None:
        entry = self.entry(ref)
        return entry.product if entry is not None else None

    def entry(self, ref: str) -> ProductEntry | None:
        keys = self.idx.get(("ref", ref))
        for namespace, name in keys or ():
            for entry in self.idx.get(("product", namespace, name)) or ():
                return cast(ProductEntry, entry)
        return None


def policies_of(idx: kopf.Index[Any, Any]) -> list[policy.CompiledPolicy]:
    return [compiled for store in idx.values() for compiled, _ in store]


def products_of(idx: kopf.Index[Any, Any]) -> list[ProductEntry]:
    return [e for key, store in idx.items() if key[0] == "product" for e in store]


def product_at(idx: kopf.Index[Any, Any], key: tuple[str, str]) -> ProductEntry | None:
    return next(iter(idx.get(("product", *key)) or ()), None)


def namespaces_of(idx: kopf.Index[Any, Any]) -> dict[str, str | None]:
    """Namespace name -> the domain it is declared for, None for no domain's
    (``api.constants.namespace_domain``, applied when the namespace was indexed)."""
    return {name: next(iter(store)) for name, store in idx.items()}
