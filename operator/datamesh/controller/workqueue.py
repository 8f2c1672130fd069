"""A deduplicating work queue, the pattern controller-runtime uses.

kopf handlers only enqueue a product's key and return, so a burst of events never piles
up as thousands of pending handler calls each holding copies of bodies: the queue holds
keys, and a worker reads the latest state from the index when it gets to the key. A key
queued while it waits is merged; one queued while it is being processed runs again
afterwards; a failure (an exception, or ``process`` returning True for one it reported
itself) is retried with exponential backoff.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

log = logging.getLogger("datamesh.controller.workqueue")


@dataclass
class Item:
    provision: bool
    trigger: str


class WorkQueue:
    """Keys in, one worker per key at a time out. Every shared field (waiting, order,
    active, failures) is read and written under ``_cond``; ``_process`` runs outside it."""

    def __init__(
        self,
        workers: int,
        process: Callable[[Hashable, Item], bool | None],
        *,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        name: str = "datamesh-worker",
    ) -> None:
        self._process = process
        self._base, self._max = base_delay, max_delay
        self._cond = threading.Condition()
        self._waiting: dict[Hashable, Item] = {}
        self._order: deque[Hashable] = deque()
        self._active: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        for i in range(workers):
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True).start()

    def add(self, key: Hashable, *, provision: bool = True, trigger: str = "event") -> None:
        with self._cond:
            item = self._waiting.get(key)
            if item is not None:
                # Merge: a full reconcile covers a status-only one.
                if provision and not item.provision:
                    item.provision, item.trigger = True, trigger
                return
            self._waiting[key] = Item(provision, trigger)
            if key not in self._active:
                self._order.append(key)
                self._cond.notify()

    def holds(self, key: Hashable) -> bool:
        """Whether the key is waiting, being processed, or waiting for a retry."""
        with self._cond:
            return key in self._waiting or key in self._active or key in self._failures

    def __len__(self) -> int:
        with self._cond:
            return len(self._waiting) + len(self._active)

    def _retry_later(self, key: Hashable, item: Item) -> tuple[float, int]:
        with self._cond:  # ``holds`` reads the failures under the same lock
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        delay = min(self._max, self._base * 2 ** (failures - 1))
        timer = threading.Timer(
            delay,
            self.add,
            args=(key,),
            kwargs={"provision": item.provision, "trigger": item.trigger},
        )
        timer.daemon = True
        timer.start()
        return delay, failures

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._order:
                    self._cond.wait()
                key = self._order.popleft()
                item = self._waiting.pop(key)
                self._active.add(key)
            try:
                if self._process(key, item):
                    delay, failures = self._retry_later(key, item)
                    log.info("retrying %s in %.0f s (attempt %d)", key, delay, failures)
                else:
                    with self._cond:
                        self._failures.pop(key, None)
            except Exception:
                delay, failures = self._retry_later(key, item)
                log.exception(
                    "processing %s failed (attempt %d); retrying in %.0f s", key, failures, delay
                )
            finally:
                with self._cond:
                    self._active.discard(key)
                    if key in self._waiting:
                        self._order.append(key)
                        self._cond.notify()
