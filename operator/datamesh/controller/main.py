"""`datamesh-operator`: read settings once, start the endpoints, hand over to kopf."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import time
import tracemalloc
from typing import Any, cast

import kopf

from datamesh.controller import handlers, metrics
from datamesh.controller.kube import Cluster
from datamesh.controller.settings import Settings, SettingsError
from datamesh.controller.warehouses import connections


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("k8s_obj", "k8s_skip"):
            value = getattr(record, key, None)
            if isinstance(value, dict):
                out["object"] = {k: value.get(k) for k in ("kind", "namespace", "name")}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    if settings.log_level != "DEBUG":
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread its own malloc arena; with a pool of reconcile threads
    that multiplies resident memory for no gain. Two arenas keep RSS flat."""
    m_arena_max = -8
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(m_arena_max, arenas)


def memory_report_on_signal() -> None:
    """With PYTHONTRACEMALLOC set, SIGUSR2 logs the 25 largest allocation sites."""
    if not tracemalloc.is_tracing():
        return

    def report(signum: int, frame: object) -> None:
        top = tracemalloc.take_snapshot().statistics("lineno")[:25]
        logging.getLogger("datamesh.memory").warning(
            "largest allocations:\n%s", "\n".join(str(s) for s in top)
        )

    signal.signal(signal.SIGUSR2, report)


def main() -> int:
    limit_malloc_arenas()
    memory_report_on_signal()
    try:
        settings = Settings.from_env()
        warehouses = connections(settings, os.environ)
    except SettingsError as exc:
        print(f"datamesh-operator: bad setting: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    try:
        cluster = Cluster.connect(pool_size=settings.workers * 2)
    except Exception as exc:
        print(f"datamesh-operator: cannot load Kubernetes credentials: {exc}", file=sys.stderr)
        return 2
    handlers.configure(settings, cluster, warehouses)
    metrics.serve(settings.metrics_port, settings.bind_address)
    liveness = (
        f"http://{settings.bind_address}:{settings.health_port}/healthz"
        if settings.health_port
        else None
    )
    # kopf.configure() is not called: it disables loggers created before it, ours included.
    # The identity is given: kopf's default asks the password database for the user's
    # name, and the image's numeric non-root user has no entry there.
    kopf.run(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=liveness,
        # kopf types it as a NewType of str that it does not export.
        identity=cast(Any, f"{socket.gethostname()}/{os.getpid()}"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
