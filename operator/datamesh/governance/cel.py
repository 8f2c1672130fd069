"""The one CEL environment factory: rules and CRD invariants compile against the libraries
Kubernetes' CEL has (strings version 2, optional; cross-type numeric comparisons), so
that a rule that compiles here compiles in the apiserver. The reverse holds but for
Kubernetes' own libraries (lists, sets, regex, URL, quantity, IP, semver), which this
runtime lacks: a rule using one is refused here, never run half-supported.

cel-expr-python's standard library declares ``<`` only between values of one type, where
Kubernetes also compares ``int < double`` (``object.spec.sla.availability >= 99``): the
ordering operators are declared again, with the mixed numeric overloads. The runtime
already implements them."""

from __future__ import annotations

from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_optional, ext_strings

# Kubernetes 1.29+ has strings version 2 (no `reverse`); math is not in Kubernetes' CEL.
STRINGS_VERSION = 2

_ORDERING = (
    ("_<_", "less"),
    ("_<=_", "less_equals"),
    ("_>_", "greater"),
    ("_>=_", "greater_equals"),
)
_ORDERED = ("bool", "int", "uint", "double", "string", "bytes", "timestamp", "duration")
_NUMBERS = ("int", "uint", "double")
_OVERLOAD_NAMES = {"int": "int64", "uint": "uint64"}


def _ordering_config() -> str:
    """Environment config (YAML): the standard ordering operators, plus Kubernetes' mixed
    numeric ones (cel-go's CrossTypeNumericComparisons)."""
    pairs = [(t, t) for t in _ORDERED] + [(a, b) for a in _NUMBERS for b in _NUMBERS if a != b]
    lines = ["stdlib:", "  exclude_functions:"]
    lines += [f'    - name: "{op}"' for op, _ in _ORDERING]
    lines.append("functions:")
    for op, stem in _ORDERING:
        lines += [f'  - name: "{op}"', "    overloads:"]
        for a, b in pairs:
            suffix = _OVERLOAD_NAMES.get(a, a) + ("" if a == b else "_" + _OVERLOAD_NAMES.get(b, b))
            lines += [
                f'      - id: "{stem}_{suffix}"',
                "        args:",
                f'          - type_name: "{a}"',
                f'          - type_name: "{b}"',
                "        return:",
                '          type_name: "bool"',
            ]
    return "\n".join(lines) + "\n"


_CONFIG = _ordering_config()


def environment(variable: str, type_: Any = None, descriptor_pool: Any = None) -> Any:
    """An environment binding ``variable`` (``object`` for policy rules, ``self`` for CRD
    validation rules) to ``type_``: dyn by default (what evaluation needs: the data are
    plain dicts), or a message of ``descriptor_pool`` to type-check against a schema."""
    return cel.NewEnv(
        descriptor_pool=descriptor_pool,
        config=cel.NewEnvConfigFromYaml(_CONFIG),
        variables={variable: cel.Type.DYN if type_ is None else type_},
        extensions=[ext_strings.ExtStrings(version=STRINGS_VERSION), ext_optional.ExtOptional()],
    )
