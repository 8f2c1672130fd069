"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

The same idea as controller-runtime's envtest: real binaries (built from the Kubernetes Go
modules by ``hack/build-control-plane.sh``), generated certificates, free ports, and a
kubeconfig of its own. It never reads or writes ``~/.kube/config``.

Used two ways:

* ``PYTHONPATH=hack python -m localcluster up|down|status|build [--dir DIR]`` from the
  Makefile; the processes outlive the command and ``down`` stops them (safe to run twice).
* ``import localcluster`` (with ``hack`` on ``sys.path``) from the pytest session fixture
  and the benchmarks: ``running_cluster`` starts a cluster whose processes also die with
  the calling process (``PR_SET_PDEATHSIG``), so a killed run leaves nothing behind.

Standard library only: the Makefile runs it with the system Python, before any virtualenv.
"""

from __future__ import annotations

from .common import (
    LOG_TAIL_LINES,
    ROOT,
    ClusterError,
    alive,
    build_binaries,
    build_images,
    build_node_binaries,
    cache_dir,
    die_with_parent,
    free_port,
    image_names,
    tail,
)
from .controlplane import (
    COMPONENTS,
    START_TIMEOUT_S,
    ClusterState,
    LocalCluster,
    running_cluster,
)
from .pki import generate_pki, write_kubeconfig

__all__ = [
    "COMPONENTS",
    "LOG_TAIL_LINES",
    "ROOT",
    "START_TIMEOUT_S",
    "ClusterError",
    "ClusterState",
    "LocalCluster",
    "alive",
    "build_binaries",
    "build_images",
    "build_node_binaries",
    "cache_dir",
    "die_with_parent",
    "free_port",
    "generate_pki",
    "image_names",
    "running_cluster",
    "tail",
    "write_kubeconfig",
]
