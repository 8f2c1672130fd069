"""A custom quality check's SQL must only read: one SELECT (or WITH ... SELECT), no
statement that writes, changes the schema, grants, copies or sets anything. Checked
offline by ``meshctl validate`` and again before a check runs; the check also runs in a
read-only transaction as the product's own role, which is the guard that holds even
against what this scan cannot see."""

from __future__ import annotations

import re

# Strings, quoted identifiers, dollar-quoted bodies and comments hide keywords.
_HIDDEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$([A-Za-z_]*)\$.*?\$\1\$|--[^\n]*|/\*.*?\*/",
    re.DOTALL,
)
# One statement that starts with SELECT or WITH can still write through a data-modifying
# WITH or SELECT ... INTO; anything else (a function with side effects) is what the
# read-only transaction refuses.
_WRITES = frozenset(
    {"insert", "update", "delete", "merge", "truncate", "drop", "alter", "create", "grant"}
    | {"revoke", "copy", "call"}
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
TABLE_PLACEHOLDER = re.compile(r"\{\{\s*table\s*\}\}")


def refusal(query: str) -> str | None:
    """Why ``query`` may not run as a check, or None when it only reads."""
    visible = _HIDDEN.sub(" ", query).strip()
    body = visible.rstrip().rstrip(";")
    if not body:
        return "the query is empty"
    if ";" in body:
        return "a check is one statement: the query has more than one"
    words = [w.lower() for w in _WORD.findall(body)]
    if not words:
        return "the query has no statement"
    if words[0] not in ("select", "with"):
        return f"a check only reads: the query starts with {words[0].upper()}, not SELECT or WITH"
    for word in words:
        if word in _WRITES:
            return f"a check only reads: the query uses {word.upper()}"
    # SELECT ... INTO creates a table.
    if "into" in words:
        return "a check only reads: SELECT ... INTO creates a table"
    return None
