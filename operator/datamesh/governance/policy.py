"""The governance engine: which policies apply to a product, and what they say about it.

Pure and typed: no I/O, no clock (the caller passes ``now``). The operator, ``meshctl
validate`` and the admission parity tests all call ``evaluate``, so that what passes
review is what the cluster enforces.

Rules are CEL, bound as ``object`` (the whole product, as the apiserver stores it), the
same variable a ValidatingAdmissionPolicy uses, so a block rule can be enforced at
admission unchanged. CEL runs on ``cel-expr-python``, Google's binding of the C++ CEL
runtime. Rules are type-checked as Kubernetes does, against the product's declared type
(``cel_types``, from the CRD schema): an unknown function, variable or field, or a result
that is not a bool, is a compile error. They then run dynamically typed on the product's
plain document; a rule over a 20-field product takes a few microseconds.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cel_expr_python import cel

from datamesh.api.constants import API_VERSION, DEFAULT_PLATFORM_NAMESPACE, DOMAIN_LABEL
from datamesh.api.models import (
    DataProduct,
    Enforcement,
    EvaluatedPolicy,
    GovernancePolicy,
    LabelSelector,
    PolicyException,
    Severity,
    Violation,
)
from datamesh.governance import cel_types
from datamesh.governance.cel import environment

BUILTIN_POLICY = "builtin/domain-isolation"

# Rules run in a dynamically typed environment (the product is a plain document), once
# the checker's environment, where `object` has the product's declared type, accepts them.
_ENV = environment("object")
_RESULT_TYPES = ("bool", "dyn")


_CHECKER_LOCK = threading.Lock()


@functools.cache
def _build_checker() -> Any:
    schema = cel_types.product_schema()
    pool = cel_types.descriptor_pool_for(schema)
    return environment("object", cel.Type(cel_types.ROOT_MESSAGE), pool)


def _checker() -> Any:
    """The type-checking environment, built on first use (from the CRD schema, ~50 ms),
    once, though the operator's threads compile policies at the same time."""
    with _CHECKER_LOCK:
        return _build_checker()


_ENFORCEMENT_RANK = {Enforcement.BLOCK: 0, Enforcement.WARN: 1, Enforcement.AUDIT: 2}
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.ERROR: 1, Severity.WARNING: 2, Severity.INFO: 3}
_MAX_ERROR = 300


