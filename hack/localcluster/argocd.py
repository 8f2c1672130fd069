"""ArgoCD on the local cluster: Redis (Debian's package), then ArgoCD's repo server,
application controller and ApplicationSet controller as processes of one binary
(``hack/build-argocd.sh``), talking to the local apiserver through the admin kubeconfig.
Everything listens on loopback except the application controller's metrics, which
ArgoCD 3.6 binds to every address (its port is a free one, and nothing there writes).
ArgoCD's CRDs and base ConfigMaps come from the same module.

There is no ArgoCD API server or UI: Applications are read and refreshed with kubectl.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .common import (
    ROOT,
    ClusterError,
    alive,
    free_port,
    read_state,
    spawn,
    stop_processes,
    wait_ready,
    write_state,
)

NAMESPACE = "argocd"
# Start order; stopped in reverse.
COMPONENTS = (
    "redis",
    "argocd-repo-server",
    "argocd-application-controller",
    "argocd-applicationset-controller",
)
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
# How often the application controller compares every Application with git when nothing
# asked it to (a refresh annotation or a webhook); ArgoCD's default is 120 s.
DEFAULT_RESYNC_S = 30


def build_argocd() -> Path:
    """Build (or reuse) ArgoCD; returns its folder (bin/, crds/, config/)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-argocd.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError("building ArgoCD failed (see the messages above)")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class ArgoCDState:
    """What ``start`` leaves in ``argocd/state.json`` so that ``stop`` finds it."""

    dir: str
    redis_port: int = 0
    repo_server_port: int = 0
    repo_server_metrics_port: int = 0
    controller_metrics_port: int = 0
    appset_metrics_port: int = 0
    appset_probe_port: int = 0
    appset_webhook_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)


