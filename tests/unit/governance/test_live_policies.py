"""Every live policy in policies/ with one product that passes it and one that fails it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from datamesh.governance import policy
from tests.support import ROOT
from tests.support.factories import live_policy, product
from tests.support.policy_cases import CASES

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("path", "namespace", "good", "bad", "rule"),
    CASES,
    ids=[f"{c[0]}:{c[4] or 'valid'}" for c in CASES],
)
def test_live_policy_passes_and_fails(
    path: str, namespace: str, good: dict[str, Any], bad: dict[str, Any], rule: str
) -> None:
    compiled = policy.compile_policy(live_policy(path))
    assert compiled.valid, compiled.errors

    ok = product(namespace=namespace, domain=namespace, **good)
    result = policy.evaluate(ok, [compiled], now=NOW)
    assert [p.policy for p in result.policies] == [compiled.ref], "the policy must apply"
    assert result.violations == ()

    if not rule:
        return
    failing = product(namespace=namespace, domain=namespace, **bad)
    result = policy.evaluate(failing, [compiled], now=NOW)
    assert [v.rule for v in result.violations] == [rule]
    violation = result.violations[0]
    assert violation.policy == compiled.ref
    assert violation.enforcement == compiled.policy.spec.enforcement
    assert violation.message == next(
        r.message for r in compiled.policy.spec.rules if r.name == rule
    )
    assert result.compliant is (compiled.policy.spec.enforcement != "block")


def test_every_live_policy_has_a_case() -> None:
    files = {
        str(p.relative_to(ROOT / "policies"))
        for p in (ROOT / "policies").rglob("*.yaml")
        if p.name != "namespace.yaml"
    }
    covered = {c[0] for c in CASES}
    assert files == covered


def test_domain_policies_do_not_apply_to_other_domains() -> None:
    finance_only = policy.compile_policy(live_policy("finance/audit-logging.yaml"))
    sales_product = product(namespace="sales", domain="sales", access={"auditLogging": False})
    assert policy.evaluate(sales_product, [finance_only], now=NOW).policies == ()


def test_live_policy_paths_exist() -> None:
    assert all(Path(ROOT / "policies" / c[0]).exists() for c in CASES)
