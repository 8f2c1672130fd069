"""What every part of the local cluster shares: the repository and cache folders, the
error users see, the Go-built binaries, and the helpers for the processes it starts."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 25


class ClusterError(RuntimeError):
    """Raised with a message a user can act on (what failed, and the tail of its log)."""


def cache_dir() -> Path:
    return Path(os.environ.get("DATAMESH_CACHE", ROOT / ".cache"))


def build_binaries() -> Path:
    """Build (or reuse) the binaries; returns their folder."""
    proc = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-control-plane.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError("building the control plane binaries failed (see the messages above)")
    return Path(proc.stdout.strip().splitlines()[-1])


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
