"""Every live policy in policies/ with one product that passes it and one that fails it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from datamesh import policy
from tests.factories import ROOT, live_policy, product

NOW = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
PII_FIELDS = [
    {"name": "customer_id", "type": "string", "description": "Id.", "primaryKey": True},
    {
        "name": "customer_email",
        "type": "string",
        "description": "E-mail.",
        "pii": True,
        "piiCategory": "email",
    },
]
FIELDS_NO_PK = [{"name": "a", "type": "string", "description": "A."}]


# (policy file, namespace, passing spec overrides, failing spec overrides, failing rule)
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    ("global/classification.yaml", "sales", {}, {}, ""),
    (
        "global/pii-category.yaml",
        "sales",
        {"schema": {"format": "parquet", "fields": PII_FIELDS}},
        {"schema": {"format": "parquet", "fields": [{"name": "e", "type": "string", "pii": True}]}},
        "pii-fields-have-category",
    ),
    (
        "global/pii-protection.yaml",
        "sales",
        {"schema": {"format": "parquet", "fields": PII_FIELDS}},
        {
            "schema": {"format": "parquet", "fields": PII_FIELDS},
            "storage": {"size": "1Gi", "encryption": {"atRest": False}},
        },
        "pii-encrypted-at-rest",
    ),
    (
        "global/pii-protection.yaml",
        "sales",
        {"schema": {"format": "parquet", "fields": PII_FIELDS}},
        {"schema": {"format": "parquet", "fields": PII_FIELDS}, "access": {"auditLogging": False}},
        "pii-audit-logging",
    ),
    (
        "global/retention.yaml",
        "sales",
        {"classification": "public", "retentionDays": 2555},
        {"classification": "restricted", "retentionDays": 366},
        "retention-within-limit",
    ),
    (
        "global/retention.yaml",
        "sales",
        {"classification": "confidential", "retentionDays": 1095},
        {"classification": "internal", "retentionDays": 1826},
        "retention-within-limit",
    ),
    (
        "global/field-documentation.yaml",
        "sales",
        {},
        {"schema": {"format": "parquet", "fields": FIELDS_NO_PK}},
        "primary-key",
    ),
    (
        "global/field-documentation.yaml",
        "sales",
        {},
        {
            "schema": {
                "format": "parquet",
                "fields": [{"name": "a", "type": "string", "primaryKey": True}],
            }
        },
        "field-descriptions",
    ),
    ("global/sla-required.yaml", "sales", {}, {"sla": None}, "sla-present"),
    (
        "global/availability.yaml",
        "sales",
        {"sla": {"freshness": "1h", "availability": 95}},
        {"sla": {"freshness": "1h", "availability": 94.9}},
        "availability-at-least-95",
    ),
    (
        "global/quality-checks.yaml",
        "sales",
        {},
        {"qualityChecks": [{"name": "freshness", "rule": "freshness"}]},
        "completeness-check",
    ),
    (
        "global/quality-checks.yaml",
        "sales",
        {},
        {
            "qualityChecks": [
                {"name": "c", "rule": "completeness"},
                {"name": "s", "sql": "select 1"},
            ]
        },
        "freshness-check",
    ),
    (
        "global/owner-contact.yaml",
        "sales",
        {},
        {"owner": {"team": "t", "email": "t@example.com"}},
        "owner-channel",
    ),
    (
        "global/deprecation-notice.yaml",
        "sales",
        {
            "deprecation": {
                "deprecated": True,
                "sunsetDate": "2027-06-30",
                "replacedBy": "orders-v2",
            }
        },
        {"deprecation": {"deprecated": True, "reason": "replaced"}},
        "sunset-and-replacement",
    ),
    (
        "global/restricted-access.yaml",
        "sales",
        {
            "classification": "restricted",
            "access": {"readers": {"groups": ["auditors"]}, "auditLogging": True},
        },
        {
            "classification": "restricted",
            "access": {"readers": {"domains": ["marketing"]}, "auditLogging": True},
        },
        "no-domain-wide-readers",
    ),
    (
        "finance/freshness.yaml",
        "finance",
        {"sla": {"freshness": "60m", "availability": 99}},
        {"sla": {"freshness": "2h", "availability": 99}},
        "freshness-at-most-1h",
    ),
    (
        "finance/freshness.yaml",
        "finance",
        {"sla": {"freshness": "30s", "availability": 99}},
        {"sla": {"freshness": "1d", "availability": 99}},
        "freshness-at-most-1h",
    ),
    (
        "finance/audit-logging.yaml",
        "finance",
        {},
        {"access": {"auditLogging": False}},
        "audit-logging-on",
    ),
    (
        "sales/customer-contact-pii.yaml",
        "sales",
        {"schema": {"format": "parquet", "fields": PII_FIELDS}},
        {
            "schema": {
                "format": "parquet",
                "fields": [{"name": "customer_phone", "type": "string", "description": "Phone."}],
            }
        },
        "contact-fields-marked-pii",
    ),
]


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
