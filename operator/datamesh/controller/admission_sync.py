"""Keeping the generated ValidatingAdmissionPolicies in line with the block policies.
What they should be is pure (``governance.admission``); this writes the difference."""

from __future__ import annotations

import threading

from datamesh.controller import provisioning
from datamesh.controller.kube import Cluster
from datamesh.controller.settings import Settings
from datamesh.controller.status import Clock, utcnow
from datamesh.governance import admission, policy


class AdmissionSync:
    def __init__(self, cluster: Cluster, settings: Settings, clock: Clock = utcnow) -> None:
        self.cluster = cluster
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()

    def sync(self, policies: list[policy.CompiledPolicy]) -> int:
        """Bring the generated objects in line with ``policies`` (every policy indexed:
        a policy missing here has its objects deleted), or remove them all when admission
        is off. Returns the number of writes, none when nothing changed. Serialised:
        policy handlers and the timer may call it at once."""
        want: dict[str, admission.Admission] = {}
        if self.settings.admission:
            want = admission.desired(
                policies, platform_namespace=self.settings.platform_namespace, now=self.clock()
            )
        writes = 0
        with self._lock:
            for kind, part in (
                ("ValidatingAdmissionPolicy", "policy"),
                ("ValidatingAdmissionPolicyBinding", "binding"),
            ):
                have = {
                    o["metadata"]["name"]: o
                    for o in self.cluster.list(kind, "", f"{admission.LABEL}=true")
                }
                for name, objects in want.items():
                    manifest = getattr(objects, part)
                    existing = have.pop(name, None)
                    if existing is None:
                        self.cluster.create(kind, "", manifest)
                        writes += 1
                    elif not provisioning.contains(existing, manifest):
                        version = existing["metadata"]["resourceVersion"]
                        meta = {**manifest["metadata"], "resourceVersion": version}
                        self.cluster.replace(kind, "", name, {**manifest, "metadata": meta})
                        writes += 1
                for name in have:  # a policy deleted, relaxed to warn, or admission off
                    self.cluster.delete(kind, "", name)
                    writes += 1
        return writes
