"""The handlers' timers act only on complete indexes."""

from __future__ import annotations

import threading
from typing import Any, cast

import kopf
import pytest

from datamesh.controller import handlers
from datamesh.controller.handlers import State
from datamesh.controller.handling_state import ProductMemory
from datamesh.controller.index import ProductEntry
from datamesh.controller.kube import Cluster
from datamesh.controller.products import ProductReconciler
from datamesh.controller.settings import Settings
from datamesh.governance import policy
from tests.support.factories import policy_obj, product_dict


class RecordingSync:
    """Stands in for AdmissionSync, whose writes need a cluster (tested in integration)."""

    def __init__(self) -> None:
        self.calls: list[list[policy.CompiledPolicy]] = []

    def sync(self, policies: list[policy.CompiledPolicy]) -> int:
        self.calls.append(policies)
        return 0


@pytest.fixture
def sync(monkeypatch: pytest.MonkeyPatch) -> RecordingSync:
    recorder = RecordingSync()
    monkeypatch.setattr(State, "admission", recorder, raising=False)
    monkeypatch.setattr(State, "indexed", threading.Event())
    return recorder


def test_syncing_admission_does_not_declare_the_indexes_complete(sync: RecordingSync) -> None:
    handlers.sync_admission([])
    assert sync.calls == [[]]
    assert not State.indexed.is_set()


def test_the_admission_timer_waits_for_complete_indexes(sync: RecordingSync) -> None:
    compiled = policy.compile_policy(policy_obj(enforcement="block"))
    index = cast(Any, {("datamesh-system", "p"): [(compiled, {})]})
    for _ in range(5):  # however long indexing takes, no round syncs before it is done
        assert handlers.admission_round(index) is False
    assert sync.calls == []
    State.indexed.set()
    assert handlers.admission_round(index) is True
    assert sync.calls == [[compiled]]


class RecordingQueue:
    def __init__(self) -> None:
        self.added: list[tuple[Any, str]] = []

    def holds(self, key: Any) -> bool:
        return False

    def add(self, key: Any, *, provision: bool = True, trigger: str = "event") -> None:
        self.added.append((key, trigger))


def test_the_sweep_waits_for_complete_indexes(
    sync: RecordingSync, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = RecordingQueue()
    monkeypatch.setattr(State, "queue", queue, raising=False)
    monkeypatch.setattr(State, "memory", ProductMemory(kopf.AnnotationsDiffBaseStorage()), False)
    monkeypatch.setattr(
        State, "products", ProductReconciler(cast(Cluster, None), Settings()), raising=False
    )
    body = product_dict()
    body["metadata"].update(uid="u1", generation=1)  # never reconciled: no status
    entry = ProductEntry.from_body(body)
    index = cast(Any, {("product", *entry.key): [entry]})
    assert handlers.sweep_round(index) == 0
    assert queue.added == []
    State.indexed.set()
    assert handlers.sweep_round(index) == 1
    assert queue.added == [(entry.key, "sweep")]
