"""The control plane the integration and e2e tiers run against (built by the ``cluster``
fixture), with kubectl and the Python client pointed at it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import localcluster


@dataclass(frozen=True)
class Cluster:
    """A running control plane and the real clients for it."""

    kubeconfig: Path
    kubectl_path: str
    local: localcluster.LocalCluster | None  # the LocalCluster when this run started it

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        kubeconfig: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; ``timeout`` bounds the process (keep it above any --timeout given)."""
        cmd = [self.kubectl_path]
        if kubeconfig:
            cmd.append(f"--kubeconfig={self.kubeconfig}")
        proc = subprocess.run(
            [*cmd, *args], input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def api_client(self) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))
