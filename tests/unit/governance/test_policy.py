"""The governance engine's semantics: matching, exceptions, errors, ordering."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from datamesh.api.constants import DEFAULT_PLATFORM_NAMESPACE
from datamesh.governance import policy
from tests.support.factories import policy_obj, product

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def rule(expression: str, name: str = "r", when: str | None = None, message: str = "m") -> dict:
    out = {"name": name, "expression": expression, "message": message}
    if when:
        out["when"] = when
    return out


def compiled(**kw: object) -> policy.CompiledPolicy:
    return policy.compile_policy(policy_obj(**kw))  # type: ignore[arg-type]


def test_block_violation_makes_product_non_compliant_and_warn_does_not() -> None:
    block = compiled(name="b", rules=[rule("false", message="blocked")])
    warn = compiled(name="w", enforcement="warn", rules=[rule("false")])
    audit = compiled(name="a", enforcement="audit", rules=[rule("false")])
    assert not policy.evaluate(product(), [block], now=NOW).compliant
    result = policy.evaluate(product(), [warn, audit], now=NOW)
    assert result.compliant
    assert (result.blocking, result.warnings, result.audits) == (0, 1, 1)


def test_invalid_expression_is_reported_with_compiler_message_and_others_still_apply() -> None:
    broken = compiled(
        name="broken",
        rules=[
            rule("object.spec.(", name="bad"),
            rule("object.spec.version == '9.9.9'", name="ok"),
        ],
    )
    assert not broken.valid
    assert broken.errors[0].startswith("rule bad: ")
    assert "Syntax error" in broken.errors[0]
    other = compiled(name="other", rules=[rule("has(object.spec.pipeline)", name="needs-pipe")])
    result = policy.evaluate(product(), [broken, other], now=NOW)
    assert {(v.policy, v.rule) for v in result.violations} == {
        ("datamesh-system/broken", "ok"),
        ("datamesh-system/other", "needs-pipe"),
    }


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("object.spec.domain.frobnicate()", "undeclared reference to 'frobnicate'"),
        ("product.spec.domain == 'x'", "undeclared reference to 'product.spec.domain'"),
        ("1 +", "Syntax error"),
        ("1 == 1.0", "no matching overload"),
        ("1 + 2", "must evaluate to bool, not int"),
        ("'a' + 'b'", "must evaluate to bool, not string"),
    ],
)
def test_compile_errors_are_caught_before_any_evaluation(expression: str, fragment: str) -> None:
    program, error = policy.compile_expression(expression)
    assert program is None
    assert error is not None and fragment in error


def test_when_that_does_not_compile_is_named() -> None:
    p = compiled(rules=[rule("true", when="object.(")])
    assert p.errors and p.errors[0].startswith("rule r: when: ")


def test_kubernetes_cel_extensions_are_available() -> None:
    p = compiled(
        rules=[
            rule("object.spec.domain.lowerAscii() == 'sales'", name="strings"),
            rule("object.spec.version.split('.').size() == 3", name="split"),
            rule("object.spec.?pipeline.?schedule.orValue('none') == 'none'", name="optional"),
            rule("duration(object.spec.sla.freshness) <= duration('2h')", name="duration"),
            rule("object.spec.sla.availability >= 95", name="int-vs-double"),
            rule("object.spec.retentionDays < 365.5", name="double-vs-int"),
        ]
    )
    assert p.valid, p.errors
    assert policy.evaluate(product(), [p], now=NOW).violations == ()


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        # Kubernetes' CEL has no math library, and strings only up to version 2.
        ("math.greatest(object.spec.retentionDays, 1) == 365", "undeclared reference to 'math'"),
        ("object.spec.domain.reverse() == 'selas'", "undeclared reference to 'reverse'"),
        # Mixed numbers order, as in Kubernetes, but never compare equal.
        ("object.spec.sla.availability == 99", "no matching overload for '_==_'"),
    ],
)
def test_what_kubernetes_cel_lacks_does_not_compile(expression: str, fragment: str) -> None:
    _, error = policy.compile_expression(expression)
    assert error is not None and fragment in error


def test_rule_that_errors_at_evaluation_is_a_violation_not_a_crash() -> None:
    p = compiled(
        rules=[
            rule("object.spec.pipeline.schedule == 'x'", message="needs a pipeline"),
            rule("int(object.spec.version) == 1", name="conversion"),
        ]
    )
    result = policy.evaluate(product(), [p], now=NOW)
    messages = {v.rule: v.message for v in result.violations}
    assert messages["r"] == 'needs a pipeline (evaluation error: Key not found in map : "pipeline")'
    assert "cannot convert string to int" in messages["conversion"]
    assert not result.compliant


def test_non_boolean_result_is_a_violation() -> None:
    # Type checking refuses `object.spec.retentionDays`; a dyn result is only known when
    # the rule runs, as in Kubernetes.
    result = policy.evaluate(
        product(), [compiled(rules=[rule("dyn(object.spec.retentionDays)")])], now=NOW
    )
    assert "must return a boolean, got int" in result.violations[0].message


def test_when_false_skips_the_rule() -> None:
    p = compiled(rules=[rule("false", when="object.spec.classification == 'restricted'")])
    assert policy.evaluate(product(), [p], now=NOW).violations == ()
    assert (
        policy.evaluate(
            product(classification="restricted", retentionDays=30), [p], now=NOW
        ).blocking
        == 1
    )


@pytest.mark.parametrize(
    ("match", "applies"),
    [
        ({}, True),
        ({"domains": ["sales"]}, True),
        ({"domains": ["finance"]}, False),
        ({"classifications": ["internal", "public"]}, True),
        ({"classifications": ["restricted"]}, False),
        ({"tags": ["gold", "orders"]}, True),
        ({"tags": ["gold"]}, False),
        ({"selector": {"matchLabels": {"tier": "gold"}}}, True),
        ({"selector": {"matchLabels": {"tier": "silver"}}}, False),
        (
            {
                "selector": {
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]
                }
            },
            True,
        ),
        (
            {
                "selector": {
                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]
                }
            },
            False,
        ),
        ({"selector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}, False),
        ({"selector": {"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}}, True),
    ],
)
def test_match_narrows_the_products_a_policy_applies_to(match: dict, applies: bool) -> None:
    p = policy_obj(match=match)
    subject = product(labels={"tier": "gold"}, tags=["orders"])
    assert policy.applies(p, subject, DEFAULT_PLATFORM_NAMESPACE) is applies


def test_domain_policy_applies_only_in_its_own_namespace() -> None:
    finance = policy_obj(namespace="finance")
    assert policy.applies(
        finance, product(namespace="finance", domain="finance"), "datamesh-system"
    )
    assert not policy.applies(finance, product(), "datamesh-system")
    assert policy.applies(policy_obj(namespace="platform"), product(), "platform")


def test_active_exception_exempts_and_expired_one_does_not() -> None:
    def with_expiry(expires: str) -> policy.CompiledPolicy:
        return compiled(
            rules=[rule("false")],
            exceptions=[{"product": "orders", "reason": "migration", "expires": expires}],
        )

    active = policy.evaluate(product(), [with_expiry("2026-12-31")], now=NOW)
    assert active.compliant and active.exempted == ("datamesh-system/p",)
    assert policy.evaluate(product(), [with_expiry("2026-11-22T11:59:59Z")], now=NOW).blocking == 1
    assert policy.evaluate(product(), [with_expiry("2026-11-21")], now=NOW).blocking == 1
    # An exception for a product of another domain does not apply.
    other = compiled(
        rules=[rule("false")],
        exceptions=[
            {"product": "orders", "domain": "finance", "reason": "x", "expires": "2030-01-01"}
        ],
    )
    assert policy.evaluate(product(), [other], now=NOW).blocking == 1


def test_domain_policy_cannot_exempt_a_product_from_a_global_policy() -> None:
    global_rule = compiled(name="global", rules=[rule("false", message="global says no")])
    domain_policy = compiled(
        name="local",
        namespace="sales",
        rules=[rule("true")],
        exceptions=[
            {"product": "orders", "reason": "we would like to skip", "expires": "2099-01-01"}
        ],
    )
    result = policy.evaluate(product(), [global_rule, domain_policy], now=NOW)
    assert not result.compliant
    assert [(v.policy, v.message) for v in result.violations] == [
        ("datamesh-system/global", "global says no")
    ]


def test_domain_isolation_is_a_blocking_violation() -> None:
    result = policy.evaluate(
        product(namespace="sales", domain="finance"), [], now=NOW, namespace_domain="sales"
    )
    assert not result.compliant
    assert result.violations[0].policy == policy.BUILTIN_POLICY
    assert "spec.domain is 'finance'" in result.violations[0].message


@pytest.mark.parametrize(
    ("namespace", "declared", "rule"),
    [
        ("sales", "sales", None),
        ("sales", "finance", "namespace-matches-domain"),
        ("sales", None, "namespace-is-a-domain"),  # no label: no domain's namespace
        ("datamesh-system", "sales", "namespace-is-a-domain"),  # never the platform's
    ],
)
def test_products_live_only_in_their_domains_namespace(
    namespace: str, declared: str | None, rule: str | None
) -> None:
    subject = product(namespace=namespace, domain="sales")
    result = policy.evaluate(subject, [], now=NOW, namespace_domain=declared)
    assert [v.rule for v in result.violations] == ([rule] if rule else [])
    assert result.compliant is (rule is None)
    if rule == "namespace-is-a-domain":
        assert "datamesh.io/domain=sales" in result.violations[0].message


def test_domain_isolation_is_skipped_only_when_unchecked() -> None:
    subject = product(namespace="anywhere", domain="sales")
    assert policy.evaluate(subject, [], now=NOW).compliant
    assert not policy.evaluate(subject, [], now=NOW, namespace_domain=None).compliant


def test_result_is_deterministic_and_ordered() -> None:
    policies = [
        compiled(
            name=f"p{i}",
            enforcement=e,
            rules=[rule("false", name=f"r{i}")],
            severity=s,
            namespace=ns,
        )
        for i, (e, s, ns) in enumerate(
            [
                ("warn", "critical", "datamesh-system"),
                ("block", "warning", "sales"),
                ("block", "critical", "datamesh-system"),
                ("audit", "info", "datamesh-system"),
                ("block", "critical", "sales"),
            ]
        )
    ]
    first = policy.evaluate(product(), policies, now=NOW)
    for seed in range(5):
        shuffled = policies[:]
        random.Random(seed).shuffle(shuffled)
        assert policy.evaluate(product(), shuffled, now=NOW) == first
    assert [v.rule for v in first.violations] == ["r2", "r4", "r1", "r0", "r3"]
    assert [p.policy for p in first.policies][:3] == [
        "datamesh-system/p0",
        "datamesh-system/p2",
        "datamesh-system/p3",
    ]


def test_evaluated_policies_carry_their_generation() -> None:
    result = policy.evaluate(product(), [compiled(generation=7)], now=NOW)
    assert [(p.policy, p.generation) for p in result.policies] == [("datamesh-system/p", 7)]


def test_rules_see_metadata_and_defaults_as_stored() -> None:
    p = compiled(
        rules=[
            rule(
                "object.metadata.name == 'orders' && "
                "object.spec.deletionPolicy == 'Retain' && "
                "object.spec.schema.fields[1].nullable"
            )
        ]
    )
    assert policy.evaluate(product(), [p], now=NOW).violations == ()


@pytest.mark.parametrize(
    "expression",
    [
        "object.spec.description.replace('x', object.spec.description).size() > 0",
        "object.spec.tags.join(',') != ''",
        'object.spec.domain == "%s".format([object.spec.domain])',
        "replace (object.spec.domain, 'a')",
    ],
)
def test_functions_whose_result_can_grow_without_bound_are_refused(expression: str) -> None:
    p = compiled(rules=[rule(expression)])
    assert not p.valid and "not allowed in policies" in p.errors[0], p.errors


def test_the_refusal_ignores_string_literals() -> None:
    assert compiled(rules=[rule("object.spec.domain != 'replace(x)'")]).valid
    assert compiled(rules=[rule("object.spec.owner.email.split('@').size() == 2")]).valid


def test_comprehensions_beyond_the_iteration_budget_are_a_violation_not_a_hang() -> None:
    fields = [{"name": f"f{i}", "type": "string"} for i in range(120)]
    nested = rule(
        "object.spec.schema.fields.all(a, object.spec.schema.fields.all(b, a == b || a != b))"
    )
    result = policy.evaluate(
        product(schema={"format": "parquet", "fields": fields}),
        [compiled(rules=[nested])],
        now=NOW,
    )
    assert "Iteration budget exceeded" in result.violations[0].message


def test_an_exception_naming_no_product_in_scope_is_stale() -> None:
    exceptions = [
        {"product": "orders", "reason": "r", "expires": "2099-01-01"},
        {"product": "orders", "domain": "finance", "reason": "r", "expires": "2099-01-01"},
        {"product": "ghost", "reason": "r", "expires": "2099-01-01"},
    ]
    products = [product("orders", "sales")]
    global_policy = policy_obj(exceptions=exceptions)
    stale = policy.stale_exceptions(global_policy, products, "datamesh-system")
    assert [i for i, _ in stale] == [1, 2]
    domain_policy = policy_obj(namespace="finance", exceptions=exceptions[:1])
    assert [i for i, _ in policy.stale_exceptions(domain_policy, products, "datamesh-system")] == [
        0
    ]
