"""The Helm chart without a cluster: `helm lint` with the values schema, and what
`helm template` renders (RBAC, admission rights, the Deployment)."""

from __future__ import annotations

import pytest

from tests.support.chart import CHART, helm, rendered


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


WAREHOUSES = (
    "--set",
    "warehouses[0].name=main",
    "--set",
    "warehouses[0].secretName=main-warehouse",
    "--set",
    "warehouses[1].name=eu-archive",
    "--set",
    "warehouses[1].secretName=archive",
    "--set",
    "warehouses[1].dsnKey=url",
)


@pytest.mark.parametrize("values", [(), WAREHOUSES], ids=["no-warehouse", "warehouses"])
def test_rbac_reads_no_secrets_and_has_no_wildcards(values: tuple[str, ...]) -> None:
    role = next(d for d in rendered(*values) if d["kind"] == "ClusterRole")
    secret_verbs: list[str] = []
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "*" not in rule.get("apiGroups", [])
        if "secrets" in rule["resources"]:
            assert rule["resources"] == ["secrets"], rule
            secret_verbs += rule["verbs"]
    # Pipelines' logins are written, never read; without a warehouse, no Secret at all.
    assert secret_verbs == (["create", "patch"] if values else [])


def test_warehouses_reach_the_operator_from_their_secrets_only() -> None:
    deployment = next(d for d in rendered(*WAREHOUSES) if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATAMESH_WAREHOUSES"]["value"] == "main,eu-archive"
    refs = {
        name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for name, e in env.items()
        if "valueFrom" in e
    }
    assert refs == {
        "DATAMESH_WAREHOUSE_MAIN_DSN": ("main-warehouse", "dsn"),
        "DATAMESH_WAREHOUSE_MAIN_CREDENTIALS_KEY": ("main-warehouse", "credentials-key"),
        "DATAMESH_WAREHOUSE_EU_ARCHIVE_DSN": ("archive", "url"),
        "DATAMESH_WAREHOUSE_EU_ARCHIVE_CREDENTIALS_KEY": ("archive", "credentials-key"),
    }


def test_a_warehouse_without_its_secret_fails_lint() -> None:
    proc = helm(None, "lint", str(CHART), "--set", "warehouses[0].name=main", check=False)
    assert proc.returncode != 0
    assert "secretName" in proc.stdout + proc.stderr


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
