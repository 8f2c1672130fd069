"""The CRDs on a real apiserver: the live files are accepted, bad objects are refused."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support import ROOT
from tests.support.cluster import Cluster
from tests.support.factories import dump, product_dict
from tests.support.live_repo import apply_live


def test_every_live_file_is_accepted_by_the_apiserver(crds: Cluster) -> None:
    apply_live(crds)
    products = json.loads(crds.kubectl("get", "dataproducts", "-A", "-o", "json").stdout)
    names = {f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in products["items"]}
    on_disk = {
        f"{p.parent.name}/{p.stem}"
        for p in (ROOT / "products").rglob("*.yaml")
        if p.name != "namespace.yaml"
    }
    assert names == on_disk
    policies = json.loads(crds.kubectl("get", "gp", "-A", "-o", "json").stdout)["items"]
    assert len(policies) == len(
        [p for p in (ROOT / "policies").rglob("*.yaml") if p.name != "namespace.yaml"]
    )
    # Defaults from the schema are applied by the apiserver.
    orders = json.loads(crds.kubectl("get", "dp", "orders", "-n", "sales", "-o", "json").stdout)
    assert orders["spec"]["deletionPolicy"] == "Retain"


def test_printer_columns_and_short_names(crds: Cluster) -> None:
    apply_live(crds)
    out = crds.kubectl("get", "dp", "-n", "sales").stdout
    assert out.split("\n")[0].split() == [
        "NAME",
        "DOMAIN",
        "VERSION",
        "CLASS",
        "COMPLIANT",
        "PHASE",
        "QUALITY",
        "AGE",
    ]
    wide = crds.kubectl("get", "datamesh", "-n", "sales", "-o", "wide").stdout
    assert "OWNER" in wide and "VIOLATIONS" in wide and "sales-analytics" in wide
    gp = crds.kubectl("get", "gp", "-n", "datamesh-system").stdout.split("\n")[0].split()
    assert gp == ["NAME", "ENFORCEMENT", "MATCHED", "VIOLATING", "VALID", "AGE"]


def test_kubectl_explain_shows_the_descriptions(crds: Cluster) -> None:
    out = crds.kubectl("explain", "dataproduct.spec.sla").stdout
    assert "Service levels" in out
    assert "Availability target in percent" in out
    out = crds.kubectl("explain", "governancepolicy.spec.rules.expression").stdout
    assert "CEL expression" in out


BAD = [
    (
        "pii-in-public",
        lambda d: d["spec"].update(
            classification="public",
            schema={
                "format": "json",
                "fields": [
                    {"name": "email", "type": "string", "pii": True, "piiCategory": "email"}
                ],
            },
        ),
        ["spec.classification", "a public product cannot contain fields marked pii"],
    ),
    (
        "pii-without-category",
        lambda d: d["spec"]["schema"]["fields"].append(
            {"name": "phone", "type": "string", "pii": True}
        ),
        ["spec.schema.fields[2].piiCategory", "must name its piiCategory"],
    ),
    ("bad-semver", lambda d: d["spec"].update(version="1.0"), ["spec.version"]),
    ("zero-retention", lambda d: d["spec"].update(retentionDays=0), ["spec.retentionDays"]),
    ("wrong-type", lambda d: d["spec"].update(retentionDays="long"), ["spec.retentionDays"]),
    (
        "unknown-field",
        lambda d: d["spec"]["sla"].update(fresness="1h"),
        ['unknown field "spec.sla.fresness"'],
    ),
    (
        "long-name",
        lambda d: d["metadata"].update(name="x" * 41),
        ["metadata.name must be at most 40 characters"],
    ),
    (
        "duplicate-fields",
        lambda d: d["spec"]["schema"]["fields"].append({"name": "order_id", "type": "string"}),
        ["spec.schema.fields[", "Duplicate value"],
    ),
    (
        "rule-and-sql",
        lambda d: d["spec"]["qualityChecks"].append(
            {"name": "both", "rule": "unique", "sql": "select 1"}
        ),
        ["set exactly one of rule and sql"],
    ),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), BAD, ids=[b[0] for b in BAD])
def test_apiserver_rejects_bad_products_naming_the_field(
    crds: Cluster, namespace: str, case: str, mutate, expected
) -> None:  # type: ignore[no-untyped-def]
    doc = product_dict()
    doc["metadata"] = {"name": doc["metadata"]["name"], "namespace": namespace}
    doc["spec"]["domain"] = namespace
    mutate(doc)
    proc = crds.kubectl("apply", "-f", "-", input=dump(doc), check=False)
    assert proc.returncode != 0, f"{case} was accepted"
    for fragment in expected:
        assert fragment in proc.stderr, proc.stderr
    assert crds.kubectl("get", "dp", "-n", namespace, "-o", "name").stdout == ""


def test_apiserver_rejects_a_policy_without_rules(crds: Cluster, namespace: str) -> None:
    doc = {
        "apiVersion": "datamesh.io/v1alpha1",
        "kind": "GovernancePolicy",
        "metadata": {"name": "empty", "namespace": namespace},
        "spec": {"description": "d", "enforcement": "block", "rules": []},
    }
    proc = crds.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert proc.returncode != 0 and "spec.rules" in proc.stderr
