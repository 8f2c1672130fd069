"""Generates the CustomResourceDefinitions from the pydantic models (``make crds``).

Pydantic emits JSON Schema; the apiserver wants a *structural* OpenAPI v3 schema: no
``$ref``, no ``anyOf`` with null, a ``type`` on every node, ``x-kubernetes-*`` extensions.
This module translates one into the other so that the models stay the only source.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault

from datamesh.api import models
from datamesh.api.constants import GROUP, VERSION

# JSON Schema keywords that carry over to a structural schema unchanged.
_KEEP = {
    "type",
    "format",
    "description",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "default",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}


class _FactoryDefaults(GenerateJsonSchema):
    """Also writes the value of a ``default_factory`` as the default, so that the apiserver
    stores a spec exactly as the models fill it in. Policy rules see the same object at
    admission (the stored form) and in the engine (the model's dump): a rule reading
    ``object.spec.access.readers.domains`` must not find it in one and miss it in the
    other."""

    def get_default_value(self, schema: Any) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()
        return schema.get("default", NoDefault)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _models_by_title(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every ApiModel reachable from ``root``, keyed by the name pydantic uses in $defs."""
    seen: dict[str, type[BaseModel]] = {}
    stack: list[type[BaseModel]] = [root]
    while stack:
        cls = stack.pop()
        if cls.__name__ in seen:
            continue
        seen[cls.__name__] = cls
        for info in cls.model_fields.values():
            for arg in _type_args(info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    stack.append(arg)
    return seen


def _type_args(tp: Any) -> list[Any]:
    out = [tp]
    for arg in getattr(tp, "__args__", ()) or ():
        out.extend(_type_args(arg))
    meta = getattr(tp, "__origin__", None)
    if meta is not None:
        out.append(meta)
    return out


def _structural(
    node: dict[str, Any],
    defs: dict[str, Any],
    classes: dict[str, type[BaseModel]],
    collection_defaults: bool,
) -> dict[str, Any]:
    def inner(child: dict[str, Any]) -> dict[str, Any]:
        return _structural(child, defs, classes, collection_defaults)

    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        resolved = inner(merged)
        rules = getattr(classes.get(name), "validations", None)
        if rules:
            resolved["x-kubernetes-validations"] = list(rules)
        return resolved
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {node['anyOf']} structurally")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return inner({**options[0], **rest})

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _KEEP:
            out[key] = value
    if out.get("default") is None:
        out.pop("default", None)
    elif isinstance(out["default"], (list, dict)):
        if collection_defaults:
            out["default"] = _without_nulls(out["default"])
        else:  # a status: only the operator writes it, defaults would only add noise
            out.pop("default")
    for bound, key in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # JSON Schema 2020 gives the bound; OpenAPI v3.0 wants the bound plus a flag.
        if isinstance(out.get(bound), (int, float)) and not isinstance(out[bound], bool):
            out[key] = out[bound]
            out[bound] = True
    if "const" in node:
        out["enum"] = [node["const"]]
    if node.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties", {})
        if props:
            out["properties"] = {k: inner(v) for k, v in props.items()}
        required = node.get("required")
        if required:
            out["required"] = list(required)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = inner(extra)
    if node.get("type") == "array":
        out["items"] = inner(node["items"])
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "number" and "format" not in out:
        out["format"] = "double"
    return out


def openapi_schema(cls: type[BaseModel], *, status: bool = False) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model (spec or status)."""
    raw = cls.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.pop("$defs", {})
    classes = _models_by_title(cls)
    schema = _structural(raw, defs, classes, collection_defaults=not status)
    rules = getattr(cls, "validations", None)
    if rules:
        schema["x-kubernetes-validations"] = list(rules)
    return schema


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    description: str,
    columns: list[dict[str, Any]],
    root_rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(spec),
            "status": openapi_schema(status, status=True),
        },
    }
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "datamesh"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["datamesh"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _col(name: str, path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    return col


def data_product_crd() -> dict[str, Any]:
    return _crd(
        "DataProduct",
        "dataproducts",
        "dp",
        models.DataProductSpec,
        models.DataProductStatus,
        "A data product owned by a domain: its contract, SLA, quality checks, lineage and "
        "access, reconciled against governance policy by the datamesh operator.",
        [
            _col("Domain", ".spec.domain"),
            _col("Version", ".spec.version"),
            _col("Class", ".spec.classification"),
            _col("Compliant", ".status.compliance.compliant", "boolean"),
            _col("Phase", ".status.phase"),
            _col("Quality", ".status.quality.summary"),
            _col("Age", ".metadata.creationTimestamp", "date"),
            _col("Owner", ".spec.owner.team", priority=1),
            _col("Violations", ".status.compliance.violationCount", "integer", priority=1),
        ],
        root_rules=[
            models.cel(
                f"size(self.metadata.name) <= {models.MAX_PRODUCT_NAME}",
                f"metadata.name must be at most {models.MAX_PRODUCT_NAME} characters: the names "
                "of the product's storage claim, CronJob and other children derive from it",
            )
        ],
    )


def governance_policy_crd() -> dict[str, Any]:
    return _crd(
        "GovernancePolicy",
        "governancepolicies",
        "gp",
        models.GovernancePolicySpec,
        models.GovernancePolicyStatus,
        "A federated governance policy: CEL rules over data products. Global in the "
        "platform namespace, domain-scoped in a domain namespace.",
        [
            _col("Enforcement", ".spec.enforcement"),
            _col("Matched", ".status.matched", "integer"),
            _col("Violating", ".status.violating", "integer"),
            _col("Valid", '.status.conditions[?(@.type=="Valid")].status'),
            _col("Age", ".metadata.creationTimestamp", "date"),
        ],
    )


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, as committed under ``crds/``."""
    return {
        "datamesh.io_dataproducts.yaml": data_product_crd(),
        "datamesh.io_governancepolicies.yaml": governance_policy_crd(),
    }


HEADER = "# Generated by `make crds` from operator/datamesh/api/models.py. Do not edit.\n"


def render(crd: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)
