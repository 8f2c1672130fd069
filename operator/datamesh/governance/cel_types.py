"""The product's declared type, for the CEL type checker.

Kubernetes type-checks a rule against the resource's OpenAPI schema: a field the schema
does not have is "undefined field", a string is not a bool. cel-expr-python declares
typed variables only as protobuf messages, so this module turns the DataProduct CRD's
schema (generated from the models: the one source) into message descriptors, built once
in code. They serve the checker only; rules still run on plain dicts, so no protobuf
default value ever reaches an evaluation.

Kubernetes' mapping: object -> message (or ``map<string, V>`` for additionalProperties),
string -> string, integer -> int, number -> double, boolean -> bool, array -> list,
x-kubernetes-int-or-string -> dyn (``google.protobuf.Value``). A property that is not a
CEL identifier, or a schema node without a type, is not visible, as in Kubernetes. A list
or map directly inside a list or map holds dyn: protobuf cannot nest them.

``object`` is the document the engine evaluates (``policy.product_document``): apiVersion,
kind, metadata (name, namespace, labels) and spec. The apiserver's ``object`` is wider
(all of ObjectMeta, status), but the engine never sees the rest, so a rule reading it
could only ever fail in the engine: it is refused here instead, before it can diverge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import (  # type: ignore[import-untyped]
    descriptor_pb2,
    descriptor_pool,
    struct_pb2,
)

from datamesh.api import crd

ROOT_MESSAGE = "DataProduct"
_FILE = "datamesh/cel/dataproduct.proto"
_STRUCT_FILE = "google/protobuf/struct.proto"
_FIELD = descriptor_pb2.FieldDescriptorProto
# Kubernetes escapes other property names (``a-b`` is ``a__dash__b``); the engine reads
# dicts by the real name, so such a property could not be read the same way in both.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# What ``policy.product_document`` puts in ``metadata``: the engine drops the rest.
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
METADATA_FIELDS = tuple(METADATA_SCHEMA["properties"])

_SCALARS = {
    "string": _FIELD.TYPE_STRING,
    "integer": _FIELD.TYPE_INT64,
    "number": _FIELD.TYPE_DOUBLE,
    "boolean": _FIELD.TYPE_BOOL,
}
# Kubernetes reads these string formats as timestamps, durations and bytes; the engine
# would read the stored string. No product field has one: decide before adding one.
_TYPED_FORMATS = ("date", "date-time", "duration", "byte")


def _camel(name: str) -> str:
    """``retentionDays`` -> ``RetentionDays``, ``a_b`` -> ``AB``: protobuf's own spelling,
    which it requires of a map's entry message."""
    parts = name.split("_")
    return "".join(p[:1].upper() + p[1:] for p in parts)


def _container(schema: Mapping[str, Any]) -> tuple[int, str, bool] | None:
    """A list or map inside a list or map, which protobuf cannot nest: a list or map of
    dyn (``google.protobuf.ListValue``, ``Struct``), more lenient than Kubernetes."""
    if schema.get("type") == "array":
        return _FIELD.TYPE_MESSAGE, "google.protobuf.ListValue", False
    if schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return _FIELD.TYPE_MESSAGE, "google.protobuf.Struct", False
    return None


class _Builder:
    """Adds one message per object node, nested under its parent (``DataProduct.Spec``),
    so the checker's messages name the place: "undefined field 'x' not found in struct
    'DataProduct.Spec.Owner'"."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def message(self, parent: Any, name: str, schema: Mapping[str, Any], scope: str) -> str:
        """Declare ``schema`` (an object with properties) as message ``name`` in ``parent``
        (the file or a message); returns its full name."""
        container = parent.message_type if parent is self.file else parent.nested_type
        message = container.add(name=name)
        full = f"{scope}.{name}" if scope else name
        number = 0
        for prop, sub in schema.get("properties", {}).items():
            if not _IDENTIFIER.match(prop) or "__" in prop:
                continue
            field = self.field(message, prop, sub, full)
            if field is None:
                continue
            number += 1
            field.number = number
        return full

    def field(self, message: Any, name: str, schema: Mapping[str, Any], scope: str) -> Any:
        """Add the field for ``schema`` to ``message``; None when CEL cannot see it."""
        kind = self.kind(message, _camel(name), schema, scope)
        if kind is None:
            return None
        proto_type, type_name, repeated = kind
        label = _FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL
        field = message.field.add(name=name, json_name=name, type=proto_type, label=label)
        if type_name:
            field.type_name = f".{type_name}"
        return field

    def kind(
        self, message: Any, name: str, schema: Mapping[str, Any], scope: str
    ) -> tuple[int, str, bool] | None:
        """(proto type, message type name, repeated) for a field of ``schema``."""
        if schema.get("x-kubernetes-int-or-string"):
            return _FIELD.TYPE_MESSAGE, "google.protobuf.Value", False
        type_ = schema.get("type")
        if type_ in _SCALARS:
            if type_ == "string" and schema.get("format") in _TYPED_FORMATS:
                raise ValueError(
                    f"{scope}.{name}: format {schema['format']} is typed by Kubernetes' CEL "
                    "(timestamp, duration, bytes) but the engine reads a string"
                )
            return _SCALARS[type_], "", False
        if type_ == "array":
            items = schema.get("items")
            if items is None:
                return None
            inner = _container(items) or self.kind(message, name, items, scope)
            return None if inner is None else (inner[0], inner[1], True)
        if type_ == "object":
            extra = schema.get("additionalProperties")
            if isinstance(extra, Mapping):
                return self.map(message, name, extra, scope)
            full = self.message(message, name, schema, scope)
            return _FIELD.TYPE_MESSAGE, full, False
        return None

    def map(
        self, message: Any, name: str, values: Mapping[str, Any], scope: str
    ) -> tuple[int, str, bool] | None:
        """A ``map<string, V>``: protobuf spells it as a repeated nested entry message."""
        value = _container(values) or self.kind(message, f"{name}Value", values, scope)
        if value is None:
            return None
        entry = message.nested_type.add(name=f"{name}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_OPTIONAL)
        value_field = entry.field.add(
            name="value", number=2, type=value[0], label=_FIELD.LABEL_OPTIONAL
        )
        if value[1]:
            value_field.type_name = f".{value[1]}"
        return _FIELD.TYPE_MESSAGE, f"{scope}.{entry.name}", True


def product_schema() -> dict[str, Any]:
    """The DataProduct's schema as rules see it: the CRD's, with the engine's metadata
    and without status."""
    root = crd.data_product_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = root["properties"]
    return {
        "type": "object",
        "properties": {
            "apiVersion": props["apiVersion"],
            "kind": props["kind"],
            "metadata": METADATA_SCHEMA,
            "spec": props["spec"],
        },
    }


def file_descriptor(schema: Mapping[str, Any]) -> Any:
    """The FileDescriptorProto declaring ``schema`` as message ``DataProduct``."""
    file = descriptor_pb2.FileDescriptorProto(name=_FILE, syntax="proto3")
    file.dependency.append(_STRUCT_FILE)
    _Builder(file).message(file, ROOT_MESSAGE, schema, "")
    return file


def descriptor_pool_for(schema: Mapping[str, Any]) -> Any:
    """A descriptor pool holding the message for ``schema`` (and what it uses)."""
    pool = descriptor_pool.DescriptorPool()
    struct = descriptor_pb2.FileDescriptorProto()
    struct_pb2.DESCRIPTOR.CopyToProto(struct)
    pool.Add(struct)
    pool.Add(file_descriptor(schema))
    return pool
