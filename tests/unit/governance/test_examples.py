"""Every file in products/ and policies/ is loaded, checked and evaluated."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from datamesh.api.models import DataProduct, GovernancePolicy
from datamesh.governance import policy
from datamesh.governance.lineage import Graph
from tests.support import ROOT
from tests.support.factories import compiled_live_policies, live_documents

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def test_every_file_parses_and_is_a_known_kind() -> None:
    docs = live_documents()
    files = {d.file for d in docs}
    on_disk = {
        str(p.relative_to(ROOT))
        for folder in ("products", "policies")
        for p in (ROOT / folder).rglob("*.yaml")
    }
    assert files == on_disk
    assert {d.kind for d in docs} == {"Namespace", "DataProduct", "GovernancePolicy"}


def test_enough_live_examples() -> None:
    docs = live_documents()
    products = [d.obj for d in docs if isinstance(d.obj, DataProduct)]
    policies = [d.obj for d in docs if isinstance(d.obj, GovernancePolicy)]
    assert len(products) >= 10 and len(policies) >= 10
    assert {p.spec.domain for p in products} >= {
        "sales",
        "marketing",
        "finance",
        "product-analytics",
    }


def test_every_policy_compiles() -> None:
    for compiled in compiled_live_policies():
        assert compiled.valid, (compiled.ref, compiled.errors)


def test_every_product_is_compliant_with_no_violations() -> None:
    policies = compiled_live_policies()
    for doc in live_documents():
        if isinstance(doc.obj, DataProduct):
            result = policy.evaluate(
                doc.obj, policies, now=NOW, namespace_domain=doc.obj.metadata.namespace
            )
            assert result.violations == (), (doc.file, result.violations)
            assert len(result.policies) >= 10


def test_folder_namespace_and_domain_agree() -> None:
    for doc in live_documents():
        if isinstance(doc.obj, DataProduct):
            folder = Path(doc.file).parts[1]
            assert folder == doc.obj.metadata.namespace == doc.obj.spec.domain, doc.file
            assert Path(doc.file).stem == doc.obj.metadata.name


def test_lineage_is_complete_and_acyclic() -> None:
    products = [d.obj for d in live_documents() if isinstance(d.obj, DataProduct)]
    graph = Graph.of(products)
    assert graph.cycles() == []
    for p in products:
        assert graph.missing(p.ref) == [], p.ref
    # customer-360 is derived across domains.
    assert set(graph.upstream["product-analytics/customer-360"]) >= {
        "sales/customers",
        "marketing/customer-segments",
    }
    assert "finance/financial-metrics" in graph.transitive_downstream("sales/orders")
