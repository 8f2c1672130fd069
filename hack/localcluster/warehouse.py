"""The local warehouse: PostgreSQL from Debian's packages, one server per cluster, with
password authentication on a free port.

PostgreSQL refuses to run as root, so the server runs as Debian's ``postgres`` user; its
data folder is a private folder under the system's temporary folder (the cluster's cache
folder may sit under a home only root can enter, as CI's does). The state file in the
cluster's folder records it, and ``stop`` deletes it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from .common import (
    ClusterError,
    alive,
    free_port,
    read_state,
    spawn,
    stop_processes,
    wait_ready,
    write_state,
)

ADMIN_USER = "datamesh_admin"
DATABASE = "warehouse"
SERVER_USER = "postgres"
START_TIMEOUT_S = 60.0
# Pods on the node's bridge connect from this network.
POD_NETWORK = "10.244.0.0/24"


def _server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ClusterError(
            f"the {SERVER_USER} user is missing; Debian's postgresql package creates it"
        ) from None


def postgres_bin() -> Path:
    """The newest PostgreSQL server Debian installed."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")),
        key=lambda p: int(p.parent.parent.name),
    )
    if not versions:
        raise ClusterError(
            "PostgreSQL is not installed; the local warehouse needs Debian's postgresql package"
        )
    return versions[-1].parent


@dataclass
class WarehouseState:
    data_dir: str
    port: int
    password: str
    listen: list[str]
    pid: int = 0

    def dsn(self, host: str = "127.0.0.1") -> str:
        return (
            f"postgresql://{ADMIN_USER}:{self.password}@{host}:{self.port}/{DATABASE}"
            "?sslmode=disable"
        )


class Warehouse:
    """The PostgreSQL server of one local cluster, in ``<cluster>/warehouse``."""

    def __init__(self, cluster_dir: Path, *, die_with_parent: bool = False) -> None:
        self.dir = cluster_dir.resolve() / "warehouse"
        self.state_file = self.dir / "state.json"
        self.logs = self.dir / "logs"
        self.die_with_parent = die_with_parent

    def load(self) -> WarehouseState | None:
        state = read_state(self.state_file)
        return WarehouseState(**state) if state is not None else None

    def _save(self, state: WarehouseState) -> None:
        write_state(self.state_file, asdict(state))

    def running(self) -> bool:
        state = self.load()
        return bool(state and state.pid and alive(state.pid))

    def start(self, listen: list[str] | None = None) -> WarehouseState:
        """initdb, start and create the warehouse database; idempotent. A warehouse that
        was halted (``halt``) starts again on its data and port."""
        existing = self.load()
        if existing and self.running():
            return existing
        if existing and (Path(existing.data_dir) / "data" / "PG_VERSION").exists():
            try:
                self._launch(postgres_bin(), existing)
            except BaseException:
                self.stop()
                raise
            return existing
        self.stop()
        bin_dir = postgres_bin()
        user = _server_user()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        data_root = Path(tempfile.mkdtemp(prefix="datamesh-warehouse-"))
        os.chown(data_root, user.pw_uid, user.pw_gid)
        state = WarehouseState(
            data_dir=str(data_root),
            port=free_port(),
            password=secrets.token_urlsafe(24),
            listen=listen or ["127.0.0.1"],
        )
        self._save(state)
        try:
            self._initdb(bin_dir, data_root, state, user)
            self._launch(bin_dir, state)
            self._client(bin_dir, state, "createdb", DATABASE)
            self._client(
                bin_dir,
                state,
                "psql",
                "-q",
                "-d",
                DATABASE,
                "-c",
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            )
        except BaseException:
            self.stop()
            raise
        return state

    def _launch(self, bin_dir: Path, state: WarehouseState) -> None:
        user = _server_user()
        data_root = Path(state.data_dir)
        self.logs.mkdir(parents=True, exist_ok=True)
        state.pid = spawn(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data_root / "data"),
                "-p",
                str(state.port),
                "-k",
                str(data_root),
                "-c",
                f"listen_addresses={','.join(state.listen)}",
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                # Room for every distinct statement of a 1,000-product provisioning, so
                # the counts that prove what the operator sends are never evicted.
                "-c",
                "pg_stat_statements.max=50000",
                # A throw-away development server: durability is not what we test.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            self.logs / "postgres.log",
            with_parent=self.die_with_parent,
            user=user.pw_uid,
            group=user.pw_gid,
        )
        self._save(state)
        wait_ready(
            "postgres",
            {"postgres": state.pid},
            self.logs,
            lambda: self._ready(bin_dir, state),
            START_TIMEOUT_S,
        )

    def halt(self) -> None:
        """Stop the server and keep its data (``start`` resumes it): a warehouse outage."""
        state = self.load()
        if state is not None and state.pid:
            stop_processes([state.pid], sig=signal.SIGINT)
            state.pid = 0
            self._save(state)

    def _initdb(
        self, bin_dir: Path, data_root: Path, state: WarehouseState, user: pwd.struct_passwd
    ) -> None:
        password_file = data_root / "admin-password"
        password_file.write_text(state.password + "\n")
        os.chown(password_file, user.pw_uid, user.pw_gid)
        password_file.chmod(0o600)
        proc = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_root / "data"),
                "-U",
                ADMIN_USER,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            user=user.pw_uid,
            group=user.pw_gid,
            cwd=data_root,
            check=False,
        )
        password_file.unlink()
        if proc.returncode != 0:
            raise ClusterError(f"initdb failed:\n{proc.stdout}{proc.stderr}")
        hba = ["local all all scram-sha-256"]
        hba += [f"host all all {net} scram-sha-256" for net in ("127.0.0.1/32", POD_NETWORK)]
        (data_root / "data" / "pg_hba.conf").write_text("\n".join(hba) + "\n")

    def psql(self, database: str, *args: str) -> str:
        """psql as the admin against ``database`` (stops at the first error); its output."""
        state = self.load()
        if state is None:
            raise ClusterError("the warehouse is not running")
        return self._client(
            postgres_bin(),
            state,
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            *args,
        )

    def _client(self, bin_dir: Path, state: WarehouseState, tool: str, *args: str) -> str:
        proc = subprocess.run(
            [
                str(bin_dir / tool),
                "-h",
                "127.0.0.1",
                "-p",
                str(state.port),
                "-U",
                ADMIN_USER,
                *args,
            ],
            capture_output=True,
            text=True,
            env={"PGPASSWORD": state.password, "PATH": "/usr/bin:/bin"},
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(f"{tool} {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    @staticmethod
    def _ready(bin_dir: Path, state: WarehouseState) -> bool:
        proc = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(state.port)],
            check=False,
        )
        return proc.returncode == 0

    def stop(self) -> list[str]:
        """Fast shutdown (clients are disconnected), then delete the data; safe to repeat."""
        state = self.load()
        if state is None:
            return []
        stopped = ["postgres"] if state.pid and alive(state.pid) else []
        if state.pid:
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client.
            stop_processes([state.pid], sig=signal.SIGINT)
        shutil.rmtree(state.data_dir, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        return stopped

    def health(self) -> dict[str, str]:
        state = self.load()
        if state is None:
            return {}
        running = state.pid and alive(state.pid)
        return {
            "postgres": f"running (pid {state.pid}, port {state.port})" if running else "stopped"
        }