# -- compiling ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    name: str
    expression: Any  # cel.Expression
    when: Any | None  # cel.Expression
    message: str


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy with its rules compiled once (per generation) for many evaluations."""

    policy: GovernancePolicy
    rules: tuple[CompiledRule, ...]
    errors: tuple[str, ...]  # one per rule that does not compile
    # Where each error is: (index of the rule, "expression" or "when"), for messages
    # that point at the rule's own line.
    error_at: tuple[tuple[int, str], ...] = ()

    @property
    def ref(self) -> str:
        return self.policy.ref

    @property
    def valid(self) -> bool:
        return not self.errors


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


# Functions whose result can be many times larger than their inputs: chained, they let a
# rule of a few hundred characters build gigabytes (`d.replace('x', d).replace('x', d)`
# over a 2,048-character description ran 46 s). Kubernetes bounds these with a cost
# budget; this runtime has none to configure, so policies may not call them at all.
# Comprehensions are bounded by the runtime's iteration budget (an error, not a hang).
UNBOUNDED_FUNCTIONS = ("replace", "join", "format")
_STRING_LITERAL = re.compile(
    r"'''.*?'''" r'|""".*?"""' r"|'(?:\\.|[^'\\])*'" r'|"(?:\\.|[^"\\])*"', re.S
)
_UNBOUNDED_CALL = re.compile(r"\b(" + "|".join(UNBOUNDED_FUNCTIONS) + r")\s*\(")


def _unbounded_call(source: str) -> str | None:
    found = _UNBOUNDED_CALL.search(_STRING_LITERAL.sub("''", source))
    return found.group(1) if found else None


# Kubernetes refuses a constant duration, timestamp or regex that does not parse when it
# compiles the rule (``duration('2x')``: "invalid duration argument"); this runtime would
# only fail when the rule runs, so such arguments are tried once here.
_LITERAL_CALL = re.compile(r"(?:\b(duration|timestamp)|\.(matches))\s*\(\s*([rR]?)$")
_CALL_END = re.compile(r"\s*\)")


def _invalid_literal(source: str) -> str | None:
    for literal in _STRING_LITERAL.finditer(source):
        call = _LITERAL_CALL.search(source, 0, literal.start())
        if call is None or not _CALL_END.match(source, literal.end()):
            continue
        function = call.group(1) or call.group(2)
        argument = call.group(3) + literal.group(0)
        probe = f"''.matches({argument})" if function == "matches" else f"{function}({argument})"
        try:
            value = _ENV.compile(probe).eval()
            error = value.plain_value() if value.type().name().lower() == "error" else None
        except Exception as exc:
            error = exc
        if error is not None:
            reason = str(error).removeprefix("INVALID_ARGUMENT: ")
            return _short(f"invalid {function} argument {argument}: {reason}")
    return None


def compile_expression(source: str) -> tuple[Any | None, str | None]:
    """(program, None) or (None, the checker's message). Never raises. The program is
    the dynamically typed one: it runs on the product's document."""
    unbounded = _unbounded_call(source)
    if unbounded:
        return None, (
            f"{unbounded}() is not allowed in policies: its result can grow without bound "
            "and stall every reconcile"
        )
    try:
        checked = _checker().compile(source)
    except Exception as exc:  # the binding raises RuntimeError with the checker's text
        return None, _checker_message(str(exc))
    result = checked.return_type().name()
    if result.lower() not in _RESULT_TYPES:
        return None, f"the expression must evaluate to bool, not {_type_name(result)}"
    invalid = _invalid_literal(source)
    if invalid:
        return None, invalid
    # Checked against the declared type, the rule compiles dynamically too: evaluation
    # reads the product's document, never a message with protobuf's default values.
    return _ENV.compile(source), None


def _type_name(name: str) -> str:
    """``BOOL`` -> ``bool``; a message keeps its name (``DataProduct.Spec.Owner``)."""
    return name.lower() if name.isupper() else name


def _checker_message(text: str) -> str:
    """The checker's first lines, without the status prefixes; an undefined field of
    the product or its metadata says what rules can read."""
    text = text.removeprefix("INVALID_ARGUMENT: ").removeprefix("ERROR: ")
    first, _, rest = text.split(" [INVALID_ARGUMENT]")[0].partition("\n")
    root = f"not found in struct '{cel_types.ROOT_MESSAGE}"
    if f"{root}.Metadata'" in first:
        first += f" (rules see metadata.{', metadata.'.join(cel_types.METADATA_FIELDS)})"
    elif f"{root}'" in first:
        first += " (rules see apiVersion, kind, metadata and spec)"
    return _short(f"{first}\n{rest}")


def compile_policy(policy: GovernancePolicy) -> CompiledPolicy:
    rules: list[CompiledRule] = []
    errors: list[str] = []
    error_at: list[tuple[int, str]] = []
    for index, rule in enumerate(policy.spec.rules):
        program, error = compile_expression(rule.expression)
        where = "expression"
        when = None
        if error is None and rule.when:
            when, error = compile_expression(rule.when)
            where = "when"
            if error:
                error = f"when: {error}"
        if error:
            errors.append(f"rule {rule.name}: {error}")
            error_at.append((index, where))
            continue
        rules.append(CompiledRule(rule.name, program, when, rule.message))
    return CompiledPolicy(policy, tuple(rules), tuple(errors), tuple(error_at))


# -- which policies apply -------------------------------------------------------------------


def is_global(policy: GovernancePolicy, platform_namespace: str) -> bool:
    return policy.metadata.namespace == platform_namespace


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and (not present or labels[req.key] not in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def applies(policy: GovernancePolicy, product: DataProduct, platform_namespace: str) -> bool:
    """Global policies apply everywhere; a domain policy only in its own namespace."""
    if not is_global(policy, platform_namespace) and (
        policy.metadata.namespace != product.metadata.namespace
    ):
        return False
    match = policy.spec.match
    spec = product.spec
    if match.domains and spec.domain not in match.domains:
        return False
    if match.classifications and spec.classification not in match.classifications:
        return False
    if match.tags and not set(match.tags) & set(spec.tags):
        return False
    return selector_matches(match.selector, product.metadata.labels)


def stale_exceptions(
    policy: GovernancePolicy, products: Iterable[DataProduct], platform_namespace: str
) -> list[tuple[int, str]]:
    """(index, message) for each exception that names no product in the policy's scope
    (any namespace for a global policy, its own for a domain's): a typo, or a product
    renamed or gone, which leaves an exemption waiting to apply to a future namesake."""
    in_scope = [
        p
        for p in products
        if is_global(policy, platform_namespace)
        or p.metadata.namespace == policy.metadata.namespace
    ]
    out = []
    for index, exc in enumerate(policy.spec.exceptions):
        if not any(
            p.metadata.name == exc.product and exc.domain in (None, p.spec.domain) for p in in_scope
        ):
            where = f"domain {exc.domain!r}" if exc.domain else "the policy's scope"
            out.append(
                (index, f"exception for {exc.product!r}: no such product in {where}; remove it")
            )
    return out


def parse_time(text: str) -> dt.datetime:
    """An exception's ``expires``: a date (end of that day, UTC) or an RFC 3339 time."""
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def in_force(exception: PolicyException, now: dt.datetime) -> bool:
    """Whether an exception still relaxes its policy at ``now``: the engine and the
    generated admission policies both ask this, so they agree on the day it lapses."""
    try:
        return parse_time(exception.expires) > now
    except ValueError:
        return False  # an unparsable date never grants an exception


def exempted(policy: GovernancePolicy, product: DataProduct, now: dt.datetime) -> bool:
    """Exceptions live on the policy they relax, so a domain policy can only ever exempt
    a product from itself, never from a global policy."""
    return any(
        exc.product == product.metadata.name
        and exc.domain in (None, product.spec.domain)
        and in_force(exc, now)
        for exc in policy.spec.exceptions
    )


# -- evaluating -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """The engine's verdict on one product."""

    violations: tuple[Violation, ...]
    policies: tuple[EvaluatedPolicy, ...]
    exempted: tuple[str, ...] = field(default=())

    @property
    def compliant(self) -> bool:
        return self.blocking == 0

    def _count(self, enforcement: Enforcement) -> int:
        return sum(1 for v in self.violations if v.enforcement == enforcement)

    @property
    def blocking(self) -> int:
        return self._count(Enforcement.BLOCK)

    @property
    def warnings(self) -> int:
        return self._count(Enforcement.WARN)

    @property
    def audits(self) -> int:
        return self._count(Enforcement.AUDIT)


def product_document(product: DataProduct) -> dict[str, Any]:
    """The product as the apiserver stores it (camelCase, defaults filled): what rules see."""
    return {
        "apiVersion": API_VERSION,
        "kind": "DataProduct",
        "metadata": {
            "name": product.metadata.name,
            "namespace": product.metadata.namespace,
            "labels": dict(product.metadata.labels),
        },
        "spec": product.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


def _run(program: Any, activation: Any) -> tuple[bool | None, str | None]:
    """(verdict, None), or (None, why there is no verdict)."""
    try:
        value = program.eval(activation)
    except Exception as exc:  # the binding reports errors as values; be safe anyway
        return None, f"evaluation error: {_short(str(exc) or type(exc).__name__)}"
    kind = value.type().name().lower()
    if kind == "bool":
        return bool(value.plain_value()), None
    if kind == "error":
        text = str(value.plain_value())
        # "NOT_FOUND: Key not found in map : ..." -> "Key not found in map : ..."
        head, _, rest = text.partition(": ")
        if rest and head.isupper():
            text = rest
        return None, f"evaluation error: {_short(text)}"
    return None, f"the expression must return a boolean, got {kind}"


def _run_rule(rule: CompiledRule, activation: Any) -> str | None:
    """None when the rule holds (or does not apply), else the message to report."""
    if rule.when is not None:
        gate, problem = _run(rule.when, activation)
        if problem:
            return f"{rule.message} (when: {problem})"
        if not gate:
            return None
    verdict, problem = _run(rule.expression, activation)
    if problem:
        return f"{rule.message} ({problem})"
    return None if verdict else rule.message


class Unchecked(Enum):
    """``evaluate`` was not told the namespace's domain: skip domain isolation (a policy's
    own status counts only its rules)."""

    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED


def domain_isolation(
    product: DataProduct, namespace_domain: str | None, platform_namespace: str
) -> Violation | None:
    """The built-in rule: a product lives in a namespace declared for its own domain.
    ``namespace_domain`` is the namespace's declared domain (``api.constants``), None
    when it declares none; the platform namespace is never a domain's."""
    namespace = product.metadata.namespace

    def violation(rule: str, message: str) -> Violation:
        return Violation(
            policy=BUILTIN_POLICY,
            rule=rule,
            enforcement=Enforcement.BLOCK,
            severity=Severity.CRITICAL,
            message=message,
        )

    if namespace == platform_namespace or namespace_domain is None:
        why = (
            "is the platform namespace"
            if namespace == platform_namespace
            else f"has no {DOMAIN_LABEL} label"
        )
        return violation(
            "namespace-is-a-domain",
            f"namespace {namespace!r} {why}: products live only in a domain's namespace "
            f"(label the namespace {DOMAIN_LABEL}={product.spec.domain}, or move the product)",
        )
    if namespace_domain != product.spec.domain:
        return violation(
            "namespace-matches-domain",
            f"spec.domain is {product.spec.domain!r} but namespace {namespace!r} belongs to "
            f"domain {namespace_domain!r}; a product must live in its own domain's namespace",
        )
    return None


def evaluate(
    product: DataProduct,
    policies: Iterable[CompiledPolicy],
    *,
    now: dt.datetime,
    platform_namespace: str = DEFAULT_PLATFORM_NAMESPACE,
    namespace_domain: str | Unchecked | None = UNCHECKED,
    builtin: Sequence[Violation] = (),
) -> Evaluation:
    """Evaluate every applicable policy. Deterministic: the same inputs, the same output.

    ``namespace_domain`` is the domain the product's namespace is declared for (None: no
    domain's); unless ``UNCHECKED``, the built-in domain isolation applies too.
    ``builtin`` are violations of built-in rules the caller decided (access along
    lineage needs the other products), reported with the rest.
    """
    violations: list[Violation] = list(builtin)
    evaluated: list[EvaluatedPolicy] = []
    exempt: list[str] = []
    if not isinstance(namespace_domain, Unchecked):
        isolation = domain_isolation(product, namespace_domain, platform_namespace)
        if isolation is not None:
            violations.append(isolation)
    activation: Any = None
    for compiled in sorted(
        policies, key=lambda p: (not is_global(p.policy, platform_namespace), p.ref)
    ):
        policy = compiled.policy
        if not applies(policy, product, platform_namespace):
            continue
        evaluated.append(
            EvaluatedPolicy(policy=compiled.ref, generation=policy.metadata.generation)
        )
        if exempted(policy, product, now):
            exempt.append(compiled.ref)
            continue
        if activation is None:
            activation = _ENV.Activation({"object": product_document(product)})
        for rule in compiled.rules:
            message = _run_rule(rule, activation)
            if message is not None:
                violations.append(
                    Violation(
                        policy=compiled.ref,
                        rule=rule.name,
                        enforcement=compiled.policy.spec.enforcement,
                        severity=compiled.policy.spec.severity,
                        message=message,
                    )
                )
    violations.sort(
        key=lambda v: (
            _ENFORCEMENT_RANK[Enforcement(v.enforcement)],
            _SEVERITY_RANK[Severity(v.severity)],
            v.policy,
            v.rule,
        )
    )
    return Evaluation(tuple(violations), tuple(evaluated), tuple(exempt))


def matching_products(
    policy: GovernancePolicy, products: Sequence[DataProduct], platform_namespace: str
) -> list[DataProduct]:
    return [p for p in products if applies(policy, p, platform_namespace)]
