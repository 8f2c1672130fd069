"""Admission enforcement: ``block`` policies as ValidatingAdmissionPolicies. Pure, no I/O.

The apiserver evaluates the same CEL the engine does (rules see the product as ``object``
in both), so a product a block rule rejects never gets stored. What the engine decides
outside the rule text is turned into CEL too:

- which products a policy applies to (domains, classifications, tags, label selector) and
  its unexpired exceptions become ``matchConditions``; a domain policy's binding selects
  its own namespace only;
- ``when`` guards become ``(when) ? (rule) == true : true``, so an error in either is an
  error, as in the engine (``!(when) || rule`` would let ``true`` swallow an error in
  ``when``);
- domain isolation reads the namespace's ``datamesh.io/domain`` label (``namespaceObject``).

Admission CEL has no clock, so an exception is written in while unexpired and taken out
when the operator regenerates the objects after it lapses (on every policy change and
resync). Only spec changes are checked: the operator's own metadata writes (finalizers,
annotations) on a product created before a policy must never be refused.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from datamesh.api.constants import DOMAIN_LABEL, GROUP, MANAGED_BY, MANAGED_BY_LABEL, VERSION
from datamesh.api.models import Enforcement, LabelSelector
from datamesh.governance.policy import (
    BUILTIN_POLICY,
    CompiledPolicy,
    in_force,
    is_global,
)

API = "admissionregistration.k8s.io/v1"
LABEL = f"{GROUP}/admission"
ANNOTATION_POLICY = f"{GROUP}/policy"
BUILTIN_NAME = "datamesh.domain-isolation"
_ONLY_SPEC_CHANGES = 'request.operation == "CREATE" || object.spec != oldObject.spec'


@dataclass(frozen=True)
class Admission:
    """One policy's admission objects: the policy and its binding share a name."""

    name: str
    policy: dict[str, Any]
    binding: dict[str, Any]


def object_name(namespace: str, name: str) -> str:
    # Namespaces have no dots, so "datamesh.<namespace>.<name>" can never collide.
    return f"datamesh.{namespace}.{name}"


def _literal(values: list[str]) -> str:
    return json.dumps(sorted(values))  # a JSON list of strings is a CEL list literal


def _str(value: str) -> str:
    return json.dumps(value)


def _selector_conditions(selector: LabelSelector) -> list[str]:
    labels = "object.metadata.labels"
    has = f"has({labels})"
    out = []
    for key, value in sorted(selector.match_labels.items()):
        out.append(f"{has} && {_str(key)} in {labels} && {labels}[{_str(key)}] == {_str(value)}")
    for req in selector.match_expressions:
        key = _str(req.key)
        present = f"({has} && {key} in {labels})"
        if req.operator == "In":
            out.append(f"{present} && {labels}[{key}] in {_literal(req.values)}")
        elif req.operator == "NotIn":
            out.append(f"!{present} || !({labels}[{key}] in {_literal(req.values)})")
        elif req.operator == "Exists":
            out.append(present)
        else:  # DoesNotExist
            out.append(f"!{present}")
    return out


def match_conditions(compiled: CompiledPolicy, now: dt.datetime) -> list[dict[str, str]]:
    """The engine's ``applies`` and ``exempted``, as admission match conditions."""
    match = compiled.policy.spec.match
    conditions = [("spec-changed", _ONLY_SPEC_CHANGES)]
    if match.domains:
        conditions.append(("domains", f"object.spec.domain in {_literal(match.domains)}"))
    if match.classifications:
        values = _literal([str(c) for c in match.classifications])
        conditions.append(("classifications", f"object.spec.classification in {values}"))
    if match.tags:
        conditions.append(
            (
                "tags",
                f"has(object.spec.tags) && object.spec.tags.exists(t, t in {_literal(match.tags)})",
            )
        )
    if match.selector is not None:
        for i, expression in enumerate(_selector_conditions(match.selector)):
            conditions.append((f"selector-{i}", expression))
    exempt = []
    for exc in compiled.policy.spec.exceptions:
        if not in_force(exc, now):
            continue
        clause = f"object.metadata.name == {_str(exc.product)}"
        if exc.domain is not None:
            clause += f" && object.spec.domain == {_str(exc.domain)}"
        exempt.append(f"({clause})")
    if exempt:
        conditions.append(("not-exempted", f"!({' || '.join(exempt)})"))
    return [{"name": n, "expression": e} for n, e in conditions]


