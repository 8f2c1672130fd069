"""The ArgoCD artefacts without a cluster: the health scripts run in a real Lua runtime,
the ConfigMap that embeds them, and the Applications and the AppProject."""

from __future__ import annotations

from typing import Any

import lupa
import pytest
import yaml

from tests.support import ROOT

ARGOCD = ROOT / "argocd"


def health(script: str, obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((ARGOCD / "health" / script).read_text())
    return str(result["status"]), str(result["message"])


def product(generation: int = 2, observed: int | None = 2, **ready: str) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if observed is not None:
        status = {
            "observedGeneration": observed,
            "conditions": [
                {"type": "Compliant", "status": "True", "reason": "Compliant", "message": "ok"},
                {"type": "Ready", **ready},
            ],
        }
    return {"metadata": {"name": "orders", "generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (product(status="True", reason="Ready", message="all good"), ("Healthy", "all good")),
        (
            product(status="False", reason="NonCompliant", message="sla-present: add spec.sla"),
            ("Degraded", "sla-present: add spec.sla"),
        ),
        (
            product(status="False", reason="ProvisioningFailed", message="forbidden"),
            ("Degraded", "forbidden"),
        ),
        (
            product(status="False", reason="Provisioning", message="creating"),
            ("Progressing", "creating"),
        ),
        (
            product(status="False", reason="ChildConflict", message="ConfigMap is not ours"),
            ("Degraded", "ConfigMap is not ours"),
        ),
        (
            product(status="False", reason="UpstreamMissing", message="ghost/x not found"),
            ("Degraded", "ghost/x not found"),
        ),
        (
            product(status="False", reason="Cycle", message="a -> b -> a"),
            ("Degraded", "a -> b -> a"),
        ),
        (product(observed=None), ("Progressing", "waiting for the datamesh operator")),
        (
            product(generation=3, observed=2, status="True", reason="Ready", message="old"),
            ("Progressing", "waiting for the operator to observe generation 3"),
        ),
    ],
)
def test_data_product_health(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert health("dataproduct.lua", obj) == expected


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([{"type": "Valid", "status": "True", "message": "3 rules compiled"}], "Healthy"),
        ([{"type": "Valid", "status": "False", "message": "rule r: Syntax error"}], "Degraded"),
        (None, "Progressing"),
    ],
)
def test_governance_policy_health(conditions: list[dict[str, str]] | None, expected: str) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "p"}}
    if conditions is not None:
        obj["status"] = {"conditions": conditions}
    assert health("governancepolicy.lua", obj)[0] == expected


def test_argocd_cm_embeds_the_tested_scripts() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm-health.yaml").read_text())
    data = cm["data"]
    assert (
        data["resource.customizations.health.datamesh.io_DataProduct"]
        == (ARGOCD / "health" / "dataproduct.lua").read_text()
    )
    assert (
        data["resource.customizations.health.datamesh.io_GovernancePolicy"]
        == (ARGOCD / "health" / "governancepolicy.lua").read_text()
    )


def _apps() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for p in (ARGOCD / "apps").glob("*.yaml")
        for d in yaml.safe_load_all(p.read_text())
    }


def test_sync_waves_order_crds_operator_policies_products() -> None:
    waves = {
        name: int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for name, app in _apps().items()
    }
    assert (
        waves["datamesh-crds"]
        < waves["datamesh-operator"]
        < waves["datamesh-policies"]
        < waves["datamesh-products"]
    )
    assert _apps()["datamesh-operator"]["spec"]["source"]["helm"]["skipCrds"] is True


def test_every_referenced_path_exists_and_domains_have_policy_folders() -> None:
    for app in _apps().values():
        source = app["spec"].get("source")
        if source and "{{" not in source["path"]:
            assert (ROOT / source["path"]).is_dir(), source["path"]
    for domain in (ROOT / "products").iterdir():
        assert (ROOT / "policies" / domain.name).is_dir(), domain.name
        ns = yaml.safe_load((domain / "namespace.yaml").read_text())
        assert ns["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-2"


def test_project_restricts_kinds_and_destinations() -> None:
    project = yaml.safe_load((ARGOCD / "project.yaml").read_text())
    spec = project["spec"]
    assert {d["namespace"] for d in spec["destinations"]} == {
        "datamesh-system",
        *(p.name for p in (ROOT / "products").iterdir()),
    }
    kinds = {k["kind"] for k in spec["namespaceResourceWhitelist"]}
    assert "Secret" not in kinds and "DataProduct" in kinds
    assert all(
        "*" not in (k["group"], k["kind"])
        for k in spec["namespaceResourceWhitelist"] + spec["clusterResourceWhitelist"]
    )
