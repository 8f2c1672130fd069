"""What every part of the local cluster shares: the repository and cache folders, the
error users see, the Go-built binaries, and the helpers for the processes it starts."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def read_state(path: Path) -> dict[str, Any] | None:
    """A component's state file, or None when there is none."""
    if not path.exists():
        return None
    return dict(json.loads(path.read_text()))


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Written whole (a crash leaves the old file or the new one) and readable by root
    only from its first byte: some hold passwords."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


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


# -- processes: one way to start, wait for and stop the platform's processes -------------


def spawn(
    argv: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    with_parent: bool = False,
    user: int | None = None,
    group: int | None = None,
) -> int:
    """Start ``argv`` in a session of its own (so a group signal reaches its children),
    appending its output to ``log``; with ``with_parent`` it dies with this process;
    ``user`` and ``group`` (ids) drop root for servers that refuse it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent if with_parent else None,
            user=user,
            group=group,
        )
    return proc.pid


def wait_ready(
    name: str,
    watched: dict[str, int],
    logs: Path,
    ready: Callable[[], bool],
    timeout: float,
) -> None:
    """Wait until ``ready()``; fail at once, with the tail of its log, when any watched
    process exits, and with ``name``'s log tail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for component, pid in watched.items():
            if not alive(pid):
                log = logs / f"{component}.log"
                raise ClusterError(
                    f"{component} exited during start-up; the last lines of its log "
                    f"({log}):\n{tail(log)}"
                )
        if ready():
            return
        time.sleep(0.2)
    log = logs / f"{name}.log"
    raise ClusterError(
        f"{name} was not ready after {timeout:.0f} s; the last lines of its log ({log}):\n"
        f"{tail(log)}"
    )


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def stop_processes(pids: list[int], *, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    """Signal each process's group (every process here leads one), wait up to ``grace``
    seconds for the groups to be gone, then SIGKILL what is left of them: children that
    outlive their leader or ignore ``sig`` are stopped too. Reaps our own children."""
    for pid in pids:
        signal_group(pid, sig)
    deadline = time.monotonic() + grace
    for pid in pids:
        while time.monotonic() < deadline and group_alive(pid):
            reap(pid)
            time.sleep(0.05)
        if group_alive(pid):
            signal_group(pid, signal.SIGKILL)
            killed = time.monotonic() + 5
            while group_alive(pid) and time.monotonic() < killed:
                reap(pid)
                time.sleep(0.02)
        reap(pid)
