"""What every part of the local cluster shares: the repository and cache folders, the
error users see, the Go-built binaries, and the helpers for the processes it starts."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 25
# The node's bridge address (pods' gateway); with a node the apiserver listens there,
# because pods cannot reach the host's 127.0.0.1.
NODE_ADDRESS = "10.244.0.1"


class ClusterError(RuntimeError):
    """Raised with a message a user can act on (what failed, and the tail of its log)."""


def cache_dir() -> Path:
    return Path(os.environ.get("DATAMESH_CACHE", ROOT / ".cache"))


def _hack_script(script: str, what: str) -> Path:
    """Run a hack/ build script (cached, so cheap when nothing changed); its last line
    of output is the folder it built into."""
    proc = subprocess.run(
        ["bash", str(ROOT / "hack" / script)], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise ClusterError(f"building {what} failed (see the messages above)")
    return Path(proc.stdout.strip().splitlines()[-1])


def build_binaries() -> Path:
    """Build (or reuse) the control plane's binaries; returns their folder."""
    return _hack_script("build-control-plane.sh", "the control plane binaries")


def build_node_binaries() -> Path:
    """Build (or reuse) the node's binaries; returns their folder."""
    return _hack_script("build-node.sh", "the node binaries")


def build_images() -> Path:
    """Build (or reuse) the local images; returns the folder of their archives."""
    return _hack_script("images.sh", "the images")


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def image_names() -> dict[str, str]:
    """The images ``hack/images.sh`` builds, by role."""
    version = project_version()
    return {
        "pause": f"localhost/datamesh/pause:{version}",
        "operator": f"localhost/datamesh/operator:{version}",
        "pipeline": f"localhost/datamesh/pipeline:{version}",
        # The provisioner's helper pods make volume folders with a shell: any image of
        # ours with /bin/sh will do.
        "helper": f"localhost/datamesh/pipeline:{version}",
    }


def free_port() -> int:
    """A port nobody listens on now; busy ports are skipped, never fatal."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the process that started us dies."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
