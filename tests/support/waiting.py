"""Polling until a condition holds, for tests against a live cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    """Call ``check`` every 0.25 s until it returns something truthy, and return that;
    fail after ``timeout`` seconds, naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or check}: {last!r}")
