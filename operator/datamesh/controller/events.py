"""Kubernetes Events on products: one per state change, never failing a reconcile."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from datamesh.api.constants import API_VERSION, MANAGED_BY
from datamesh.api.models import Phase
from datamesh.controller import status
from datamesh.controller.index import ProductEntry
from datamesh.controller.kube import Cluster, api_message
from datamesh.controller.status import Clock

log = logging.getLogger("datamesh.controller.events")


class EventRecorder:
    def __init__(self, cluster: Cluster, clock: Clock) -> None:
        self.cluster = cluster
        self.clock = clock

    def phase_changed(
        self, entry: ProductEntry, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """An Event when the phase moved, carrying the Ready condition's message."""
        old_phase, new_phase = old.get("phase"), new.get("phase")
        if old_phase == new_phase:
            return
        ready: Mapping[str, Any] = next(
            (c for c in new.get("conditions", []) if c["type"] == "Ready"), {}
        )
        kind = "Normal" if new_phase in (Phase.READY.value, Phase.PROVISIONING.value) else "Warning"
        message = f"phase {old_phase or 'none'} -> {new_phase}: {ready.get('message', '')}"
        self.post(entry, kind, str(new_phase), message)

    def measures_changed(
        self, entry: ProductEntry, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> None:
        """An Event when the quality verdict or the SLA moved (even with the phase
        unchanged: a warning check, an SLA broken on a Ready product)."""
        for type_, good in (("QualityPassed", "QualityPassed"), ("SLAMet", "SLAMet")):
            before, after = _condition(old, type_), _condition(new, type_)
            if not after or (before or {}).get("status") == after.get("status"):
                continue
            ok = after.get("status") == "True"
            reason = good if ok else str(after.get("reason") or type_)
            self.post(entry, "Normal" if ok else "Warning", reason, str(after.get("message", "")))

    def post(self, entry: ProductEntry, kind: str, reason: str, message: str) -> None:
        stamp = status.timestamp(self.clock())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{entry.name}.", "namespace": entry.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": "DataProduct",
                "name": entry.name,
                "namespace": entry.namespace,
                "uid": entry.uid,
            },
            "type": kind,
            "reason": reason,
            "message": message[: status.MAX_MESSAGE],
            "source": {"component": MANAGED_BY},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.cluster.create("Event", entry.namespace, event)
        except Exception as exc:  # an event is never worth failing a reconcile
            log.warning(
                "could not post event on %s/%s: %s", entry.namespace, entry.name, api_message(exc)
            )


def _condition(st: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in st.get("conditions") or [] if c.get("type") == type_), None)