def _metadata(name: str, ref: str, generation: int | None = None) -> dict[str, Any]:
    annotations = {ANNOTATION_POLICY: ref}
    if generation is not None:
        annotations[f"{GROUP}/policy-generation"] = str(generation)
    return {
        "name": name,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY, LABEL: "true"},
        "annotations": annotations,
    }


def _policy(name: str, ref: str, spec: dict[str, Any], generation: int | None) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": _metadata(name, ref, generation),
        "spec": {
            # An expression that errors rejects, as an evaluation error is a violation in
            # the engine.
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["dataproducts"],
                    }
                ]
            },
            **spec,
        },
    }


def _binding(name: str, ref: str, namespace: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"policyName": name, "validationActions": ["Deny"]}
    if namespace is not None:
        spec["matchResources"] = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        }
    return {
        "apiVersion": API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": _metadata(name, ref),
        "spec": spec,
    }


def for_policy(
    compiled: CompiledPolicy, *, platform_namespace: str, now: dt.datetime
) -> Admission | None:
    """A block policy's admission objects; None for warn/audit policies and for a policy
    none of whose rules compile (the engine skips what does not compile, so does this)."""
    gp = compiled.policy
    if gp.spec.enforcement != Enforcement.BLOCK or not compiled.rules:
        return None
    by_name = {r.name: r for r in gp.spec.rules}
    validations = []
    for rule in compiled.rules:
        source = by_name[rule.name]
        # `== true`: the apiserver requires a statically bool expression, and a rule over
        # the dynamically typed object is dyn. A non-bool result is then false (blocked),
        # an error stays an error (blocked, failurePolicy Fail): the engine's verdicts.
        expression = f"({source.expression}) == true"
        if source.when:
            expression = f"({source.when}) ? {expression} : true"
        message = " ".join(f"{compiled.ref} [{rule.name}]: {rule.message}".split())
        validations.append({"expression": expression, "message": message, "reason": "Forbidden"})
    name = object_name(gp.metadata.namespace, gp.metadata.name)
    namespace = None if is_global(gp, platform_namespace) else gp.metadata.namespace
    return Admission(
        name,
        _policy(
            name,
            compiled.ref,
            {"matchConditions": match_conditions(compiled, now), "validations": validations},
            gp.metadata.generation,
        ),
        _binding(name, compiled.ref, namespace),
    )


def domain_isolation(platform_namespace: str) -> Admission:
    """The engine's built-in rule (``policy.domain_isolation``): a product lives in a
    namespace labelled for its own domain, never in the platform namespace."""
    labels = "namespaceObject.metadata.labels"
    declared = (
        f"object.metadata.namespace != {_str(platform_namespace)} && has({labels}) && "
        f"{_str(DOMAIN_LABEL)} in {labels} && {labels}[{_str(DOMAIN_LABEL)}] != ''"
    )
    spec = {
        "matchConditions": [{"name": "spec-changed", "expression": _ONLY_SPEC_CHANGES}],
        "variables": [{"name": "isDomain", "expression": declared}],
        "validations": [
            {
                "expression": "variables.isDomain",
                "messageExpression": (
                    f'"{BUILTIN_POLICY} [namespace-is-a-domain]: namespace " + '
                    f"object.metadata.namespace + \" is not a domain's namespace (label it "
                    f'{DOMAIN_LABEL}=" + object.spec.domain + ")"'
                ),
                "reason": "Forbidden",
            },
            {
                "expression": (
                    f"!variables.isDomain || {labels}[{_str(DOMAIN_LABEL)}] == object.spec.domain"
                ),
                "messageExpression": (
                    f'"{BUILTIN_POLICY} [namespace-matches-domain]: spec.domain is " + '
                    'object.spec.domain + " but namespace " + object.metadata.namespace + '
                    f'" belongs to domain " + {labels}[{_str(DOMAIN_LABEL)}]'
                ),
                "reason": "Forbidden",
            },
        ],
    }
    return Admission(
        BUILTIN_NAME,
        _policy(BUILTIN_NAME, BUILTIN_POLICY, spec, None),
        _binding(BUILTIN_NAME, BUILTIN_POLICY, None),
    )


def desired(
    policies: list[CompiledPolicy], *, platform_namespace: str, now: dt.datetime
) -> dict[str, Admission]:
    """Every admission object the operator should keep, by name."""
    out = {BUILTIN_NAME: domain_isolation(platform_namespace)}
    for compiled in policies:
        admission = for_policy(compiled, platform_namespace=platform_namespace, now=now)
        if admission is not None:
            out[admission.name] = admission
    return out
