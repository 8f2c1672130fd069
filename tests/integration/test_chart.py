"""The Helm chart on a real apiserver: a server-side dry-run of what it renders, an install,
and the operator running with the chart's own ServiceAccount credentials (which proves its
RBAC is enough). Lint and rendering checks that need no cluster are in
tests/unit/release/test_chart_templates.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT
from tests.support.chart import (
    NAMESPACE,
    SERVICE_ACCOUNT,
    chart_installed,
    rendered,
    service_account_kubeconfig,
)
from tests.support.cluster import Cluster
from tests.support.live_repo import apply_live
from tests.support.operator import Operator


@pytest.mark.parametrize(
    "values",
    [
        [],
        [
            "--set",
            "operator.workers=4",
            "--set",
            "platformNamespace=platform",
            "--set",
            "serviceAccount.name=custom",
            "--set",
            "metrics.service.enabled=false",
        ],
    ],
    ids=["defaults", "custom"],
)
def test_rendered_chart_passes_server_side_dry_run(crds: Cluster, values: list[str]) -> None:
    crds.kubectl("create", "namespace", NAMESPACE, check=False)
    docs = rendered(*values)
    manifest = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    proc = crds.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest)
    assert proc.stdout.count("(server dry run)") == len(docs)


@pytest.fixture(scope="module")
def installed(crds: Cluster) -> Iterator[Cluster]:
    with chart_installed(crds):
        yield crds


def test_chart_service_account_cannot_read_secrets(installed: Cluster) -> None:
    who = f"--as=system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
    for verb, resource in [
        ("get", "secrets"),
        ("list", "secrets"),
        ("delete", "namespaces"),
        ("create", "clusterroles"),
        ("create", "validatingadmissionpolicies"),  # only with admission.enabled
    ]:
        proc = installed.kubectl("auth", "can-i", verb, resource, "-A", who, check=False)
        assert proc.stdout.strip() == "no", (verb, resource)
    proc = installed.kubectl(
        "auth", "can-i", "patch", "dataproducts.datamesh.io/status", "-A", who, check=False
    )
    assert proc.stdout.strip() == "yes"


def test_operator_reconciles_with_the_chart_service_account(
    installed: Cluster, tmp_path: Path
) -> None:
    apply_live(installed)
    kubeconfig = service_account_kubeconfig(installed, tmp_path / "sa.kubeconfig")
    operator = Operator(installed, tmp_path, kubeconfig=kubeconfig, resync_seconds="0")
    operator.start()
    try:
        deadline = time.monotonic() + 90
        phases: dict[str, str] = {}
        while time.monotonic() < deadline:
            items = json.loads(installed.kubectl("get", "dp", "-A", "-o", "json").stdout)
            phases = {
                f"{i['metadata']['namespace']}/{i['metadata']['name']}": i.get("status", {}).get(
                    "phase", ""
                )
                for i in items["items"]
            }
            live = {k: v for k, v in phases.items() if not k.startswith("t-")}
            if live and all(v == "Ready" for v in live.values()):
                break
            time.sleep(0.5)
        live = {k: v for k, v in phases.items() if not k.startswith("t-")}
        assert live and all(v == "Ready" for v in live.values()), phases
        assert operator.metric_sum("datamesh_unhandled_errors_total") == 0
        assert "Forbidden" not in operator.log_tail(400), operator.log_tail(40)
    finally:
        operator.stop()


def test_everything_argocd_syncs_applies_in_wave_order(crds: Cluster) -> None:
    """What the Applications in argocd/ render, applied wave by wave: CRDs (already
    installed), the chart, global policies, then per domain its namespace, its policies and
    its products, each with a server-side dry-run (namespaces for real: the later waves
    need them)."""
    crds.kubectl("create", "namespace", NAMESPACE, check=False)
    chart = "\n---\n".join(yaml.safe_dump(d) for d in rendered())
    crds.kubectl("apply", "--dry-run=server", "-f", "-", input=chart)
    crds.kubectl("apply", "--dry-run=server", "-f", str(ROOT / "policies" / "global"))
    for domain in sorted((ROOT / "products").iterdir()):
        crds.kubectl("apply", "-f", str(domain / "namespace.yaml"))
        policies = sorted((ROOT / "policies" / domain.name).glob("*.yaml"))
        for policy_file in policies:
            crds.kubectl("apply", "--dry-run=server", "-f", str(policy_file))
        products = [p for p in sorted(domain.glob("*.yaml")) if p.name != "namespace.yaml"]
        out = crds.kubectl("apply", "--dry-run=server", *(f"-f={p}" for p in products)).stdout
        assert out.count("(server dry run)") == len(products)
