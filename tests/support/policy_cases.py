"""Every live policy with a product that passes it and one that fails it: the unit tests
run them through the engine, the admission tests through the apiserver as well."""

from __future__ import annotations

from typing import Any

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
