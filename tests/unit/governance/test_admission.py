"""Admission objects generated from block policies, without a cluster (the apiserver's
verdicts are compared with the engine's in tests/integration/test_admission.py)."""

from __future__ import annotations

import datetime as dt

from datamesh.governance import admission, policy
from tests.support.factories import live_documents, policy_obj

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def generate(gp, now: dt.datetime = NOW):  # type: ignore[no-untyped-def]
    return admission.for_policy(
        policy.compile_policy(gp), platform_namespace="datamesh-system", now=now
    )


def conditions(objects: admission.Admission) -> dict[str, str]:
    return {c["name"]: c["expression"] for c in objects.policy["spec"]["matchConditions"]}


def test_only_block_policies_with_compiling_rules_are_enforced_at_admission() -> None:
    assert generate(policy_obj(enforcement="warn")) is None
    assert generate(policy_obj(enforcement="audit")) is None
    broken = [{"name": "r", "expression": "object.spec.(", "message": "m"}]
    assert generate(policy_obj(rules=broken)) is None
    # A rule that does not compile is left out, as the engine leaves it out.
    mixed = [
        {"name": "bad", "expression": "nope(object)", "message": "m"},
        {"name": "good", "expression": "has(object.spec.sla)", "message": "needs an SLA"},
    ]
    objects = generate(policy_obj(rules=mixed))
    assert objects is not None
    assert [v["expression"] for v in objects.policy["spec"]["validations"]] == [
        "(has(object.spec.sla)) == true"
    ]


def test_rules_messages_and_when_guards() -> None:
    rules = [
        {
            "name": "short",
            "when": "object.spec.classification == 'internal'",
            "expression": "size(object.spec.description) < 20",
            "message": "keep it\nshort",
        }
    ]
    objects = generate(policy_obj("desc", rules=rules))
    assert objects is not None and objects.name == "datamesh.datamesh-system.desc"
    (validation,) = objects.policy["spec"]["validations"]
    # An error in the guard must stay an error, as in the engine: a ternary, not `||`.
    assert validation["expression"] == (
        "(object.spec.classification == 'internal') ? (size(object.spec.description) < 20) == true"
        " : true"
    )
    assert validation["message"] == "datamesh-system/desc [short]: keep it short"
    assert objects.policy["spec"]["failurePolicy"] == "Fail"
    rule = objects.policy["spec"]["matchConstraints"]["resourceRules"][0]
    assert rule["resources"] == ["dataproducts"] and rule["operations"] == ["CREATE", "UPDATE"]


def test_global_policies_bind_everywhere_and_domain_policies_to_their_namespace() -> None:
    global_ = generate(policy_obj("g"))
    domain = generate(policy_obj("d", namespace="finance"))
    assert global_ is not None and domain is not None
    assert "matchResources" not in global_.binding["spec"]
    assert domain.binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "finance"}
    }
    assert domain.binding["spec"]["policyName"] == "datamesh.finance.d"
    assert domain.binding["spec"]["validationActions"] == ["Deny"]


def test_match_becomes_match_conditions() -> None:
    gp = policy_obj(
        match={
            "domains": ["sales", "finance"],
            "classifications": ["restricted"],
            "tags": ["gold"],
            "selector": {
                "matchLabels": {"tier": "1"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod"]},
                    {"key": "beta", "operator": "DoesNotExist"},
                ],
            },
        }
    )
    objects = generate(gp)
    assert objects is not None
    found = conditions(objects)
    assert found["spec-changed"] == (
        'request.operation == "CREATE" || object.spec != oldObject.spec'
    )
    assert found["domains"] == 'object.spec.domain in ["finance", "sales"]'
    assert found["classifications"] == 'object.spec.classification in ["restricted"]'
    assert 'object.spec.tags.exists(t, t in ["gold"])' in found["tags"]
    assert len([k for k in found if k.startswith("selector-")]) == 3
    # Every generated expression is valid CEL for the engine's checker too.
    for expression in found.values():
        if "request" not in expression:
            assert policy.compile_expression(expression)[1] is None, expression


def test_only_unexpired_exceptions_are_written_in() -> None:
    gp = policy_obj(
        exceptions=[
            {"product": "a", "reason": "r", "expires": "2026-12-01"},
            {"product": "b", "domain": "sales", "reason": "r", "expires": "2026-12-01"},
            {"product": "c", "reason": "r", "expires": "2026-11-21"},
        ]
    )
    objects = generate(gp)
    assert objects is not None
    assert conditions(objects)["not-exempted"] == (
        '!((object.metadata.name == "a") || '
        '(object.metadata.name == "b" && object.spec.domain == "sales"))'
    )
    # Once every exception has lapsed, regenerating drops the condition.
    later = generate(gp, now=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert later is not None and "not-exempted" not in conditions(later)


def test_desired_covers_the_live_block_policies_and_domain_isolation() -> None:
    compiled = [
        policy.compile_policy(d.obj)
        for d in live_documents()
        if d.kind == "GovernancePolicy" and d.obj is not None
    ]
    want = admission.desired(compiled, platform_namespace="datamesh-system", now=NOW)
    blocks = {
        admission.object_name(c.policy.metadata.namespace, c.policy.metadata.name)
        for c in compiled
        if c.policy.spec.enforcement == "block"
    }
    assert set(want) == blocks | {admission.BUILTIN_NAME}
    isolation = want[admission.BUILTIN_NAME].policy["spec"]
    assert "namespaceObject" in isolation["variables"][0]["expression"]
