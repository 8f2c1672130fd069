"""The pull-request check: every repository rule that can be decided offline.

Schema (the CRD's own OpenAPI schema with jsonschema, then its CEL invariants with the
same CEL runtime the engine uses), folder/namespace/domain agreement, duplicates,
policies that do not compile, governance with the shared engine, and lineage. Reading
files is the caller's job (``manifest``); this module only judges documents.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from jsonschema import Draft4Validator

from datamesh.api import crd
from datamesh.api.constants import DEFAULT_PLATFORM_NAMESPACE, DOMAIN_LABEL, namespace_domain
from datamesh.api.fieldpath import field_path
from datamesh.api.models import DataProduct, Enforcement, GovernancePolicy, PortType, Violation
from datamesh.governance import access, pipeline_sql, policy, quality_sql, warehouse_names
from datamesh.governance.breaking_changes import semver
from datamesh.governance.cel import environment
from datamesh.governance.lineage import Graph
from datamesh.meshctl.loader import Document, Problem

_SELF_ENV = environment("self")


@functools.cache
def _schema(kind: str) -> dict[str, Any]:
    source = crd.data_product_crd() if kind == "DataProduct" else crd.governance_policy_crd()
    schema: dict[str, Any] = source["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@functools.cache
def _validator(kind: str) -> Draft4Validator:
    # OpenAPI v3.0 schemas follow JSON Schema draft 4 (boolean exclusiveMinimum).
    return Draft4Validator(_schema(kind))


@functools.cache
def _rule(source: str) -> Any:
    return _SELF_ENV.compile(source)


def _show(value: Any, limit: int = 60) -> str:
    """A value for a message: huge input must not make a huge message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


def _message(error: Any) -> str:
    validator, value, bound = error.validator, error.instance, error.validator_value
    if validator == "required":
        return "required field is missing"
    if validator == "pattern":
        return f"{_show(value)} does not match the required pattern {bound}"
    if validator == "enum":
        return f"{_show(value)} is not one of {', '.join(map(str, bound))}"
    if validator == "type":
        return f"must be {bound}, not {type(value).__name__} {_show(value)}"
    if validator == "maxLength":
        return f"is {len(value)} characters long, more than the maximum of {bound}"
    if validator == "maxItems":
        return f"has {len(value)} items, more than the maximum of {bound}"
    return str(error.message)[:300]


def _with_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Structural defaulting, as the apiserver does before it runs CEL rules."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for key, sub in schema["properties"].items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = _with_defaults(sub, out[key])
        return out
    if isinstance(value, list) and "items" in schema:
        return [_with_defaults(schema["items"], v) for v in value]
    return value


def _nodes(
    schema: Mapping[str, Any], value: Any, path: tuple[Any, ...] = ()
) -> Iterator[tuple[Mapping[str, Any], Any, tuple[Any, ...]]]:
    """Every (schema, value, path) of a document that its schema describes, parents first."""
    yield schema, value, path
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _nodes(sub, value[key], (*path, key))
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _nodes(schema["items"], item, (*path, i))


