"""The work queue: merges keys, re-runs keys changed while processed, retries failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

from datamesh.controller.workqueue import Item, WorkQueue


def wait(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_keys_waiting_are_merged_and_provision_wins() -> None:
    gate = threading.Event()
    seen: list[tuple[Hashable, Item]] = []

    def process(key: Hashable, item: Item) -> None:
        if key == "block":
            gate.wait(5)
        seen.append((key, item))

    q = WorkQueue(1, process)
    q.add("block")
    wait(lambda: len(q) == 1 and not q._order)  # the one worker is busy with "block"
    q.add("a", provision=False, trigger="lineage")
    q.add("a", provision=True, trigger="update")
    q.add("a", provision=False, trigger="policy")
    gate.set()
    wait(lambda: len(q) == 0)
    assert [(k, i.provision, i.trigger) for k, i in seen] == [
        ("block", True, "event"),
        ("a", True, "update"),
    ]


def test_a_key_changed_while_processed_runs_again() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def process(key: Hashable, item: Item) -> None:
        runs.append(item.trigger)
        if len(runs) == 1:
            started.set()
            release.wait(5)

    q = WorkQueue(2, process)
    q.add("k", trigger="first")
    started.wait(5)
    q.add("k", trigger="second")  # must not run concurrently with the first
    time.sleep(0.1)
    assert runs == ["first"]
    release.set()
    wait(lambda: runs == ["first", "second"] and len(q) == 0)


def test_failures_are_retried_with_backoff() -> None:
    attempts: list[float] = []

    def process(key: Hashable, item: Item) -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError("apiserver unavailable")

    q = WorkQueue(1, process, base_delay=0.05, max_delay=1)
    assert not q.holds("k")
    q.add("k")
    wait(lambda: len(attempts) == 1)
    wait(lambda: q.holds("k"))  # the sweep leaves a failing key to its backoff
    wait(lambda: len(attempts) == 3 and len(q) == 0)
    assert attempts[2] - attempts[1] >= attempts[1] - attempts[0] >= 0.04
    assert not q.holds("k")


def test_a_failure_reported_by_process_is_retried_with_backoff_too() -> None:
    """A reconcile that wrote a transient failure into status returns True: retried
    with the same growing delay, without an exception's traceback."""
    attempts: list[float] = []

    def process(key: Hashable, item: Item) -> bool:
        attempts.append(time.monotonic())
        return len(attempts) < 3

    q = WorkQueue(1, process, base_delay=0.05, max_delay=1)
    q.add("k")
    wait(lambda: len(attempts) == 3 and len(q) == 0)
    assert attempts[2] - attempts[1] >= attempts[1] - attempts[0] >= 0.04
    wait(lambda: not q.holds("k"))
