"""The control plane: etcd, kube-apiserver and kube-controller-manager on loopback, in
one folder with its state file, certificates and logs."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .argocd import ArgoCD
from .common import (
    NODE_ADDRESS,
    ClusterError,
    alive,
    build_binaries,
    build_node_binaries,
    cache_dir,
    free_port,
    image_names,
    spawn,
    stop_processes,
    wait_ready,
)
from .node import NODE_NAME, Node, NodeState, preflight
from .pki import generate_node_pki, generate_pki, write_kubeconfig
from .warehouse import Warehouse

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")
START_TIMEOUT_S = 60.0


@dataclass
class ClusterState:
    """What ``up`` leaves in ``state.json`` so that ``down`` and ``status`` can find it."""

    dir: str
    bin_dir: str
    etcd_port: int = 0
    etcd_peer_port: int = 0
    apiserver_port: int = 0
    controller_manager_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    # The address the apiserver listens on: loopback, or the node's bridge with a node.
    host: str = "127.0.0.1"
    node: dict[str, object] | None = None

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return Path(self.dir) / "kubeconfig"


class LocalCluster:
    """One control plane in one folder. ``start`` is idempotent; ``stop`` is safe to repeat."""

    def __init__(
        self,
        directory: Path,
        *,
        die_with_parent: bool = False,
        node: bool = False,
        warehouse: bool = False,
    ) -> None:
        self.dir = directory.resolve()
        self.die_with_parent = die_with_parent
        self.with_node = node
        self.with_warehouse = warehouse
        self.state_file = self.dir / "state.json"
        self.pki = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.node = Node(self.dir, self.pki, die_with_parent=die_with_parent)
        self.argocd = ArgoCD(self.dir, die_with_parent=die_with_parent)
        self.warehouse = Warehouse(self.dir, die_with_parent=die_with_parent)

    # -- state ---------------------------------------------------------------------------

    def load(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        return ClusterState(**json.loads(self.state_file.read_text()))

    def _save(self, state: ClusterState) -> None:
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, bin_dir: Path | None = None) -> ClusterState:
        existing = self.load()
        if existing and self.running(existing):
            if self.with_warehouse and not self.warehouse.running():
                self.warehouse.start(listen=sorted({"127.0.0.1", existing.host}))
            if existing.node:
                self.node.sync_images(
                    cache_dir() / "images" / "archives", lambda n: self._save_node(existing, n)
                )
            return existing
        if existing:
            self.stop()
        if self.with_node:
            refused = preflight()
            if refused:
                raise ClusterError(
                    f"cannot run a node here: {refused}. Start without one with NODE=0."
                )
        bin_dir = bin_dir or build_binaries()
        node_bin = build_node_binaries() if self.with_node else None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        generate_pki(self.pki)
        state = ClusterState(
            dir=str(self.dir),
            bin_dir=str(bin_dir),
            etcd_port=free_port(),
            etcd_peer_port=free_port(),
            apiserver_port=free_port(),
            controller_manager_port=free_port(),
            host=NODE_ADDRESS if self.with_node else "127.0.0.1",
        )
        if self.with_node:
            generate_node_pki(self.pki, NODE_NAME)
            self.node.claim()
            self.node.prepare_network()
        write_kubeconfig(state.kubeconfig, state.server, self.pki, "admin")
        write_kubeconfig(
            self.dir / "controller-manager.kubeconfig", state.server, self.pki, "controller-manager"
        )
        self._save(state)
        try:
            started = time.monotonic()
            self._spawn(state, "etcd", self._etcd_args(state))
            self._wait(state, "etcd", lambda: self._etcd_healthy(state))
            self._spawn(state, "kube-apiserver", self._apiserver_args(state))
            self._wait(state, "kube-apiserver", lambda: self._apiserver_ready(state))
            self._spawn(state, "kube-controller-manager", self._controller_manager_args(state))
            self._wait(
                state, "kube-controller-manager", lambda: self._controller_manager_ready(state)
            )
            if node_bin is not None:
                print(
                    f"[cluster] control plane ready ({time.monotonic() - started:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                self._start_node(state, node_bin)
            if self.with_warehouse:
                # With a node, pods reach it on the bridge's address too.
                warehouse = self.warehouse.start(listen=sorted({"127.0.0.1", state.host}))
                print(
                    f"[cluster] warehouse: PostgreSQL on port {warehouse.port} "
                    f"(admin connection in {self.warehouse.state_file})",
                    file=sys.stderr,
                    flush=True,
                )
        except BaseException:
            self.stop()
            raise
        return state

    def restart_node_component(self, name: str) -> None:
        """Kill one node process and start it again (fault tests)."""
        state = self._require_state()
        self.node.restart(name, lambda n: self._save_node(state, n))

    def _save_node(self, state: ClusterState, node: NodeState) -> None:
        state.node = asdict(node)
        self._save(state)

    def _start_node(self, state: ClusterState, node_bin: Path) -> None:
        def save(node: NodeState) -> None:
            self._save_node(state, node)

        self.node.start(
            bin_dir=node_bin,
            server=state.server,
            kubectl=lambda *args, **kw: self.kubectl(state, *args, **kw),
            archives=cache_dir() / "images" / "archives",
            images=image_names(),
            save=save,
        )

    def kubectl(
        self, state: ClusterState, *args: str, input: str | None = None, check: bool = True
    ) -> str:
        proc = subprocess.run(
            [str(Path(state.bin_dir) / "kubectl"), f"--kubeconfig={state.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip()}")
        return proc.stdout

    def stop(self) -> list[str]:
        """Stops every process this folder started; returns what it stopped."""
        state = self.load()
        # ArgoCD and the warehouse keep state files of their own: they are stopped even
        # when the control plane's is gone (a crash mid-start).
        stopped = []
        for addon in (self.argocd, self.warehouse):
            try:
                stopped += addon.stop()
            except (OSError, ValueError, TypeError) as exc:
                # An unreadable state file must not keep the rest running.
                print(f"[cluster] could not stop {addon.dir.name}: {exc}", file=sys.stderr)
        if state is None:
            # A node whose state file is gone is still cleaned up.
            if (self.dir / "node").exists():
                self.node.cleanup()
            return stopped
        stopped += self.node.stop() if state.node or (self.dir / "node").exists() else []
        pids = [state.pids[name] for name in reversed(COMPONENTS) if state.pids.get(name)]
        stopped += [name for name in reversed(COMPONENTS) if alive(state.pids.get(name, 0) or 0)]
        stop_processes(pids)
        self.state_file.unlink(missing_ok=True)
        # Like `kind delete cluster`: the next `up` starts from an empty store.
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        return stopped

    def running(self, state: ClusterState) -> bool:
        if self.with_node and not state.node:
            return False
        node_pids = list((state.node or {}).get("pids", {}).values())  # type: ignore[attr-defined]
        return all(alive(state.pids.get(name, 0) or 0) for name in COMPONENTS) and all(
            alive(int(pid)) for pid in node_pids
        )

    def stop_component(self, name: str) -> None:
        """Stop one component (SIGTERM, then SIGKILL after 10 s); fault tests use this."""
        state = self._require_state()
        pid = state.pids.get(name)
        if pid:
            stop_processes([pid])

    def start_component(self, name: str) -> None:
        """Start one stopped component with its old ports and wait until it is ready."""
        state = self._require_state()
        args, ready = {
            "etcd": (self._etcd_args, self._etcd_healthy),
            "kube-apiserver": (self._apiserver_args, self._apiserver_ready),
            "kube-controller-manager": (
                self._controller_manager_args,
                self._controller_manager_ready,
            ),
        }[name]
        self._spawn(state, name, args(state))
        self._wait(state, name, lambda: ready(state))

    def _require_state(self) -> ClusterState:
        state = self.load()
        if state is None:
            raise ClusterError(f"no cluster in {self.dir}")
        return state

    # -- processes -----------------------------------------------------------------------

    def _spawn(self, state: ClusterState, name: str, args: list[str]) -> None:
        binary = Path(state.bin_dir) / name
        if not binary.exists():
            raise ClusterError(f"{binary} is missing; run hack/build-control-plane.sh")
        state.pids[name] = spawn(
            [str(binary), *args], self.logs / f"{name}.log", with_parent=self.die_with_parent
        )
        self._save(state)

    def _wait(self, state: ClusterState, name: str, ready: Callable[[], bool]) -> None:
        wait_ready(name, {name: state.pids[name]}, self.logs, ready, START_TIMEOUT_S)

    def _etcd_args(self, s: ClusterState) -> list[str]:
        client = f"http://127.0.0.1:{s.etcd_port}"
        peer = f"http://127.0.0.1:{s.etcd_peer_port}"
        return [
            "--name=default",
            f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--listen-metrics-urls=",
            # A throw-away development store: durability is not what we test here.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_args(self, s: ClusterState) -> list[str]:
        pki = self.pki
        node = []
        if s.host != "127.0.0.1":
            node = [
                # The `kubernetes` Service gets the apiserver's address as its endpoint,
                # which kube-proxy routes pods to.
                "--endpoint-reconciler-type=lease",
                # `kubectl logs` and `kubectl exec` go through the kubelet.
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
            ]
        return [
            f"--etcd-servers=http://127.0.0.1:{s.etcd_port}",
            f"--bind-address={s.host}",
            f"--advertise-address={s.host}",
            f"--secure-port={s.apiserver_port}",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            # The Node authorizer scopes each kubelet to its own node's objects.
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            *(node or ["--endpoint-reconciler-type=none"]),
            "--v=1",
        ]

    def _controller_manager_args(self, s: ClusterState) -> list[str]:
        kubeconfig = self.dir / "controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={s.controller_manager_port}",
            f"--cert-dir={self.dir / 'controller-manager-certs'}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            "--leader-elect=false",
            # Each controller acts as its own ServiceAccount with its bootstrap RBAC role.
            "--use-service-account-credentials=true",
            "--controllers=*",
            "--v=1",
        ]

    # -- health --------------------------------------------------------------------------

    @staticmethod
    def _get(url: str, context: ssl.SSLContext | None = None) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    def _admin_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _etcd_healthy(self, s: ClusterState) -> bool:
        return self._get(f"http://127.0.0.1:{s.etcd_port}/health")

    def _apiserver_ready(self, s: ClusterState) -> bool:
        return self._get(f"{s.server}/readyz", self._admin_ssl())

    def _controller_manager_ready(self, s: ClusterState) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # self-signed serving cert on loopback; health only
        return self._get(f"https://127.0.0.1:{s.controller_manager_port}/healthz", ctx)

    def health(self) -> dict[str, str]:
        state = self.load()
        if state is None:
            return dict.fromkeys(COMPONENTS, "not started")
        checks = {
            "etcd": lambda: self._etcd_healthy(state),
            "kube-apiserver": lambda: self._apiserver_ready(state),
            "kube-controller-manager": lambda: self._controller_manager_ready(state),
        }
        out = {}
        for name in COMPONENTS:
            pid = state.pids.get(name, 0)
            if not pid or not alive(pid):
                out[name] = "stopped"
            else:
                out[name] = f"running (pid {pid}, {'healthy' if checks[name]() else 'unhealthy'})"
        return out


@contextlib.contextmanager
def running_cluster(
    directory: Path, *, node: bool = False, warehouse: bool = False
) -> Iterator[ClusterState]:
    """Start a cluster that dies with this process, and stop it on any exit."""
    cluster = LocalCluster(directory, die_with_parent=True, node=node, warehouse=warehouse)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        cluster.stop()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
