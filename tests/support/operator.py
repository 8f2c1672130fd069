"""The operator as a real process against a test cluster, on ports of its own, with its
health and metrics endpoints read over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import localcluster
from tests.support.cluster import Cluster


class Operator:
    """The operator as a real process against the test cluster (its own ports)."""

    def __init__(
        self, cluster: Cluster, log_dir: Path, kubeconfig: Path | None = None, **settings: str
    ) -> None:
        self.cluster = cluster
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.log_dir = log_dir
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = localcluster.free_port()
        self.health_port = localcluster.free_port()
        self.starts = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "DATAMESH_METRICS_PORT": str(self.metrics_port),
            "DATAMESH_HEALTH_PORT": str(self.health_port),
            "DATAMESH_BIND_ADDRESS": "127.0.0.1",
            **{f"DATAMESH_{k.upper()}": v for k, v in self.settings.items()},
        }
        env.pop("DATAMESH_TEST_KUBECONFIG", None)
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "datamesh.controller.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=localcluster.die_with_parent,
        )
        log.close()
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the operator exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the operator did not become healthy:\n{self.log_tail()}")

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return localcluster.tail(self.log_dir / f"operator-{self.starts}.log", lines)

    def metrics(self) -> dict[str, float]:
        """Sample name with labels -> value, from the Prometheus endpoint."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric_sum(self, prefix: str, **labels: str) -> float:
        total = 0.0
        for key, value in self.metrics().items():
            if key.split("{")[0] == prefix and all(f'{k}="{v}"' in key for k, v in labels.items()):
                total += value
        return total
