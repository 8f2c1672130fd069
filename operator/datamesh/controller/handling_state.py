"""What kopf keeps about each product between events, without writing it on the product.

kopf tells a create from an update from a no-op by comparing an object with the state it
last handled, which it normally stores as an annotation on the object, and it brands
objects it handles with a marker annotation. For products that is one more PATCH each,
and a second copy of the spec in every stored version and every watch event. So:

* ``ProductMemory`` keeps the last handled state of products in this process, in compact
  form: a digest of what their handlers react to (spec, labels, annotations) and the
  upstream references the update handler needs to tell old neighbours. Policies keep
  kopf's annotation, so a restarted operator still knows what a policy used to match.
  After a restart the memory is empty: a product whose status shows an earlier
  reconcile is taken as handled as it is now (kopf resumes it, and resuming reconciles
  it in full); one without a status is new (kopf creates it).
* ``ProductProgress`` is kopf's annotation progress storage without the marker on
  products: a handler that succeeds at once leaves nothing to write, and a retried one
  still keeps its progress on the object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

import kopf

from datamesh.api.constants import GROUP
from datamesh.api.models import DataProduct
from datamesh.governance.lineage import spec_upstream_refs

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def is_product(body: Mapping[str, Any]) -> bool:
    return body.get("kind") == DataProduct.KIND and str(body.get("apiVersion", "")).startswith(
        f"{GROUP}/"
    )


def previous_upstream(essence: Mapping[str, Any] | None) -> list[str]:
    """The upstream references a product declared when it was last handled."""
    return list((essence or {}).get("upstream") or [])


class ProductMemory(kopf.DiffBaseStorage):
    """Products in memory; every other kind goes to ``others`` (kopf's annotations).

    kopf calls ``build``, ``fetch`` and ``store`` from its event loop; ``forget`` is a
    single dictionary operation, safe from a handler thread."""

    def __init__(self, others: kopf.DiffBaseStorage) -> None:
        super().__init__()
        self.others = others
        self._seen: dict[str, kopf.BodyEssence] = {}

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        if not is_product(body):
            return self.others.build(body=body, extra_fields=extra_fields)
        meta = body.get("metadata", {})
        annotations = dict(meta.get("annotations") or {})
        ignored = {GROUP, *self._detect_marked_prefixes(annotations)}
        tracked = {
            "spec": body.get("spec") or {},
            "labels": meta.get("labels") or {},
            "annotations": {
                k: v
                for k, v in annotations.items()
                if k != LAST_APPLIED and k.partition("/")[0] not in ignored
            },
        }
        text = json.dumps(tracked, sort_keys=True, separators=(",", ":"), default=str)
        essence = {
            "digest": hashlib.sha256(text.encode()).hexdigest(),
            "upstream": spec_upstream_refs(tracked["spec"]),
        }
        return cast(kopf.BodyEssence, essence)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if not is_product(body):
            return self.others.fetch(body=body)
        essence = self._seen.get(str(body.get("metadata", {}).get("uid")))
        if essence is None and (body.get("status") or {}).get("observedGeneration") is not None:
            return self.build(body=body)  # reconciled by an earlier run of the operator
        return essence

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if not is_product(body):
            self.others.store(body=body, patch=patch, essence=essence)
            return
        self._seen[str(body.get("metadata", {}).get("uid"))] = essence

    def forget(self, uid: str) -> None:
        self._seen.pop(uid, None)

    def retain(self, uids: set[str]) -> None:
        """Drop products that are gone without passing our delete handler."""
        for uid in [u for u in self._seen if u not in uids]:
            self._seen.pop(uid, None)

    def __len__(self) -> int:
        return len(self._seen)


class ProductProgress(kopf.AnnotationsProgressStorage):
    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        if not is_product(body):
            super()._store_marker(prefix, patch, body)
