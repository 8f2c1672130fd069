"""Shared fixtures. Tests are marked by tier from their folder, so `-m` selects tiers.

The classes the fixtures build live in tests/support (cluster.py, operator.py)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import localcluster
from datamesh.api.constants import DOMAIN_LABEL
from tests.support import ROOT
from tests.support.cluster import Cluster
from tests.support.operator import Operator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


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
    """A fresh domain namespace per test (labelled for the domain of its own name),
    deleted afterwards (without waiting for it to go)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"{DOMAIN_LABEL}={name}")
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


@pytest.fixture(scope="module")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """A running operator for the module's tests (resync every 2 s, to exercise it)."""
    op = Operator(crds, tmp_path_factory.mktemp("operator"), resync_seconds="2")
    op.start()
    try:
        yield op
    finally:
        op.stop()
