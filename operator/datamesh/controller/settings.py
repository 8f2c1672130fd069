"""Operator settings, read once at start-up from the environment into a typed object.

Every variable is ``DATAMESH_<FIELD>``; a bad value stops the operator before it touches
the cluster, with a message naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from datamesh.api.constants import DEFAULT_PLATFORM_NAMESPACE

PREFIX = "DATAMESH_"
NAMESPACE_NAME = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
WAREHOUSE_LIST = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(,[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*)?$"
# A warehouse's connection: secrets, so never fields of Settings (which are logged).
WAREHOUSE_SECRET_VARIABLE = re.compile(rf"^{PREFIX}WAREHOUSE_[A-Z0-9_]+_(DSN|CREDENTIALS_KEY)$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    platform_namespace: str = Field(
        DEFAULT_PLATFORM_NAMESPACE,
        description="Namespace whose policies are global.",
        json_schema_extra={"pattern": NAMESPACE_NAME},
    )
    metrics_port: int = Field(
        9090, ge=0, le=65535, description="Prometheus metrics port; 0 turns metrics off."
    )
    health_port: int = Field(
        8080, ge=0, le=65535, description="Liveness endpoint port (/healthz); 0 turns it off."
    )
    bind_address: str = Field("0.0.0.0", description="Address the endpoints listen on.")
    workers: int = Field(8, ge=1, le=256, description="Threads reconciling products at once.")
    resync_seconds: float = Field(
        300.0, ge=0, description="Re-check every product this often; 0 turns it off."
    )
    admission: bool = Field(
        False,
        description=(
            "Enforce block policies at admission with generated ValidatingAdmissionPolicies."
        ),
    )
    warehouses: str = Field(
        "",
        description=(
            "Comma-separated names of the warehouses products may use, the default first; "
            "each one's connection comes from DATAMESH_WAREHOUSE_<NAME>_DSN and "
            "DATAMESH_WAREHOUSE_<NAME>_CREDENTIALS_KEY (see warehouses). Empty: no tables "
            "are provisioned."
        ),
        json_schema_extra={"pattern": WAREHOUSE_LIST},
    )
    warehouse_drift_seconds: float = Field(
        3600.0,
        ge=0,
        description=(
            "Re-read a provisioned product's warehouse objects this often to repair drift; "
            "between these passes an unchanged product sends nothing. 0 turns it off."
        ),
    )
    log_format: Literal["json", "plain"] = Field("plain", description="Log line format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")

    @field_validator("warehouses")
    @classmethod
    def _warehouse_names(cls, value: str) -> str:
        if not re.match(WAREHOUSE_LIST, value):
            raise ValueError("must be comma-separated warehouse names (DNS labels)")
        names = value.split(",") if value else []
        if len(set(names)) != len(names):
            raise ValueError("names a warehouse twice")
        return value

    @property
    def warehouse_names(self) -> list[str]:
        return self.warehouses.split(",") if self.warehouses else []

    @field_validator("platform_namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not re.match(NAMESPACE_NAME, value):
            raise ValueError("must be a Kubernetes namespace name (DNS label)")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        known = {f"{PREFIX}{name.upper()}": name for name in cls.model_fields}
        unknown = sorted(
            k
            for k in env
            if k.startswith(PREFIX)
            and k not in known
            and k not in _OTHER_VARIABLES
            and not WAREHOUSE_SECRET_VARIABLE.match(k)
        )
        if unknown:
            raise SettingsError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = {name: env[var] for var, name in known.items() if var in env}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            var = PREFIX + str(first["loc"][0]).upper() if first["loc"] else PREFIX
            raise SettingsError(
                f"{var}={values.get(str(first['loc'][0]), '')!r}: {first['msg']}"
            ) from None


# Variables with the prefix that belong to the project's build tooling, not the operator:
# `make run` exports the build cache's location to everything it starts.
_OTHER_VARIABLES = frozenset({"DATAMESH_CACHE"})
