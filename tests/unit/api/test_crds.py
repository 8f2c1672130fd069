"""The committed CRDs are exactly what the models generate, and are well formed."""

from __future__ import annotations

from typing import Any

import pytest

from datamesh.api import crd
from tests.support import ROOT


@pytest.mark.parametrize("folder", ["crds", "charts/datamesh-operator/crds"])
@pytest.mark.parametrize("name", sorted(crd.all_crds()))
def test_committed_crds_match_the_models(name: str, folder: str) -> None:
    committed = (ROOT / folder / name).read_text()
    assert committed == crd.render(crd.all_crds()[name]), (
        f"crds/{name} is stale: run `make crds` and commit the result"
    )


def test_no_stray_crd_files() -> None:
    assert {p.name for p in (ROOT / "crds").glob("*.yaml")} == set(crd.all_crds())


def _walk(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for key, child in node.get("properties", {}).items():
        out.extend(_walk(child, f"{path}.{key}"))
    if "items" in node:
        out.extend(_walk(node["items"], f"{path}[]"))
    if isinstance(node.get("additionalProperties"), dict):
        out.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return out


@pytest.mark.parametrize("name", sorted(crd.all_crds()))
def test_schema_is_structural_and_every_field_is_described(name: str) -> None:
    schema = crd.all_crds()[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path, node in _walk(schema["properties"][part], part):
            assert "type" in node, f"{path} has no type"
            assert not {"$ref", "anyOf", "oneOf", "allOf", "const"} & set(node), path
            is_list_item = path.endswith("[]") or path.endswith("{}")
            if not is_list_item:
                assert node.get("description"), f"{path} has no description"


def test_data_product_crd_names_and_columns() -> None:
    obj = crd.data_product_crd()
    names = obj["spec"]["names"]
    assert names["shortNames"] == ["dp"] and names["categories"] == ["datamesh"]
    version = obj["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"], c.get("priority", 0)) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Domain", 0),
        ("Version", 0),
        ("Class", 0),
        ("Compliant", 0),
        ("Phase", 0),
        ("Quality", 0),
        ("Age", 0),
        ("Owner", 1),
        ("Violations", 1),
    ]


def test_governance_policy_crd_columns() -> None:
    version = crd.governance_policy_crd()["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Enforcement",
        "Matched",
        "Violating",
        "Valid",
        "Age",
    ]
    assert crd.governance_policy_crd()["spec"]["names"]["shortNames"] == ["gp"]


def test_invariants_are_cel_validations() -> None:
    spec = crd.data_product_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [r["rule"] for r in spec["properties"]["spec"]["x-kubernetes-validations"]]
    assert any("pii" in r and "public" in r for r in rules)
    assert any("retentionDays > 0" in r for r in rules)
    assert spec["properties"]["spec"]["properties"]["version"]["pattern"].startswith("^(0|")
    assert any("metadata.name" in r["rule"] for r in spec["x-kubernetes-validations"])