def _unknown_fields(schema: Mapping[str, Any], value: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Fields the schema does not know (the apiserver's strict field validation)."""
    return [
        ((*path, key), "unknown field")
        for node, sub, path in _nodes(schema, value)
        if isinstance(sub, dict) and "properties" in node
        for key in sub
        if key not in node["properties"]
    ]


def _duplicate_keys(schema: Mapping[str, Any], value: Any) -> list[tuple[tuple[Any, ...], str]]:
    """Items of a "map" list (``x-kubernetes-list-type: map``) whose keys repeat an
    earlier item's: the apiserver refuses them with "Duplicate value"."""
    out = []
    for node, sub, path in _nodes(schema, value):
        if node.get("x-kubernetes-list-type") != "map" or not isinstance(sub, list):
            continue
        keys = node.get("x-kubernetes-list-map-keys", [])
        seen: set[tuple[str, ...]] = set()
        for i, item in enumerate(sub):
            if not isinstance(item, dict):
                continue
            key = tuple(repr(item.get(k)) for k in keys)
            if key in seen:
                shown = ", ".join(f"{k} {item.get(k)!r}" for k in keys)
                out.append(((*path, i), f"Duplicate value: {shown} is already in the list"))
            seen.add(key)
    return out


def _cel_rules(schema: Mapping[str, Any], value: Any) -> list[tuple[tuple[Any, ...], str]]:
    """The CRD's x-kubernetes-validations that do not hold, with the field they name."""
    out = []
    for node, sub, path in _nodes(schema, value):
        for rule in node.get("x-kubernetes-validations", []):
            result = _rule(rule["rule"]).eval(data={"self": sub})
            if not (result.type().name().lower() == "bool" and result.plain_value() is True):
                where = tuple(p for p in rule.get("fieldPath", "").split(".") if p)
                out.append(((*path, *where), str(rule["message"])))
    return out


def schema_problems(doc: Document) -> list[Problem]:
    """What the apiserver would refuse, named by field and line."""
    raw = doc.raw
    found: list[tuple[tuple[Any, ...], str]] = []
    meta = raw.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        # The apiserver refuses a nameless object before any schema or rule runs.
        where: tuple[Any, ...] = ("metadata", "name")
        return [
            Problem(
                doc.file,
                doc.line_of(where),
                doc.ref,
                "metadata.name",
                "required field is missing",
            )
        ]
    for error in sorted(_validator(doc.kind).iter_errors(raw), key=lambda e: list(e.path)):
        path = tuple(error.absolute_path)
        if error.validator == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            path = (*path, *missing[:1])
        found.append((path, _message(error)))
    schema = _schema(doc.kind)
    found += _unknown_fields(schema, raw)
    found += _duplicate_keys(schema, raw)
    if not found:
        found += _cel_rules(schema, _with_defaults(schema, raw))
    return [
        Problem(doc.file, doc.line_of(path), doc.ref, field_path(path), message)
        for path, message in found
    ]


# -- the whole repository -------------------------------------------------------------------


@dataclass
class ProductResult:
    file: str
    line: int
    namespace: str
    name: str
    product: DataProduct | None
    errors: list[Problem] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def compliant(self) -> bool:
        return self.product is not None and not any(
            v.enforcement == Enforcement.BLOCK for v in self.violations
        )


@dataclass
class PolicyResult:
    file: str
    line: int
    name: str
    compiled: policy.CompiledPolicy | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    document: Document | None = None  # for the lines of its parts

    @property
    def valid(self) -> bool:
        return self.compiled is not None and not self.errors


@dataclass
class Report:
    products: list[ProductResult] = field(default_factory=list)
    policies: list[PolicyResult] = field(default_factory=list)
    other: list[Problem] = field(default_factory=list)  # files that are not one object

    @property
    def errors(self) -> int:
        return (
            sum(len(p.errors) for p in self.products)
            + sum(len(p.errors) for p in self.policies)
            + len(self.other)
        )

    @property
    def blocking(self) -> int:
        return sum(
            1 for p in self.products for v in p.violations if v.enforcement == Enforcement.BLOCK
        )

    @property
    def warnings(self) -> int:
        return sum(
            1 for p in self.products for v in p.violations if v.enforcement != Enforcement.BLOCK
        ) + sum(len(p.warnings) for p in self.policies)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.blocking == 0

    def only(self, files: set[str]) -> Report:
        """The part of the report about ``files``: what ``meshctl validate FILE...``
        shows after checking them in the context of the whole repository."""
        return Report(
            products=[p for p in self.products if p.file in files],
            policies=[p for p in self.policies if p.file in files],
            other=[p for p in self.other if p.file in files],
        )

    def to_json(self) -> dict[str, Any]:
        def problem(p: Problem) -> dict[str, Any]:
            return {"line": p.line, "field": p.field, "message": p.message}

        return {
            "products": [
                {
                    "file": p.file,
                    "namespace": p.namespace,
                    "name": p.name,
                    "compliant": p.compliant,
                    "errors": [problem(e) for e in p.errors],
                    "violations": [v.model_dump(mode="json") for v in p.violations],
                }
                for p in self.products
            ],
            "policies": [
                {
                    "file": p.file,
                    "name": p.name,
                    "valid": p.valid,
                    "errors": [problem(e) for e in p.errors],
                    "warnings": [problem(w) for w in p.warnings],
                }
                for p in self.policies
            ],
            "errors": [problem(e) | {"file": e.file} for e in self.other],
            "summary": {
                "products": len(self.products),
                "errors": self.errors,
                "blocking": self.blocking,
                "warnings": self.warnings,
            },
        }


def _meta(doc: Document) -> tuple[str, str]:
    meta = doc.raw.get("metadata") if isinstance(doc.raw, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def validate(
    documents: Iterable[Document],
    load_problems: Iterable[Problem],
    *,
    now: dt.datetime,
    platform_namespace: str = DEFAULT_PLATFORM_NAMESPACE,
) -> Report:
    report = Report()
    documents = list(documents)
    doc_files = {d.file for d in documents}
    ours = ("DataProduct", "GovernancePolicy")
    report.other.extend(
        p
        for p in load_problems
        if p.file not in doc_files
        or not any(d.file == p.file and p in d.problems and d.kind in ours for d in documents)
    )
    namespace_domains: dict[str, str | None] = {}
    for doc in documents:
        if doc.kind == "Namespace":
            _, name = _meta(doc)
            labels = (doc.raw.get("metadata") or {}).get("labels") or {}
            namespace_domains[name] = namespace_domain(labels)

    seen: dict[tuple[str, str, str], Document] = {}
    for doc in documents:
        if doc.kind not in ("DataProduct", "GovernancePolicy"):
            continue
        namespace, name = _meta(doc)
        # A wrong apiVersion says more than the schema of the right one would.
        problems = [p for p in doc.problems if p.field == "apiVersion"]
        if not problems and isinstance(doc.raw, dict):
            problems = schema_problems(doc)
        if not problems:
            problems = list(doc.problems)
        key = (doc.kind, namespace, name)
        if key in seen:
            problems.append(
                Problem(
                    doc.file,
                    doc.line_of(["metadata", "name"]),
                    doc.ref,
                    "metadata.name",
                    f"duplicate {doc.kind} {namespace}/{name}; also in "
                    f"{seen[key].file}:{seen[key].line}",
                )
            )
        seen.setdefault(key, doc)
        obj = doc.obj if not problems else None
        if doc.kind == "DataProduct":
            assert obj is None or isinstance(obj, DataProduct)
            if obj is not None:
                problems.extend(_placement(doc, obj))
                problems.extend(_warehouse_names(doc, obj))
                problems.extend(_pipeline_sql(doc, obj))
                problems.extend(_check_sql(doc, obj))
            report.products.append(
                ProductResult(doc.file, doc.line, namespace, name, obj, problems)
            )
        else:
            assert obj is None or isinstance(obj, GovernancePolicy)
            if obj is not None:
                problems.extend(
                    _policy_scope(doc, namespace, platform_namespace, namespace_domains)
                )
                obj = obj if not problems else None
            compiled = policy.compile_policy(obj) if obj is not None else None
            if compiled is not None:
                for error, (index, where) in zip(compiled.errors, compiled.error_at, strict=True):
                    path = ("spec", "rules", index, where)
                    problems.append(
                        Problem(doc.file, doc.line_of(path), doc.ref, field_path(path), error)
                    )
            report.policies.append(
                PolicyResult(doc.file, doc.line, name, compiled, problems, document=doc)
            )

    policies = [p.compiled for p in report.policies if p.compiled is not None]
    products = [p for p in report.products if p.product is not None]
    by_ref = {r.product.ref: r.product for r in products if r.product is not None}
    for result in products:
        assert result.product is not None
        evaluation = policy.evaluate(
            result.product,
            policies,
            now=now,
            platform_namespace=platform_namespace,
            namespace_domain=namespace_domains.get(result.namespace),
            builtin=access.violations(result.product, by_ref.get),
        )
        result.violations = list(evaluation.violations)
    _lineage(products)
    _stale_exceptions(report, [r.product for r in products if r.product], platform_namespace)
    return report


def _stale_exceptions(report: Report, products: list[DataProduct], platform_namespace: str) -> None:
    """A warning on each exception that names no product in its policy's scope."""
    for result in report.policies:
        if result.compiled is None:
            continue
        compiled = result.compiled
        for index, message in policy.stale_exceptions(
            compiled.policy, products, platform_namespace
        ):
            path = ("spec", "exceptions", index, "product")
            doc = result.document
            line = doc.line_of(path) if doc is not None else result.line
            ref = doc.ref if doc is not None else result.name
            result.warnings.append(Problem(result.file, line, ref, field_path(path), message))


def _policy_scope(
    doc: Document,
    namespace: str,
    platform_namespace: str,
    namespace_domains: Mapping[str, str | None],
) -> list[Problem]:
    """A policy lives in the platform namespace (global) or a domain's namespace (that
    domain's); anywhere else it would govern nothing, and without a namespace kubectl
    would put it wherever the user's context points."""
    if not namespace:
        message = (
            f"a policy must name its namespace: {platform_namespace!r} for a global policy, "
            "or a domain's namespace for that domain's"
        )
    elif namespace == platform_namespace or namespace_domains.get(namespace):
        return []
    else:
        message = (
            f"namespace {namespace!r} is neither the platform namespace "
            f"{platform_namespace!r} nor a domain's namespace (one labelled "
            f"{DOMAIN_LABEL} under products/): the policy would govern nothing"
        )
    line = doc.line_of(["metadata", "namespace"] if namespace else ["metadata"])
    return [Problem(doc.file, line, doc.ref, "metadata.namespace", message)]


def _placement(doc: Document, product: DataProduct) -> list[Problem]:
    """products/<domain>/<name>.yaml, in namespace <domain>, with spec.domain <domain>."""
    parts = PurePosixPath(doc.file).parts
    out = []
    if "products" in parts and len(parts) >= parts.index("products") + 3:
        folder = parts[parts.index("products") + 1]
        if product.spec.domain != folder:
            out.append(
                Problem(
                    doc.file,
                    doc.line_of(["spec", "domain"]),
                    doc.ref,
                    "spec.domain",
                    f"is {product.spec.domain!r} but the file is in "
                    f"the folder of domain {folder!r}",
                )
            )
        if product.metadata.namespace != folder:
            out.append(
                Problem(
                    doc.file,
                    doc.line_of(["metadata", "namespace"]),
                    doc.ref,
                    "metadata.namespace",
                    f"is {product.metadata.namespace!r} but products in "
                    f"products/{folder}/ live in namespace {folder!r}",
                )
            )
    if not product.metadata.namespace:
        out.append(
            Problem(
                doc.file,
                doc.line_of(["metadata"]),
                doc.ref,
                "metadata.namespace",
                "required: the domain's namespace",
            )
        )
    return out


def _warehouse_names(doc: Document, product: DataProduct) -> list[Problem]:
    """Names the warehouse would truncate (over 63 bytes), refused before provisioning."""
    spec = product.spec
    ports = [(i, p.name) for i, p in enumerate(spec.output_ports) if p.type == PortType.TABLE]
    return [
        Problem(doc.file, doc.line_of(list(path)), doc.ref, field_path(path), message)
        for path, message in warehouse_names.problems(
            spec.domain,
            product.metadata.name,
            semver(spec.version)[0],
            ports,
            spec.access.readers.domains,
        )
    ]


def _pipeline_sql(doc: Document, product: DataProduct) -> list[Problem]:
    """A query the SQL runner would refuse when it runs: refused in the pull request."""
    return [
        Problem(doc.file, doc.line_of(list(path)), doc.ref, field_path(path), message)
        for path, message in pipeline_sql.problems(product)
    ]


def _check_sql(doc: Document, product: DataProduct) -> list[Problem]:
    """A custom quality check that would write is refused before anything runs it."""
    out = []
    for i, check in enumerate(product.spec.quality_checks):
        reason = quality_sql.refusal(check.sql) if check.sql is not None else None
        if reason is not None:
            path = ("spec", "qualityChecks", i, "sql")
            out.append(
                Problem(doc.file, doc.line_of(list(path)), doc.ref, field_path(path), reason)
            )
    return out


def _lineage(results: list[ProductResult]) -> None:
    by_ref = {r.product.ref: r for r in results if r.product is not None}
    graph = Graph.of(r.product for r in results if r.product is not None)
    for ref, result in by_ref.items():
        for missing in graph.missing(ref):
            result.errors.append(
                Problem(
                    result.file,
                    result.line,
                    f"DataProduct/{result.namespace}/{result.name}",
                    "spec.inputPorts",
                    f"upstream product {missing} does not exist",
                )
            )
    for cycle in graph.cycles():
        for ref in set(cycle):
            result = by_ref[ref]
            result.errors.append(
                Problem(
                    result.file,
                    result.line,
                    f"DataProduct/{result.namespace}/{result.name}",
                    "spec.inputPorts",
                    "lineage cycle: " + " -> ".join(cycle),
                )
            )
