"""The warehouses the operator provisions tables in.

Their names come from the settings (``DATAMESH_WAREHOUSES``, the default first); each
one's admin connection and credentials key come from two environment variables that the
chart fills from the warehouse's own Secret with ``secretKeyRef``. The kubelet reads that
Secret, not the operator: its RBAC grants no read of any Secret. A chart value rather than
a cluster-scoped resource, because a resource naming a Secret would need the operator to
read whichever Secret it names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg

from datamesh.controller.settings import PREFIX, Settings, SettingsError
from datamesh.dataplane.warehouse.postgres import PostgresWarehouse

MIN_KEY_BYTES = 16


def variable(warehouse: str, what: str) -> str:
    """``DATAMESH_WAREHOUSE_<NAME>_<WHAT>`` for a warehouse name such as ``main-eu``."""
    return f"{PREFIX}WAREHOUSE_{warehouse.upper().replace('-', '_')}_{what}"


@dataclass(frozen=True)
class WarehouseConnection:
    """One warehouse: its admin connection string and the key pipeline passwords are
    derived from. Neither is ever logged (``repr`` leaves them out)."""

    name: str
    dsn: str = field(repr=False)
    credentials_key: bytes = field(repr=False)
    host: str = ""
    port: str = "5432"
    database: str = ""

    def engine(self) -> PostgresWarehouse:
        return PostgresWarehouse(self.dsn)

    def password(self, role: str) -> str:
        """A pipeline role's password: derived, so the operator can set it and write its
        Secret again at any time without ever reading either back. Rotating the key
        rotates every pipeline's password on the next provisioning pass."""
        digest = hmac.new(self.credentials_key, f"{self.name}/{role}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")

    def libpq_settings(self, role: str) -> dict[str, str]:
        """What a pipeline pod needs to connect as ``role``, under libpq's own variable
        names, so any client in any image connects with no configuration."""
        return {
            "PGHOST": self.host,
            "PGPORT": self.port,
            "PGDATABASE": self.database,
            "PGUSER": role,
            "PGPASSWORD": self.password(role),
        }


def connections(settings: Settings, env: Mapping[str, str]) -> dict[str, WarehouseConnection]:
    """Every named warehouse's connection, in the settings' order (the first is the
    default). A missing or malformed variable stops the operator with its name; the
    values never appear in a message."""
    out: dict[str, WarehouseConnection] = {}
    for name in settings.warehouse_names:
        dsn_var, key_var = variable(name, "DSN"), variable(name, "CREDENTIALS_KEY")
        missing = [v for v in (dsn_var, key_var) if not env.get(v)]
        if missing:
            raise SettingsError(
                f"warehouse {name!r} is listed in {PREFIX}WAREHOUSES but "
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
                "(the chart sets them from the warehouse's Secret)"
            )
        try:
            parts = psycopg.conninfo.conninfo_to_dict(env[dsn_var])
        except psycopg.ProgrammingError:
            raise SettingsError(f"{dsn_var} is not a PostgreSQL connection string") from None
        if not parts.get("host") or not parts.get("dbname"):
            raise SettingsError(f"{dsn_var} must name a host and a dbname")
        key = env[key_var].encode()
        if len(key) < MIN_KEY_BYTES:
            raise SettingsError(f"{key_var} must be at least {MIN_KEY_BYTES} bytes")
        out[name] = WarehouseConnection(
            name=name,
            dsn=env[dsn_var],
            credentials_key=key,
            host=str(parts["host"]),
            port=str(parts.get("port") or "5432"),
            database=str(parts["dbname"]),
        )
    listed = {variable(n, w) for n in out for w in ("DSN", "CREDENTIALS_KEY")}
    stray = sorted(
        k
        for k in env
        if k.startswith(f"{PREFIX}WAREHOUSE_")
        and k not in listed
        and k != (f"{PREFIX}WAREHOUSE_DRIFT_SECONDS")
    )
    if stray:
        raise SettingsError(
            f"{', '.join(stray)} set for a warehouse not listed in {PREFIX}WAREHOUSES "
            f"({settings.warehouses or 'empty'})"
        )
    return out
