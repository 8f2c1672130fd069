"""Rules are type-checked against the product's declared type, as Kubernetes checks a
ValidatingAdmissionPolicy against the CRD schema: each case here was accepted (and failed
only when the rule ran, on every product) while ``object`` was dynamically typed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from cel_expr_python import cel

from datamesh.governance import cel_types, policy
from datamesh.governance.cel import environment
from tests.support.factories import policy_obj, product

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        # A field the schema does not have, at any depth, also inside a macro.
        ("object.spec.retentionDayz <= 365", "undefined field 'retentionDayz'"),
        ("object.spec.sla.latency == '1h'", "undefined field 'latency'"),
        (
            "object.spec.schema.fields.all(f, f.descripton != '')",
            "undefined field 'descripton' not found in struct 'DataProduct.Spec.Schema.Fields'",
        ),
        ("has(object.spec.owner.phone)", "undefined field 'phone'"),
        # What the engine never sees (the apiserver's object is wider) says what it does.
        (
            "object.metadata.annotations['team'] == 'a'",
            "(rules see metadata.name, metadata.namespace, metadata.labels)",
        ),
        ("object.status.phase == 'Ready'", "(rules see apiVersion, kind, metadata and spec)"),
        # A result that is not a bool.
        ("object.spec.owner", "must evaluate to bool, not DataProduct.Spec.Owner"),
        ("object.spec.retentionDays", "must evaluate to bool, not int"),
        ("object.spec.tags", "must evaluate to bool, not list<string>"),
        ("object.metadata.labels", "must evaluate to bool, not map<string, string>"),
        # A field of something that has none, and operands of the wrong type.
        ("object.spec.owner.team.name == 'a'", "'string' cannot be the operand of a select"),
        ("object.spec.retentionDays + 'd' == '30d'", "no matching overload for '_+_'"),
        ("object.spec.owner == true", "applied to '(DataProduct.Spec.Owner, bool)'"),
        ("object.spec.tags.exists(t, t > 1)", "applied to '(string, int)'"),
        ("object.spec.owner.team == null", "applied to '(string, null_type)'"),
        # Constant arguments Kubernetes parses when it compiles.
        ("duration(object.spec.sla.freshness) < duration('1 hour')", "invalid duration argument"),
        ("object.spec.domain.matches('[a-z')", "invalid matches argument '[a-z'"),
        ("timestamp('2026-02-30T00:00:00Z') < timestamp('2027-01-01T00:00:00Z')", "timestamp"),
    ],
)
def test_a_rule_the_declared_type_refuses_is_a_compile_error(
    expression: str, fragment: str
) -> None:
    program, error = policy.compile_expression(expression)
    assert program is None
    assert error is not None and fragment in error, error


ACCEPTED = [
    "has(object.spec.sla) && object.spec.sla.availability >= 99.5",
    "!has(object.spec.pipeline) || object.spec.pipeline.schedule != ''",
    "object.spec.?pipeline.?schedule.orValue('') == ''",
    "object.?spec.?sla.?completeness.orValue(100.0) >= 99.0",
    "object.metadata.labels['tier'] == 'gold'",
    "'tier' in object.metadata.labels && object.metadata.labels.tier == 'gold'",
    "has(object.metadata.labels) && object.metadata.namespace == 'sales'",
    "object.metadata.name.startsWith('ord')",
    "object.spec.schema.fields.exists(f, f.primaryKey)",
    "object.spec.schema.fields.all(f, !has(f.constraints) || f.constraints.minLength >= 0)",
    "object.spec.retentionDays > 30.5 && object.spec.sla.availability > 99",
    "object.spec.qualityChecks.exists(c, has(c.rule) && c.rule == 'freshness')",
    "size(object.spec.access.readers.domains) == 0",
    "object.spec.storage.encryption.atRest",
    "object.kind == 'DataProduct' && object.apiVersion.startsWith('datamesh.io/')",
    "type(object.spec.retentionDays) == int",
    "dyn(object.spec.owner).team == 'sales-analytics'",
]


@pytest.mark.parametrize("expression", ACCEPTED)
def test_well_typed_rules_compile_and_run_on_the_plain_document(expression: str) -> None:
    _, error = policy.compile_expression(expression)
    assert error is None, error
    labelled = product(labels={"tier": "gold"}, classification="internal")
    rule = {"name": "r", "expression": expression, "message": "m"}
    result = policy.evaluate(labelled, [policy.compile_policy(policy_obj(rules=[rule]))], now=NOW)
    assert result.violations == (), result.violations


def test_protobuf_defaults_never_reach_an_evaluation() -> None:
    """Checking uses messages, evaluation the document: an absent field is absent, not
    a zero value (``has`` is false, reading it is an error)."""
    bare = product(sla=None, pipeline=None)
    rules = [
        {"name": "no-sla", "expression": "!has(object.spec.sla)", "message": "m"},
        {"name": "read", "expression": "object.spec.sla.availability >= 0.0", "message": "read"},
        {"name": "empty", "expression": "object.metadata.labels.size() == 0", "message": "m"},
    ]
    result = policy.evaluate(bare, [policy.compile_policy(policy_obj(rules=rules))], now=NOW)
    assert [(v.rule, v.message) for v in result.violations] == [
        ("read", 'read (evaluation error: Key not found in map : "sla")')
    ]


def test_metadata_the_checker_declares_is_what_the_engine_passes() -> None:
    document = policy.product_document(product(labels={"a": "b"}))
    assert set(document) == set(cel_types.product_schema()["properties"])
    assert set(document["metadata"]) == set(cel_types.METADATA_FIELDS)


def _reads(schema: Mapping[str, Any], path: str, depth: int = 0) -> Iterator[str]:
    """A rule reading each property of ``schema``, through lists with ``all``."""
    for name, sub in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        yield f"has({here})"
        if sub.get("type") == "object":
            yield from _reads(sub, here, depth)
        elif sub.get("type") == "array" and sub["items"].get("type") == "object":
            var = f"x{depth}"
            for inner in _reads(sub["items"], var, depth + 1):
                yield f"{here}.all({var}, {inner})"


def test_every_property_of_the_crd_schema_is_a_field() -> None:
    reads = list(_reads(cel_types.product_schema(), "object"))
    assert len(reads) > 80
    errors = [(r, e) for r in reads for _, e in [policy.compile_expression(r)] if e]
    assert errors == []


def _checker(schema: dict[str, Any]) -> Any:
    pool = cel_types.descriptor_pool_for({"type": "object", "properties": {"spec": schema}})
    return environment("object", cel.Type(cel_types.ROOT_MESSAGE), pool)


def _compiles(env: Any, expression: str) -> bool:
    try:
        env.compile(expression)
    except Exception:
        return False
    return True


def test_the_kubernetes_mapping_of_schema_types() -> None:
    env = _checker(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "owners": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"email": {"type": "string"}},
                    },
                },
                "matrix": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "integer"}},
                },
                "tables": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                "groups": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
                "free": {"type": "object"},
                "dash-name": {"type": "string"},
                "untyped": {},
                "ratio": {"type": "number"},
            },
        }
    )
    assert _compiles(env, "object.spec.port == 80 || object.spec.port == 'http'")  # dyn
    assert _compiles(env, "object.spec.owners['a'].email.endsWith('@example.com')")
    assert not _compiles(env, "object.spec.owners['a'].phone == ''")
    assert _compiles(env, "object.spec.matrix.all(row, row.size() > 0)")
    assert _compiles(env, "object.spec.tables.all(t, 'name' in t)")
    assert not _compiles(env, "object.spec.tables.all(t, t > 0)")  # a map, not a number
    assert _compiles(env, "object.spec.groups['a'].exists(m, m == 'x')")
    assert not _compiles(env, "object.spec.free.anything == 1")  # no properties, no fields
    assert not _compiles(env, "object.spec.untyped == 1")  # no type: not visible
    assert not _compiles(env, "has(object.spec.dash__name)")  # not readable by name
    assert _compiles(env, "object.spec.ratio < 1")
    assert not _compiles(env, "object.spec.ratio == 1")


def test_a_string_format_kubernetes_types_is_refused_when_the_type_is_built() -> None:
    at = {"type": "string", "format": "date-time"}
    with pytest.raises(ValueError, match="format date-time"):
        _checker({"type": "object", "properties": {"at": at}})
