"""One real node beside the local control plane: containerd, kubelet, kube-scheduler,
kube-proxy and local-path-provisioner as processes, pods on a host-only bridge.

Everything it writes lives under ``<cluster>/node``, with three exceptions it records and
undoes on ``stop``: the bridge ``dmbr0`` with its address, kube-proxy's ``KUBE-*``
iptables chains, and the cgroup folders under ``/sys/fs/cgroup/*/datamesh-node``. Those
are machine-wide, so only one node runs per machine: a second cluster asking for one is
refused with the folder of the first (``NODE_LOCK``), unless the first is dead, in which
case its leftovers are cleaned up first.

Facts this design rests on (measured on the target machines, see DESIGN.md): kubelet 1.35
needs ``failCgroupV1: false`` on a cgroup v1 host; runc cannot lower a process's OOM score
without CAP_SYS_RESOURCE, so containerd must not ask it to (``restrict_oom_score_adj``);
the sandbox image must be local; pods cannot reach 127.0.0.1 on the host, so with a node
the apiserver listens on the bridge's address, which only this host and its pods share.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .common import (
    NODE_ADDRESS,
    ClusterError,
    alive,
    build_images,
    free_port,
    reap,
    spawn,
    stop_processes,
    tail,
    wait_ready,
)
from .pki import write_kubeconfig

NODE_NAME = "datamesh-node"
BRIDGE = "dmbr0"
POD_CIDR = "10.244.0.0/24"
BRIDGE_IP = NODE_ADDRESS
CNI_NETWORK = "datamesh"
CGROUP_ROOT = "datamesh-node"
CGROUP_FS = Path("/sys/fs/cgroup")
NODE_LOCK = Path("/run/datamesh-node.lock")
PROVISIONER_NAMESPACE = "local-path-storage"
STORAGE_CLASS = "standard"
# In start order; stop goes the other way.
NODE_COMPONENTS = (
    "containerd",
    "kubelet",
    "kube-scheduler",
    "kube-proxy",
    "local-path-provisioner",
)
START_TIMEOUT_S = 90.0
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
# Machine-wide settings the node's parts change (the kubelet's kernel tunables, the CNI
# bridge's forwarding): recorded before the node starts and put back when it stops.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


def _run(args: list[str], *, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, input=input, check=False)
    if check and proc.returncode != 0:
        raise ClusterError(f"{' '.join(args[:4])} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def preflight() -> str | None:
    """Why this machine cannot run the node, or None. Checked before anything starts."""
    if os.geteuid() != 0:
        return "the node needs root (it mounts, makes cgroups and a network bridge)"
    if not shutil.which("runc"):
        return "runc is not installed (apt-get install runc)"
    if not any(Path(d, "bridge").exists() for d in CNI_BIN_DIRS):
        return "the CNI plugins are not installed (apt-get install containernetworking-plugins)"
    for tool in ("iptables", "ip"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install iptables iproute2)"
    if not (CGROUP_FS / "memory").is_dir() and not (CGROUP_FS / "cgroup.controllers").exists():
        return "no cgroup hierarchy is mounted at /sys/fs/cgroup"
    try:
        unshare = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], check=False)
    except OSError as exc:
        return f"cannot create namespaces: {exc}"
    if unshare.returncode != 0:
        return "this machine does not allow new mount and PID namespaces (unshare failed)"
    return None


def cni_bin_dir() -> str:
    return next(d for d in CNI_BIN_DIRS if Path(d, "bridge").exists())


@dataclass
class NodeState:
    """The node's part of ``state.json``."""

    bin_dir: str
    kubelet_port: int = 0
    kubelet_healthz_port: int = 0
    scheduler_port: int = 0
    proxy_healthz_port: int = 0
    proxy_metrics_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    # What existed before the node started, so that stop removes only what it made.
    created_paths: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    # The image archives (name: image id) the runtime holds, to import only what changed.
    images: dict[str, str] = field(default_factory=dict)
    # Each process's arguments, so that one can be restarted as it was (fault tests).
    args: dict[str, list[str]] = field(default_factory=dict)