class ArgoCD:
    """ArgoCD's processes for one local cluster, in ``<cluster>/argocd``."""

    def __init__(self, cluster_dir: Path, *, die_with_parent: bool = False) -> None:
        self.dir = cluster_dir.resolve() / "argocd"
        self.state_file = self.dir / "state.json"
        self.logs = self.dir / "logs"
        self.die_with_parent = die_with_parent

    def load(self) -> ArgoCDState | None:
        state = read_state(self.state_file)
        return ArgoCDState(**state) if state is not None else None

    def _save(self, state: ArgoCDState) -> None:
        write_state(self.state_file, asdict(state))

    def running(self) -> bool:
        state = self.load()
        return bool(state) and all(
            alive(state.pids.get(name, 0) or 0)
            for name in COMPONENTS  # type: ignore[union-attr]
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(
        self,
        *,
        kubeconfig: Path,
        kubectl: Callable[..., str],
        helm_dir: Path,
        resync_seconds: int = DEFAULT_RESYNC_S,
        ports: Mapping[str, int] | None = None,
    ) -> ArgoCDState:
        """Install ArgoCD's CRDs and config into the cluster and start its processes;
        idempotent. ``helm_dir`` holds the helm binary the repo server renders charts with;
        ``ports`` fixes some ports by state field (``redis_port``), free ones otherwise."""
        redis = shutil.which("redis-server")
        if redis is None:
            raise ClusterError(
                "redis-server is not installed; ArgoCD caches in Redis. "
                "Install Debian's redis-server package."
            )
        existing = self.load()
        if existing and self.running():
            return existing
        self.stop()
        home = build_argocd()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._install(home, kubectl)
        state = ArgoCDState(
            dir=str(self.dir),
            redis_port=free_port(),
            repo_server_port=free_port(),
            repo_server_metrics_port=free_port(),
            controller_metrics_port=free_port(),
            appset_metrics_port=free_port(),
            appset_probe_port=free_port(),
            appset_webhook_port=free_port(),
        )
        for port_field, port in (ports or {}).items():
            setattr(state, port_field, port)
        self._save(state)
        env = self._env(home, helm_dir)
        # The ApplicationSet controller's client (controller-runtime) reads only this.
        env["KUBECONFIG"] = str(kubeconfig)
        redis_addr = f"127.0.0.1:{state.redis_port}"
        repo_server = f"127.0.0.1:{state.repo_server_port}"
        common = [f"--kubeconfig={kubeconfig}", f"--namespace={NAMESPACE}", "--loglevel=info"]
        try:
            self._spawn(state, "redis", [redis, *self._redis_args(state)], env)
            self._wait(state, "redis", lambda: self._redis_ready(state))
            self._spawn(
                state,
                "argocd-repo-server",
                [
                    str(home / "bin" / "argocd-repo-server"),
                    f"--port={state.repo_server_port}",
                    f"--metrics-port={state.repo_server_metrics_port}",
                    "--address=127.0.0.1",
                    "--metrics-address=127.0.0.1",
                    f"--redis={redis_addr}",
                    # How long the commit a branch points at is remembered (ArgoCD: 3 min):
                    # a commit pushed without a webhook is seen at the next resync after it.
                    f"--revision-cache-expiration={resync_seconds}s",
                    "--disable-tls",
                    "--client-ca-path=",  # its default only makes sense with TLS
                    "--loglevel=info",
                ],
                env,
            )
            self._wait(
                state,
                "argocd-repo-server",
                lambda: self._http_ok(f"http://127.0.0.1:{state.repo_server_metrics_port}/metrics"),
            )
            self._spawn(
                state,
                "argocd-application-controller",
                [
                    str(home / "bin" / "argocd-application-controller"),
                    *common,
                    f"--repo-server={repo_server}",
                    "--repo-server-plaintext",
                    f"--redis={redis_addr}",
                    f"--metrics-port={state.controller_metrics_port}",
                    f"--app-resync={resync_seconds}",
                    f"--app-resync-jitter={resync_seconds // 3}",
                    # Per-resource health in each Application's status: how a user sees
                    # which product is Degraded and why.
                    "--persist-resource-health=true",
                ],
                env,
            )
            self._wait(
                state,
                "argocd-application-controller",
                lambda: self._http_ok(f"http://127.0.0.1:{state.controller_metrics_port}/metrics"),
            )
            self._spawn(
                state,
                "argocd-applicationset-controller",
                [
                    str(home / "bin" / "argocd-applicationset-controller"),
                    *common,
                    f"--argocd-repo-server={repo_server}",
                    "--repo-server-plaintext",
                    f"--metrics-addr=127.0.0.1:{state.appset_metrics_port}",
                    f"--probe-addr=127.0.0.1:{state.appset_probe_port}",
                    f"--webhook-addr=127.0.0.1:{state.appset_webhook_port}",
                    "--enable-leader-election=false",
                ],
                env,
            )
            self._wait(
                state,
                "argocd-applicationset-controller",
                lambda: self._http_ok(f"http://127.0.0.1:{state.appset_metrics_port}/metrics"),
            )
        except BaseException:
            self.stop()
            raise
        return state

    def stop(self) -> list[str]:
        """Stop every ArgoCD process of this cluster (safe to repeat); returns their names.
        The objects stay in the cluster: they go with its store."""
        state = self.load()
        if state is None:
            return []
        stopped = [n for n in reversed(COMPONENTS) if alive(state.pids.get(n, 0) or 0)]
        stop_processes(
            [state.pids[n] for n in reversed(COMPONENTS) if state.pids.get(n)],
            grace=STOP_TIMEOUT_S,
        )
        self.state_file.unlink(missing_ok=True)
        # Git checkouts, Helm's cache, Redis's files and the demo's repository: nothing
        # worth keeping once the cluster's store is gone.
        for scratch in ("tmp", "home", "git"):
            shutil.rmtree(self.dir / scratch, ignore_errors=True)
        return stopped

    def health(self) -> dict[str, str]:
        state = self.load()
        if state is None:
            return {}
        out = {}
        for name in COMPONENTS:
            pid = state.pids.get(name, 0)
            out[name] = f"running (pid {pid})" if pid and alive(pid) else "stopped"
        return out

    # -- set-up --------------------------------------------------------------------------

    def _install(self, home: Path, kubectl: Callable[..., str]) -> None:
        """ArgoCD's CRDs and its base config; ConfigMaps that exist are left as they are,
        so settings merged into them (the health scripts) survive a restart."""
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(home / "crds"))
        self._wait_established(home / "crds", kubectl)
        kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            ),
        )
        for config in sorted((home / "config").glob("*.yaml")):
            kubectl("create", "-n", NAMESPACE, "-f", str(config), check=False)
        # ArgoCD's API server would generate the key that signs its webhooks' and tokens'
        # state; without that server, the platform does (once: a restart keeps it).
        secret = json.loads(
            kubectl("get", "secret", "argocd-secret", "-n", NAMESPACE, "-o", "json")
        )
        if "server.secretkey" not in (secret.get("data") or {}):
            key = base64.b64encode(base64.b64encode(secrets.token_bytes(32))).decode()
            kubectl(
                "patch",
                "secret",
                "argocd-secret",
                "-n",
                NAMESPACE,
                "--type=merge",
                "-p",
                json.dumps({"data": {"server.secretkey": key}}),
            )

    @staticmethod
    def _wait_established(crds: Path, kubectl: Callable[..., str]) -> None:
        """Polled rather than `kubectl wait`, which fails on a CRD that has no status yet."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            items = json.loads(kubectl("get", "-f", str(crds), "-o", "json"))["items"]
            pending = [
                crd["metadata"]["name"]
                for crd in items
                if not any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in (crd.get("status") or {}).get("conditions") or []
                )
            ]
            if items and not pending:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"ArgoCD's CRDs were not established: {pending}")
            time.sleep(0.2)

    def _env(self, home: Path, helm_dir: Path) -> dict[str, str]:
        scratch = self.dir / "tmp"
        user_home = self.dir / "home"
        for folder in (
            scratch,
            user_home,
            user_home / "gnupg",
            user_home / "ssh",
            user_home / "tls",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        (user_home / "gnupg").chmod(0o700)
        return {
            # The bin folder first: the repo server calls git-verify-wrapper.sh by name.
            "PATH": f"{home / 'bin'}:{helm_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(user_home),
            "TMPDIR": str(scratch),
            # ArgoCD treats the kubeconfig's cluster as the one it runs in
            # (https://kubernetes.default.svc in Applications).
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_GNUPGHOME": str(user_home / "gnupg"),
            "ARGOCD_SSH_DATA_PATH": str(user_home / "ssh"),
            "ARGOCD_TLS_DATA_PATH": str(user_home / "tls"),
            "HELM_CACHE_HOME": str(user_home / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(user_home / "helm" / "config"),
            "HELM_DATA_HOME": str(user_home / "helm" / "data"),
            # Never the user's git settings.
            "GIT_CONFIG_NOSYSTEM": "1",
        }

    def _redis_args(self, state: ArgoCDState) -> list[str]:
        return [
            "--port",
            str(state.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir / "home"),
            "--daemonize",
            "no",
        ]

    # -- processes -----------------------------------------------------------------------

    def _spawn(self, state: ArgoCDState, name: str, argv: list[str], env: dict[str, str]) -> None:
        state.pids[name] = spawn(
            argv, self.logs / f"{name}.log", env=env, cwd=self.dir, with_parent=self.die_with_parent
        )
        self._save(state)

    def _wait(self, state: ArgoCDState, name: str, ready: Callable[[], bool]) -> None:
        # Any of ArgoCD's processes dying fails the start, naming the one that died.
        wait_ready(name, dict(state.pids), self.logs, ready, START_TIMEOUT_S)

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    @staticmethod
    def _redis_ready(state: ArgoCDState) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", state.redis_port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
