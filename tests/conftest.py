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