class Node:
    """The node of the cluster in ``cluster_dir``; ``start`` and ``stop`` as the control plane."""

    def __init__(self, cluster_dir: Path, pki: Path, *, die_with_parent: bool = False) -> None:
        self.cluster_dir = cluster_dir
        self.dir = cluster_dir / "node"
        self.pki = pki
        self.logs = cluster_dir / "logs"
        self.die_with_parent = die_with_parent
        self.containerd_dir = self.dir / "containerd"
        self.socket = self.containerd_dir / "containerd.sock"

    # -- the machine-wide lock ---------------------------------------------------------------

    def claim(self) -> None:
        """Take the machine's one node slot, or say which cluster holds it."""
        if NODE_LOCK.exists():
            owner = NODE_LOCK.read_text().strip()
            if owner != str(self.cluster_dir):
                other = Node(Path(owner), Path(owner) / "pki")
                if other._any_alive():
                    raise ClusterError(
                        f"another local cluster already runs the machine's node ({owner}); "
                        "one node per machine (the bridge, iptables chains and cgroups are "
                        "machine-wide). Stop it with `make cluster-down CLUSTER_DIR="
                        f"{owner}`, or start this cluster without a node (NODE=0)."
                    )
                other.cleanup()
        NODE_LOCK.write_text(f"{self.cluster_dir}\n")

    def holds_slot(self) -> bool:
        """Whether the machine-wide parts are this cluster's to remove: it holds the node
        slot, or nobody does, or the holder's processes are all gone."""
        if not NODE_LOCK.exists():
            return True
        owner = NODE_LOCK.read_text().strip()
        if owner == str(self.cluster_dir):
            return True
        return not Node(Path(owner), Path(owner) / "pki")._any_alive()

    def _any_alive(self) -> bool:
        state = self._load()
        return bool(state) and any(alive(pid) for pid in state.pids.values())

    def _load(self) -> NodeState | None:
        path = self.cluster_dir / "state.json"
        try:
            data = json.loads(path.read_text()).get("node")
        except (OSError, ValueError):
            return None
        return NodeState(**data) if data else None

    # -- network ------------------------------------------------------------------------------

    def prepare_network(self) -> None:
        """The bridge and its address, before the apiserver (which listens on it) starts."""
        links = _run(["ip", "-o", "link", "show"])
        if f" {BRIDGE}:" not in links:
            _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        addrs = _run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE])
        if f" {BRIDGE_IP}/" not in addrs:
            _run(["ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])

    # -- configuration ------------------------------------------------------------------------

    def _write_configs(
        self, state: NodeState, server: str, sandbox_image: str, helper_image: str
    ) -> None:
        d = self.dir
        for sub in ("cni/net.d", "cni/ipam", "cni/cache", "kubelet", "pod-logs", "volumes", "runc"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.containerd_dir.mkdir(parents=True, exist_ok=True)
        (d / "cni/net.d/10-datamesh.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": CNI_NETWORK,
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "isDefaultGateway": True,
                            # Pods talk to the host (apiserver, warehouse), never beyond
                            # it: no masquerading rules in the host's NAT table.
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR, "gateway": BRIDGE_IP}]],
                                "dataDir": str(d / "cni/ipam"),
                            },
                        },
                        {"type": "loopback"},
                    ],
                },
                indent=2,
            )
        )
        _write_containerd_config(
            self.containerd_dir / "config.toml",
            root=self.containerd_dir / "root",
            state=self.containerd_dir / "state",
            socket=self.socket,
            sandbox_image=sandbox_image,
            node_dir=d,
        )
        (d / "kubelet/config.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    # Facts of the target machines: cgroup v1, no systemd, swap allowed,
                    # and the host's iptables are not the kubelet's to manage.
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{CGROUP_ROOT}",
                    "failSwapOn": False,
                    "makeIPTablesUtilChains": False,
                    "address": BRIDGE_IP,
                    "port": state.kubelet_port,
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": state.kubelet_healthz_port,
                    "tlsCertFile": str(self.pki / "kubelet-serving.crt"),
                    "tlsPrivateKeyFile": str(self.pki / "kubelet-serving.key"),
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(self.pki / "ca.crt")},
                    },
                    "authorization": {"mode": "Webhook"},
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    "podLogsDir": str(d / "pod-logs"),
                    "resolvConf": "/etc/resolv.conf",
                    "serializeImagePulls": False,
                    # A shared development disk: never evict pods for it, never delete
                    # the locally built images (nothing could pull them back).
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                    },
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "localStorageCapacityIsolation": False,
                    "enforceNodeAllocatable": ["pods"],
                    "maxPods": 110,
                    "nodeStatusReportFrequency": "10s",
                    "shutdownGracePeriod": "0s",
                },
                indent=2,
            )
        )
        (d / "kube-proxy.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "bindAddress": BRIDGE_IP,
                    "healthzBindAddress": f"127.0.0.1:{state.proxy_healthz_port}",
                    "metricsBindAddress": f"127.0.0.1:{state.proxy_metrics_port}",
                    "clientConnection": {"kubeconfig": str(self.dir / "kube-proxy.kubeconfig")},
                    # Leave the machine's sysctls alone: no conntrack table resize, no
                    # route_localnet for node ports on 127.0.0.1.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                    "iptables": {"localhostNodePorts": False},
                },
                indent=2,
            )
        )
        (d / "local-path-config.json").write_text(
            json.dumps(
                {
                    "nodePathMap": [
                        {
                            "node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                            "paths": [str(d / "volumes")],
                        }
                    ]
                },
                indent=2,
            )
        )
        (d / "helper-pod.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "helper-pod"},
                    "spec": {
                        # It makes and removes the volume folders, owned by root.
                        "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                        "containers": [
                            {
                                "name": "helper-pod",
                                "image": helper_image,
                                "imagePullPolicy": "Never",
                            }
                        ],
                    },
                }
            )
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def start(
        self,
        *,
        bin_dir: Path,
        server: str,
        kubectl: Callable[..., str],
        archives: Path,
        images: dict[str, str],
        save: Callable[[NodeState], None],
    ) -> NodeState:
        """Start every node process, import the images and wait until the node is Ready."""
        state = NodeState(
            bin_dir=str(bin_dir),
            kubelet_port=free_port(),
            kubelet_healthz_port=free_port(),
            scheduler_port=free_port(),
            proxy_healthz_port=free_port(),
            proxy_metrics_port=free_port(),
        )
        for path in ("/var/lib/kubelet", "/var/log/containers", "/var/lib/cni", "/run/containerd"):
            if not Path(path).exists():
                state.created_paths.append(path)
        for key in SYSCTLS:
            with contextlib.suppress(OSError):
                state.sysctls[key] = Path("/proc/sys", key).read_text().strip()
        save(state)
        self._write_configs(state, server, images["pause"], images["helper"])
        for user in ("kubelet", "scheduler", "kube-proxy", "provisioner"):
            write_kubeconfig(self.dir / f"{user}.kubeconfig", server, self.pki, user)
        started = time.monotonic()
        store = self._image_store(state, archives, images["pause"])
        # The images come as hard links to the shared store (never written in place by
        # containerd); only the metadata database is this node's own copy.
        shutil.rmtree(self.containerd_dir / "root", ignore_errors=True)
        _run(["cp", "-al", str(store), str(self.containerd_dir / "root")])
        meta = self.containerd_dir / "root" / "io.containerd.metadata.v1.bolt" / "meta.db"
        meta.unlink()
        shutil.copy2(store / "io.containerd.metadata.v1.bolt" / "meta.db", meta)
        self._spawn(state, save, "containerd", [f"--config={self.containerd_dir / 'config.toml'}"])
        self._wait(state, "containerd", lambda: self._ctr("version", check=False) is not None)
        state.images = _archive_ids(archives)
        save(state)
        _log(f"containerd up with the local images ({time.monotonic() - started:.1f} s)")
        _make_cgroup_root()
        self._spawn(
            state,
            save,
            "kubelet",
            [
                f"--config={self.dir / 'kubelet/config.yaml'}",
                f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
                f"--root-dir={self.dir / 'kubelet'}",
                f"--cert-dir={self.dir / 'kubelet/pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={BRIDGE_IP}",
                "--v=1",
            ],
        )
        kubeconfig = self.dir / "scheduler.kubeconfig"
        self._spawn(
            state,
            save,
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.scheduler_port}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        self._spawn(
            state, save, "kube-proxy", [f"--config={self.dir / 'kube-proxy.yaml'}", "--v=1"]
        )
        self._setup_cluster_objects(kubectl)
        self._spawn(
            state,
            save,
            "local-path-provisioner",
            [
                "start",
                f"--config={self.dir / 'local-path-config.json'}",
                f"--kubeconfig={self.dir / 'provisioner.kubeconfig'}",
                f"--namespace={PROVISIONER_NAMESPACE}",
                "--provisioner-name=rancher.io/local-path",
                f"--helper-image={images['helper']}",
                f"--helper-pod-file={self.dir / 'helper-pod.yaml'}",
                "--service-account-name=local-path-provisioner",
            ],
        )
        self._wait(state, "kubelet", lambda: self._node_ready(kubectl))
        _log(f"node {NODE_NAME} Ready ({time.monotonic() - started:.1f} s)")
        return state

    def _image_store(self, state: NodeState, archives: Path, sandbox_image: str) -> Path:
        """A containerd root holding the local images, made once per set of image
        archives and shared by every node: importing them takes 25 s, linking 1 s."""
        found = sorted(archives.glob("*.tar")) if archives.is_dir() else []
        if not found:
            _log(f"no images in {archives} yet: building them (make images)")
            archives = build_images()
            found = sorted(archives.glob("*.tar"))
        digest = hashlib.sha256()
        for archive in found:
            stat = archive.stat()
            digest.update(f"{archive.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        store = archives.parent / f"containerd-root-{digest.hexdigest()[:16]}"
        if (store / ".complete").exists():
            return store
        _log(f"importing {len(found)} images into a new image store (once per image set)")
        for old in archives.parent.glob("containerd-root-*"):
            shutil.rmtree(old, ignore_errors=True)
        work = self.containerd_dir / "import"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        socket = work / "c.sock"
        _write_containerd_config(
            work / "config.toml",
            root=store,
            state=work / "state",
            socket=socket,
            sandbox_image=sandbox_image,
            node_dir=self.dir,
        )
        env = dict(os.environ, PATH=f"{state.bin_dir}:{os.environ.get('PATH', '')}")
        log = (self.logs / "containerd-import.log").open("ab")
        proc = subprocess.Popen(
            [str(Path(state.bin_dir) / "containerd"), f"--config={work / 'config.toml'}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        try:
            deadline = time.monotonic() + 30
            while self._ctr("version", check=False, socket=socket) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ClusterError(
                        "containerd did not start to import the images; its log:\n"
                        + tail(self.logs / "containerd-import.log")
                    )
                time.sleep(0.1)
            for archive in found:
                self._ctr("images", "import", "--local", str(archive), socket=socket)
        except BaseException:
            shutil.rmtree(store, ignore_errors=True)
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            _unmount_under(work)
            shutil.rmtree(work, ignore_errors=True)
        (store / ".complete").touch()
        return store

    def sync_images(self, archives: Path, save: Callable[[NodeState], None]) -> list[str]:
        """Import into the running node the images rebuilt since it started."""
        state = self._load()
        if state is None:
            return []
        changed = [
            name
            for name, image_id in _archive_ids(archives).items()
            if state.images.get(name) != image_id
        ]
        for name in changed:
            self._ctr("images", "import", "--local", str(archives / f"{name}.tar"))
            _log(f"image {name} re-imported")
        if changed:
            state.images = _archive_ids(archives)
            save(state)
        return changed

    def _ctr(self, *args: str, check: bool = True, socket: Path | None = None) -> str | None:
        binary = str(Path(self._bin_dir()) / "ctr")
        proc = subprocess.run(
            [binary, f"--address={socket or self.socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            if check:
                raise ClusterError(f"ctr {' '.join(args[:2])} failed: {proc.stderr.strip()}")
            return None
        return proc.stdout

    def _bin_dir(self) -> str:
        state = self._load()
        if state is None:
            raise ClusterError(f"no node state in {self.cluster_dir}")
        return state.bin_dir

    def _setup_cluster_objects(self, kubectl: Callable[..., str]) -> None:
        """RBAC for the apiserver's kubelet client and the provisioner, and the default
        StorageClass, applied with the admin credentials."""
        manifests = [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "datamesh-local:apiserver-kubelet-client"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:kubelet-api-admin",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": "kube-apiserver-kubelet-client",
                    }
                ],
            },
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROVISIONER_NAMESPACE}},
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "local-path-provisioner", "namespace": PROVISIONER_NAMESPACE},
            },
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "local-path-config", "namespace": PROVISIONER_NAMESPACE},
                "data": {
                    "config.json": (self.dir / "local-path-config.json").read_text(),
                    "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
                    "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
                    "helperPod.yaml": (self.dir / "helper-pod.yaml").read_text(),
                },
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "datamesh-local:local-path-provisioner"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods/log"],
                        "verbs": ["get", "list", "watch"],
                    },
                    {
                        "apiGroups": [""],
                        "resources": ["persistentvolumes", "pods"],
                        "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                    },
                    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
                    {
                        "apiGroups": ["storage.k8s.io"],
                        "resources": ["storageclasses"],
                        "verbs": ["get", "list", "watch"],
                    },
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "resources": ["leases"],
                        "verbs": ["get", "list", "watch", "create", "update", "patch"],
                    },
                    {
                        "apiGroups": [""],
                        "resources": ["endpoints"],
                        "verbs": ["get", "list", "watch", "create", "update", "patch"],
                    },
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "datamesh-local:local-path-provisioner"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "datamesh-local:local-path-provisioner",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": "system:local-path-provisioner",
                    }
                ],
            },
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "rancher.io/local-path",
                # local volumes live on one node: bind when the first pod is scheduled.
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Delete",
            },
        ]
        kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
        )

    def _node_ready(self, kubectl: Callable[..., str]) -> bool:
        try:
            out = kubectl(
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
        except ClusterError:
            return False
        return out.strip() == "True"

    def _spawn(
        self, state: NodeState, save: Callable[[NodeState], None], name: str, args: list[str]
    ) -> None:
        binary = Path(state.bin_dir) / name
        if not binary.exists():
            raise ClusterError(f"{binary} is missing; run hack/build-node.sh")
        env = dict(os.environ)
        # containerd finds its runc shim on PATH.
        env["PATH"] = f"{state.bin_dir}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        state.pids[name] = spawn(
            [str(binary), *args],
            self.logs / f"{name}.log",
            env=env,
            cwd=self.dir,
            with_parent=self.die_with_parent,
        )
        state.args[name] = args
        save(state)

    def restart(self, name: str, save: Callable[[NodeState], None]) -> None:
        """Kill one node process (as a crash would) and start it again with its arguments;
        the fault tests restart the kubelet mid-run this way."""
        state = self._load()
        if state is None or name not in state.args:
            raise ClusterError(f"no node process {name} in {self.cluster_dir}")
        stop_processes([state.pids[name]], sig=signal.SIGKILL)
        self._spawn(state, save, name, state.args[name])

    def _wait(self, state: NodeState, name: str, ready: Callable[[], bool]) -> None:
        wait_ready(name, dict(state.pids), self.logs, ready, START_TIMEOUT_S)

    def health(self) -> dict[str, str]:
        state = self._load()
        out = {}
        for name in NODE_COMPONENTS:
            pid = state.pids.get(name, 0) if state else 0
            out[name] = f"running (pid {pid})" if pid and alive(pid) else "stopped"
        return out

    # -- teardown -----------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop the node's processes and remove every trace of it; safe to repeat."""
        state = self._load()
        stopped = []
        if state:
            # Everything the node held is deleted below, so there is nothing to shut
            # down gracefully: kill at once (a kubelet given SIGTERM drains for seconds).
            stopped = [n for n in reversed(NODE_COMPONENTS) if alive(state.pids.get(n, 0) or 0)]
            stop_processes(
                [state.pids[n] for n in reversed(NODE_COMPONENTS) if state.pids.get(n)],
                sig=signal.SIGKILL,
            )
        self.cleanup(state)
        return stopped

    def cleanup(self, state: NodeState | None = None) -> None:
        """Kill what the node left running (shims, containers), unmount, remove cgroups,
        the bridge and kube-proxy's chains. Each step works from what is on the machine,
        so it also cleans up after a node that crashed."""
        state = state or self._load()
        if not self.holds_slot():
            # Another live cluster runs the machine's node: the bridge, chains, cgroups
            # and settings are its own. Only this cluster's folder is ours to remove.
            _unmount_under(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        self._kill_leftovers()
        _unmount_under(self.dir)
        _remove_cgroups()
        if _link_exists(BRIDGE):
            _run(["ip", "link", "delete", BRIDGE], check=False)
        _remove_kube_proxy_chains()
        for path in state.created_paths if state else []:
            _remove_created(Path(path), self.dir)
        for key, value in (state.sysctls if state else {}).items():
            with contextlib.suppress(OSError):
                knob = Path("/proc/sys", key)
                if knob.read_text().strip() != value:
                    knob.write_text(value)
        if NODE_LOCK.exists() and NODE_LOCK.read_text().strip() == str(self.cluster_dir):
            NODE_LOCK.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Shims (started by containerd, outliving it by design) and every process in the
        node's cgroups."""
        for _ in range(3):
            pids = set(_cgroup_pids()) | set(_shim_pids(self.socket))
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while any(alive(p) for p in pids) and time.monotonic() < deadline:
                for p in pids:
                    reap(p)
                time.sleep(0.05)


def _write_containerd_config(
    path: Path, *, root: Path, state: Path, socket: Path, sandbox_image: str, node_dir: Path
) -> None:
    """containerd's configuration: every path under the node's folder (or the shared
    image store), and the CRI settings this machine kind needs."""
    path.write_text(
        f"""version = 3
root = "{root}"
state = "{state}"
# Plugins that would write outside this folder or that the node does not use.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.differ.v1.erofs",
  "io.containerd.mount-handler.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{sandbox_image}"

[plugins.'io.containerd.cri.v1.runtime']
  # runc cannot lower a process's OOM score without CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = "{shutil.which("runc")}"
    Root = "{node_dir / "runc"}"
    SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cni_bin_dir()}"]
    conf_dir = "{node_dir / "cni/net.d"}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
    )


def _archive_ids(archives: Path) -> dict[str, str]:
    """Image id of each archive ``hack/images.sh`` wrote (``<name>.tar.id``)."""
    return {
        p.name.removesuffix(".tar.id"): p.read_text().strip()
        for p in sorted(archives.glob("*.tar.id"))
    }


def _log(message: str) -> None:
    print(f"[node] {message}", file=sys.stderr, flush=True)


def _shim_pids(socket: Path) -> Iterable[int]:
    """containerd-shim-runc-v2 processes started by this node's containerd."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            cmdline
            and cmdline[0].endswith(b"containerd-shim-runc-v2")
            and str(socket).encode() in b" ".join(cmdline)
        ):
            yield int(proc.name)


def _cgroup_dirs() -> list[Path]:
    """Every cgroup folder of the node, deepest first, in every mounted hierarchy."""
    found: list[Path] = []
    if not CGROUP_FS.is_dir():
        return found
    roots = [CGROUP_FS / CGROUP_ROOT] + [h / CGROUP_ROOT for h in CGROUP_FS.iterdir() if h.is_dir()]
    for root in roots:
        if root.is_dir():
            found.extend(p for p in root.rglob("*") if p.is_dir())
            found.append(root)
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def _make_cgroup_root() -> None:
    """The kubelet's cgroup root, in every v1 hierarchy (it refuses to start without)."""
    for hierarchy in CGROUP_FS.iterdir():
        if not hierarchy.is_dir() or not (hierarchy / "cgroup.procs").exists():
            continue
        root = hierarchy / CGROUP_ROOT
        root.mkdir(exist_ok=True)
        # A new v1 cpuset cgroup starts with no CPUs and no memory nodes.
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (root / knob).exists() and not (root / knob).read_text().strip():
                (root / knob).write_text((hierarchy / knob).read_text())


def _cgroup_pids() -> Iterable[int]:
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError, ValueError):
            yield from (int(x) for x in (d / "cgroup.procs").read_text().split())


