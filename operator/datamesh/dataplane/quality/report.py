"""The report a check run leaves for the operator: JSON in the container's termination
message, which the kubelet copies into the pod's status (at most 4096 bytes). The
operator reads it from the pod it already watches, so a pipeline pod needs no right on
any Kubernetes object to report its verdicts."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from datamesh.dataplane.quality.run import CheckResult

TERMINATION_LOG = "/dev/termination-log"
MAX_BYTES = 4096
MAX_CELL = 64


def _cell(value: Any) -> Any:
    return (
        value[: MAX_CELL - 1] + "…" if isinstance(value, str) and len(value) > MAX_CELL else value
    )


def document(at: str, table: str, results: list[CheckResult], samples: int) -> dict[str, Any]:
    checks = []
    for r in results:
        item = {k: v for k, v in asdict(r).items() if v not in (None, "", [])}
        if r.sample and samples:
            item["sample"] = [{k: _cell(v) for k, v in row.items()} for row in r.sample[:samples]]
        else:
            item.pop("sample", None)
        checks.append(item)
    return {"at": at, "table": table, "checks": checks}


def encode(at: str, table: str, results: list[CheckResult], limit: int = MAX_BYTES) -> str:
    """The report as compact JSON within ``limit`` bytes: failing rows are dropped first
    (fewer per check), then messages; if it still does not fit, checks that passed are
    left out (counted in ``omitted``), never a failing or unknown one before them."""
    for samples in (5, 3, 1, 0):
        text = json.dumps(document(at, table, results, samples), separators=(",", ":"))
        if len(text.encode()) <= limit:
            return text
    doc = document(at, table, results, 0)
    for item in doc["checks"]:
        item.pop("message", None)
        item.pop("expected", None)
    ordered = sorted(doc["checks"], key=lambda c: c["verdict"] == "Passed")
    kept: list[dict[str, Any]] = []
    for item in ordered:
        trial = {**doc, "checks": [*kept, item], "omitted": len(ordered) - len(kept) - 1}
        if len(json.dumps(trial, separators=(",", ":")).encode()) > limit:
            break
        kept.append(item)
    return json.dumps(
        {**doc, "checks": kept, "omitted": len(ordered) - len(kept)}, separators=(",", ":")
    )


def decode(text: str) -> dict[str, Any] | None:
    """A report from a pod's termination message, or None when it holds none."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        return None
    return doc
