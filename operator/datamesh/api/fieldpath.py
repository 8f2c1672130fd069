"""How every message names a field: ``spec.schema.fields[2].name``."""

from __future__ import annotations

from collections.abc import Iterable


def field_path(parts: Iterable[object]) -> str:
    """Dotted keys and bracketed indexes, from a pydantic or jsonschema location."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
