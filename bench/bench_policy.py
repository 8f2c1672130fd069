"""Governance engine throughput: 1,000 generated products against 20 policies.

Target (issue 3): under 1 s for the whole batch, compile included. Run by `make bench`.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.factories import live_documents, policy_obj, product_dict  # noqa: E402

from datamesh.api.models import DataProduct, GovernancePolicy  # noqa: E402
from datamesh.governance import policy  # noqa: E402

PRODUCTS = 1000
POLICIES = 20


def generated_products(n: int, seed: int = 7) -> list[DataProduct]:
    rng = random.Random(seed)
    domains = ["sales", "marketing", "finance", "product-analytics"]
    out = []
    for i in range(n):
        domain = domains[i % len(domains)]
        doc = product_dict()
        doc["metadata"] = {"name": f"product-{i}", "namespace": domain, "generation": 1}
        spec = doc["spec"]
        spec["domain"] = domain
        spec["classification"] = rng.choice(["public", "internal", "confidential", "restricted"])
        spec["retentionDays"] = rng.choice([30, 365, 1000, 2000])
        spec["schema"]["fields"] = [
            {
                "name": f"f{j}",
                "type": "string",
                "description": "d",
                "primaryKey": j == 0,
                **(
                    {"pii": True, "piiCategory": "email"}
                    if j == 3 and spec["classification"] != "public"
                    else {}
                ),
            }
            for j in range(20)
        ]
        spec["tags"] = rng.sample(["gold", "silver", "kpi", "pii", "raw"], 2)
        out.append(DataProduct.model_validate(doc))
    return out


def policies() -> list[GovernancePolicy]:
    live = [d.obj for d in live_documents() if isinstance(d.obj, GovernancePolicy)]
    # Six more of the kinds platform teams write, so that the set is representative.
    extra_rules = [
        (
            "snake-case-fields",
            "object.spec.schema.fields.all(f, f.name.matches('^[a-z][a-z0-9_]*$'))",
        ),
        ("has-tags", "size(object.spec.tags) > 0"),
        ("corporate-email", "object.spec.owner.email.endsWith('@example.com')"),
        ("real-description", "size(object.spec.description) >= 5"),
        ("has-output-port", "size(object.spec.outputPorts) > 0"),
        ("released", "int(object.spec.version.split('.')[0]) >= 1"),
    ]
    extra = [
        policy_obj(
            name=name,
            enforcement="warn",
            rules=[{"name": name, "expression": expression, "message": "m"}],
        )
        for name, expression in extra_rules[: POLICIES - len(live)]
    ]
    return [*live, *extra]


def main() -> int:
    products = generated_products(PRODUCTS)
    raw_policies = policies()
    now = dt.datetime.now(dt.UTC)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        compiled = [policy.compile_policy(p) for p in raw_policies]
        results = [policy.evaluate(p, compiled, now=now) for p in products]
        runs.append(time.perf_counter() - start)
    rules = sum(len(r.policies) for r in results)
    violations = sum(len(r.violations) for r in results)
    best, median = min(runs), statistics.median(runs)
    print(
        f"policy engine: {PRODUCTS} products x {len(raw_policies)} policies "
        f"({rules} policy applications, {violations} violations)"
    )
    print(
        f"  best {best:.3f} s, median {median:.3f} s over {len(runs)} runs "
        f"({median / PRODUCTS * 1e3:.3f} ms per product); target < 1 s: "
        f"{'met' if median < 1 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
