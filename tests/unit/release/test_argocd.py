"""The ArgoCD artefacts without a cluster: the health scripts run in a real Lua runtime,
the ConfigMap that embeds them, and the Applications (rendered by Helm, as ArgoCD renders
them) and the AppProjects."""

from __future__ import annotations

from typing import Any

import lupa
import pytest
import yaml

from tests.support import ROOT
from tests.support.chart import helm

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


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"health": {"status": "Healthy"}}, ("Healthy", "")),
        ({"health": {"status": "Degraded", "message": "orders: NonCompliant"}}, None),
        ({}, ("Progressing", "")),
    ],
)
def test_application_health_is_its_own(
    status: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    """The root waits for a child Application (a sync wave) until that one is Healthy."""
    obj = {"metadata": {"name": "datamesh-crds"}, "status": status}
    want = expected or ("Degraded", "orders: NonCompliant")
    assert health("application.lua", obj) == want


def test_argocd_cm_embeds_the_tested_scripts() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm-health.yaml").read_text())
    prefix = "resource.customizations.health."
    assert cm["data"] == {
        f"{prefix}argoproj.io_Application": (ARGOCD / "health" / "application.lua").read_text(),
        f"{prefix}datamesh.io_DataProduct": (ARGOCD / "health" / "dataproduct.lua").read_text(),
        f"{prefix}datamesh.io_GovernancePolicy": (
            ARGOCD / "health" / "governancepolicy.lua"
        ).read_text(),
    }


FORK = "https://git.example.org/someone/datamesh.git"


def _apps(*values: str) -> dict[str, dict[str, Any]]:
    """argocd/apps as the root Application renders it (Helm, ArgoCD's own renderer)."""
    out = helm(None, "template", "datamesh", str(ARGOCD / "apps"), *values).stdout
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d}


def _root() -> dict[str, Any]:
    return dict(yaml.safe_load((ARGOCD / "root.yaml").read_text()))


def test_root_passes_its_own_repository_to_every_application() -> None:
    """The repository URL is written once (root.yaml): the root hands ArgoCD's build
    variables to the apps chart, which puts them into every source and generator."""
    params = {p["name"]: p["value"] for p in _root()["spec"]["source"]["helm"]["parameters"]}
    assert params == {
        "repoURL": "$ARGOCD_APP_SOURCE_REPO_URL",
        "targetRevision": "$ARGOCD_APP_SOURCE_TARGET_REVISION",
    }
    apps = _apps("--set", f"repoURL={FORK}", "--set", "targetRevision=v2")
    urls = set()
    for app in apps.values():
        spec = app["spec"]
        if app["kind"] == "ApplicationSet":
            urls |= {g["git"]["repoURL"] for g in spec["generators"]}
            assert {g["git"]["revision"] for g in spec["generators"]} == {"v2"}
            spec = spec["template"]["spec"]
        sources = spec.get("sources") or [spec["source"]]
        urls |= {s["repoURL"] for s in sources}
        assert {s["targetRevision"] for s in sources} == {"v2"}
    assert urls == {FORK}
    text = (ARGOCD / "root.yaml").read_text() + (ARGOCD / "project.yaml").read_text()
    assert text.count(_root()["spec"]["source"]["repoURL"]) == 3  # root + both projects


def test_applicationset_keeps_its_own_templates() -> None:
    template = _apps()["datamesh-products"]["spec"]["template"]
    assert template["metadata"]["name"] == "products-{{.path.basename}}"
    assert template["spec"]["destination"]["namespace"] == "{{.path.basename}}"


def test_operator_values_reach_the_operator_application() -> None:
    apps = _apps("--set", "operator.image.repository=localhost/op")
    helm_source = apps["datamesh-operator"]["spec"]["source"]["helm"]
    assert helm_source["valuesObject"] == {"image": {"repository": "localhost/op"}}
    assert "valuesObject" not in _apps()["datamesh-operator"]["spec"]["source"]["helm"]


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


def _projects() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((ARGOCD / "project.yaml").read_text())
    return {d["metadata"]["name"]: d["spec"] for d in docs}


def test_every_application_names_a_destination_its_project_allows() -> None:
    """What a real ArgoCD refused before: a destination namespace outside the project,
    or none at all."""
    projects = _projects()
    apps = [_root(), *_apps().values()]
    for app in apps:
        spec = app["spec"]["template"]["spec"] if app["kind"] == "ApplicationSet" else app["spec"]
        allowed = {d["namespace"] for d in projects[spec["project"]]["destinations"]}
        namespace = spec["destination"].get("namespace")
        assert namespace, app["metadata"]["name"]
        if "{{" not in namespace:
            assert namespace in allowed, app["metadata"]["name"]
    kinds = {k["kind"] for k in projects["datamesh-bootstrap"]["namespaceResourceWhitelist"]}
    assert kinds == {"Application", "ApplicationSet"}
    assert projects["datamesh-bootstrap"]["clusterResourceWhitelist"] == []


def test_project_restricts_kinds_and_destinations() -> None:
    spec = _projects()["datamesh"]
    assert {d["namespace"] for d in spec["destinations"]} == {
        "datamesh-system",
        *(p.name for p in (ROOT / "products").iterdir()),
    }
    kinds = {k["kind"] for k in spec["namespaceResourceWhitelist"]}
    assert "Secret" not in kinds and "DataProduct" in kinds
    assert not {"Application", "ApplicationSet"} & kinds
    assert all(
        "*" not in (k["group"], k["kind"])
        for k in spec["namespaceResourceWhitelist"] + spec["clusterResourceWhitelist"]
    )
