"""Shared fixtures. Tests are marked by tier from their folder, so `-m` selects tiers."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_localcluster() -> Any:
    spec = importlib.util.spec_from_file_location("localcluster", ROOT / "hack" / "localcluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["localcluster"] = module
    spec.loader.exec_module(module)
    return module


localcluster = _load_localcluster()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class Cluster:
    """A running control plane and the real clients for it."""

    kubeconfig: Path
    kubectl_path: str
    local: Any | None  # the LocalCluster when this run started it

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        kubeconfig: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.kubectl_path]
        if kubeconfig:
            cmd.append(f"--kubeconfig={self.kubeconfig}")
        proc = subprocess.run(
            [*cmd, *args], input=input, capture_output=True, text=True, timeout=120, env=env
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def api_client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The control plane for this run: the one named by DATAMESH_TEST_KUBECONFIG, or a new
    local one that is stopped at the end of the run whatever happens (it also dies with
    this process if the run is killed)."""
    given = os.environ.get("DATAMESH_TEST_KUBECONFIG")
    if given:
        kubectl = shutil.which("kubectl") or str(localcluster.build_binaries() / "kubectl")
        yield Cluster(Path(given), kubectl, None)
        return
    directory = localcluster.cache_dir() / "test-clusters" / f"run-{os.getpid()}"
    try:
        with localcluster.running_cluster(directory) as state:
            yield Cluster(
                state.kubeconfig,
                str(Path(state.bin_dir) / "kubectl"),
                localcluster.LocalCluster(directory),
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for it to go)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """The cluster with the project's CRDs installed and established."""
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/dataproducts.datamesh.io",
        "crd/governancepolicies.datamesh.io",
    )
    return cluster


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
            preexec_fn=localcluster._die_with_parent,
        )
        log.close()
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30) -> None:
        import time
        import urllib.request

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
        import urllib.request

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


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """A running operator for the module's tests (resync every 2 s, to exercise it)."""
    op = Operator(crds, tmp_path_factory.mktemp("operator"), resync_seconds="2")
    op.start()
    try:
        yield op
    finally:
        op.stop()