def _remove_cgroups() -> None:
    for d in _cgroup_dirs():
        with contextlib.suppress(OSError):
            d.rmdir()


def _mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        out.append(line.split()[4].replace("\\040", " "))
    return out


def _unmount_under(folder: Path) -> None:
    """Unmount everything under ``folder``, deepest first (lazy, so busy mounts go too)."""
    prefix = str(folder.resolve()) + "/"
    for _ in range(5):
        targets = sorted((m for m in _mounts() if m.startswith(prefix)), key=len, reverse=True)
        if not targets:
            return
        for target in targets:
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def _link_exists(name: str) -> bool:
    return (
        subprocess.run(["ip", "link", "show", name], capture_output=True, check=False).returncode
        == 0
    )


def _remove_kube_proxy_chains() -> None:
    """kube-proxy's own chains and the jumps into them, in the filter and nat tables."""
    for table in ("filter", "nat", "mangle"):
        rules = _run(["iptables", "-t", table, "-S"], check=False).splitlines()
        for rule in rules:
            words = shlex.split(rule)
            if words[:1] == ["-A"] and "KUBE-" in rule and not words[1].startswith("KUBE-"):
                _run(["iptables", "-t", table, "-D", *words[1:]], check=False)
        chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
        for chain in chains:
            _run(["iptables", "-t", table, "-F", chain], check=False)
        for chain in chains:
            _run(["iptables", "-t", table, "-X", chain], check=False)


def _remove_created(path: Path, node_dir: Path) -> None:
    """A machine folder the node created: its contents are the node's (kubelet's device
    plugin socket folder, the container log links), so remove it whole."""
    with contextlib.suppress(OSError):
        _unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
