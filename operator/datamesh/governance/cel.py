"""The one CEL environment factory: rules and CRD invariants compile against the same
extension libraries Kubernetes' CEL has (strings, math, optional), so a rule that compiles
here compiles in the apiserver."""

from __future__ import annotations

from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_math, ext_optional, ext_strings


def environment(variable: str) -> Any:
    """A checker environment binding ``variable`` (``object`` for policy rules, ``self``
    for CRD validation rules), dynamically typed: the product's schema lives in the CRD."""
    return cel.NewEnv(
        variables={variable: cel.Type.DYN},
        extensions=[ext_strings.ExtStrings(), ext_math.ExtMath(), ext_optional.ExtOptional()],
    )
