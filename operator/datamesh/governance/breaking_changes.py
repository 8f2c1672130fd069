"""Breaking-change detection between two versions of a product's contract. Pure.

Consumers depend on the schema and the output ports. Anything that can break a query
that worked yesterday is breaking and needs a new major version; anything that only adds
needs a new minor version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datamesh.api.models import DataProduct, FieldConstraints, SchemaField


@dataclass(frozen=True)
class Change:
    breaking: bool
    field: str  # where, e.g. spec.schema.fields[customer_id].type
    message: str


def semver(version: str) -> tuple[int, int, int]:
    core = version.split("-", 1)[0].split("+", 1)[0]
    major, minor, patch = (int(x) for x in core.split("."))
    return major, minor, patch


def _tightened(old: FieldConstraints | None, new: FieldConstraints | None) -> list[str]:
    o = old or FieldConstraints()
    n = new or FieldConstraints()
    out = []

    def lower_bound(name: str, a: Any, b: Any) -> None:
        if b is not None and (a is None or b > a):
            out.append(f"{name} raised from {a} to {b}")

    def upper_bound(name: str, a: Any, b: Any) -> None:
        if b is not None and (a is None or b < a):
            out.append(f"{name} lowered from {a} to {b}")

    lower_bound("minLength", o.min_length, n.min_length)
    upper_bound("maxLength", o.max_length, n.max_length)
    lower_bound("minimum", o.minimum, n.minimum)
    upper_bound("maximum", o.maximum, n.maximum)
    if n.pattern is not None and n.pattern != o.pattern:
        out.append(f"pattern changed to {n.pattern!r}")
    if n.allowed_values is not None:
        removed = (
            sorted(set(o.allowed_values or []) - set(n.allowed_values))
            if o.allowed_values is not None
            else ["(any value)"]
        )
        if removed:
            out.append(f"allowedValues no longer include {', '.join(removed)}")
    if n.unique and not o.unique:
        out.append("values must now be unique")
    return out


def _field_changes(old: SchemaField, new: SchemaField) -> list[Change]:
    where = f"spec.schema.fields[{new.name}]"
    out = []
    if old.type != new.type:
        out.append(Change(True, f"{where}.type", f"type changed from {old.type} to {new.type}"))
    if old.nullable and not new.nullable:
        out.append(Change(True, f"{where}.nullable", "nullable field became required"))
    for text in _tightened(old.constraints, new.constraints):
        out.append(Change(True, f"{where}.constraints", f"constraint tightened: {text}"))
    return out


def changes(old: DataProduct, new: DataProduct) -> list[Change]:
    out: list[Change] = []
    old_fields = {f.name: f for f in old.spec.schema_.fields}
    new_fields = {f.name: f for f in new.spec.schema_.fields}
    for name in old_fields.keys() - new_fields.keys():
        out.append(Change(True, f"spec.schema.fields[{name}]", f"field {name} was removed"))
    for name in sorted(old_fields.keys() & new_fields.keys()):
        out.extend(_field_changes(old_fields[name], new_fields[name]))
    for name in sorted(new_fields.keys() - old_fields.keys()):
        breaking = not new_fields[name].nullable
        out.append(
            Change(
                breaking,
                f"spec.schema.fields[{name}]",
                f"field {name} was added" + (" as required" if breaking else ""),
            )
        )
    if old.spec.schema_.format != new.spec.schema_.format:
        out.append(
            Change(
                True,
                "spec.schema.format",
                f"format changed from {old.spec.schema_.format} to {new.spec.schema_.format}",
            )
        )
    old_ports = {p.name: p for p in old.spec.output_ports}
    new_ports = {p.name: p for p in new.spec.output_ports}
    for name in sorted(old_ports.keys() - new_ports.keys()):
        out.append(Change(True, f"spec.outputPorts[{name}]", f"output port {name} was removed"))
    for name in sorted(old_ports.keys() & new_ports.keys()):
        if (old_ports[name].type, old_ports[name].location) != (
            new_ports[name].type,
            new_ports[name].location,
        ):
            out.append(
                Change(
                    True, f"spec.outputPorts[{name}]", f"output port {name} moved or changed type"
                )
            )
    for name in sorted(new_ports.keys() - old_ports.keys()):
        out.append(Change(False, f"spec.outputPorts[{name}]", f"output port {name} was added"))
    return sorted(out, key=lambda c: (not c.breaking, c.field))


@dataclass(frozen=True)
class Verdict:
    """What the pull-request check says about one product's change."""

    errors: list[str]
    warnings: list[str]


def judge(old: DataProduct, new: DataProduct, consumers: list[str]) -> Verdict:
    found = changes(old, new)
    o, n = semver(old.spec.version), semver(new.spec.version)
    breaking = [c for c in found if c.breaking]
    additive = [c for c in found if not c.breaking]
    errors, warnings = [], []
    if breaking and n[0] <= o[0]:
        who = ", ".join(consumers) if consumers else "no known consumers"
        errors.append(
            f"breaking change without a major version bump ({old.spec.version} -> "
            f"{new.spec.version}): "
            + "; ".join(f"{c.field}: {c.message}" for c in breaking)
            + f". Consumers affected: {who}"
        )
    if additive and not breaking and n[:2] <= o[:2]:
        warnings.append(
            f"additive change without a minor version bump ({old.spec.version} -> "
            f"{new.spec.version}): " + "; ".join(f"{c.field}: {c.message}" for c in additive)
        )
    if n < o:
        errors.append(f"version went backwards: {old.spec.version} -> {new.spec.version}")
    return Verdict(errors, warnings)
