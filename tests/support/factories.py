"""Builders for test objects: a compliant baseline that each test bends one way."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from datamesh.api.models import DataProduct, GovernancePolicy
from datamesh.governance import policy
from datamesh.meshctl import loader
from tests.support import ROOT

BASE_PRODUCT: dict[str, Any] = {
    "apiVersion": "datamesh.io/v1alpha1",
    "kind": "DataProduct",
    "metadata": {"name": "orders", "namespace": "sales", "generation": 1},
    "spec": {
        "domain": "sales",
        "owner": {"team": "sales-analytics", "email": "sales@example.com", "channel": "#sales"},
        "description": "Orders.",
        "version": "1.0.0",
        "type": "source",
        "classification": "internal",
        "retentionDays": 365,
        "schema": {
            "format": "parquet",
            "fields": [
                {
                    "name": "order_id",
                    "type": "string",
                    "description": "Order id.",
                    "primaryKey": True,
                    "nullable": False,
                },
                {"name": "amount", "type": "decimal", "description": "Amount."},
            ],
        },
        "sla": {"freshness": "1h", "availability": 99.5},
        "qualityChecks": [
            {"name": "completeness", "rule": "completeness", "threshold": 0.99},
            {"name": "freshness", "rule": "freshness"},
        ],
        "storage": {"size": "1Gi", "encryption": {"atRest": True}},
        "access": {"auditLogging": True},
    },
}


def product_dict(**spec_overrides: Any) -> dict[str, Any]:
    """The baseline product with spec keys replaced; a value of None removes the key."""
    doc = copy.deepcopy(BASE_PRODUCT)
    for key, value in spec_overrides.items():
        if value is None:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = copy.deepcopy(value)
    return doc


def product(
    name: str = "orders",
    namespace: str = "sales",
    labels: dict[str, str] | None = None,
    **spec_overrides: Any,
) -> DataProduct:
    doc = product_dict(**spec_overrides)
    doc["metadata"].update(name=name, namespace=namespace, labels=labels or {})
    doc["spec"].setdefault("domain", namespace)
    return DataProduct.model_validate(doc)


def policy_obj(
    name: str = "p",
    namespace: str = "datamesh-system",
    *,
    enforcement: str = "block",
    rules: list[dict[str, Any]] | None = None,
    generation: int = 1,
    **spec: Any,
) -> GovernancePolicy:
    return GovernancePolicy.model_validate(
        {
            "apiVersion": "datamesh.io/v1alpha1",
            "kind": "GovernancePolicy",
            "metadata": {"name": name, "namespace": namespace, "generation": generation},
            "spec": {
                "description": "test policy",
                "enforcement": enforcement,
                "rules": rules or [{"name": "r", "expression": "true", "message": "m"}],
                **spec,
            },
        }
    )


def live_policy(relative: str) -> GovernancePolicy:
    """A policy file from policies/, e.g. 'global/retention.yaml'."""
    docs, problems = loader.load_file(ROOT / "policies" / relative)
    assert not problems, problems
    objs = [d.obj for d in docs if isinstance(d.obj, GovernancePolicy)]
    assert len(objs) == 1
    return objs[0]


def live_documents() -> list[loader.Document]:
    docs: list[loader.Document] = []
    for path in loader.yaml_files([ROOT / "products", ROOT / "policies"]):
        found, problems = loader.load_file(path, str(path.relative_to(ROOT)))
        assert not problems, "\n".join(map(str, problems))
        docs.extend(found)
    return docs


def compiled_live_policies() -> list[policy.CompiledPolicy]:
    return [
        policy.compile_policy(d.obj)
        for d in live_documents()
        if isinstance(d.obj, GovernancePolicy)
    ]


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)
