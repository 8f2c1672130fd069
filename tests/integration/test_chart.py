"""The Helm chart: lint, render, dry-run, install, and the operator running with the
chart's own ServiceAccount credentials (which proves its RBAC is enough)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cluster, Operator, localcluster
from tests.factories import ROOT
from tests.integration.test_api import apply_live

CHART = ROOT / "charts" / "datamesh-operator"
RELEASE = "mesh"
NAMESPACE = "datamesh-system"
SERVICE_ACCOUNT = "mesh-datamesh-operator"


def helm_binary() -> str:
    return str(localcluster.build_binaries() / "helm")


def helm(
    cluster: Cluster | None,
    *args: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    cmd = [helm_binary(), *args]
    if cluster is not None:
        cmd.append(f"--kubeconfig={cluster.kubeconfig}")
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(ROOT / ".cache"),
            "HELM_CACHE_HOME": str(ROOT / ".cache" / "helm"),
            "HELM_CONFIG_HOME": str(ROOT / ".cache" / "helm"),
            "HELM_DATA_HOME": str(ROOT / ".cache" / "helm"),
        },
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}:\n{proc.stderr}{proc.stdout}")
    return proc


def rendered(*values: str) -> list[dict[str, Any]]:
    out = helm(
        None,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        "1.35.0",
        *values,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_helm_lint_passes() -> None:
    proc = helm(None, "lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (["--set", "operator.workers=0"], "workers"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "platformNamespace=Not_Valid"], "platformNamespace"),
        (["--set", "unknownKey=1"], "unknownKey"),
    ],
)
def test_values_that_break_the_schema_fail_lint_clearly(values: list[str], fragment: str) -> None:
    proc = helm(None, "lint", str(CHART), *values, check=False)
    assert proc.returncode != 0
    assert fragment in proc.stdout + proc.stderr


def test_rbac_grants_no_secrets_and_no_wildcards() -> None:
    role = next(d for d in rendered() if d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "*" not in rule.get("apiGroups", [])
        assert "secrets" not in rule["resources"], rule


@pytest.mark.parametrize(
    ("enabled", "verbs"),
    [("false", ["list", "delete"]), ("true", ["list", "delete", "create", "update"])],
)
def test_admission_rights_and_setting_follow_the_value(enabled: str, verbs: list[str]) -> None:
    docs = rendered("--set", f"admission.enabled={enabled}")
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    (rule,) = [r for r in role["rules"] if r["apiGroups"] == ["admissionregistration.k8s.io"]]
    assert rule["resources"] == [
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ]
    assert rule["verbs"] == verbs
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {
        e["name"]: e["value"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DATAMESH_ADMISSION"] == enabled


def test_deployment_is_restricted_single_replica_recreate() -> None:
    deployment = next(d for d in rendered() if d["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]


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
    crds.kubectl("create", "namespace", NAMESPACE, check=False)
    helm(
        crds,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--skip-crds",
        "--wait=false",
    )
    yield crds
    helm(crds, "uninstall", RELEASE, "--namespace", NAMESPACE, check=False)


def service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    token = cluster.kubectl(
        "create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE, "--duration=1h"
    ).stdout.strip()
    admin = json.loads(cluster.kubectl("config", "view", "--minify", "--raw", "-o", "json").stdout)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": SERVICE_ACCOUNT}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    return path


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
