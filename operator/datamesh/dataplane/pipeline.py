"""``datamesh-pipeline``: the program a product's CronJob runs, in the pipeline image.

It reads the product's contract (mounted from its ConfigMap) and records one run in the
product's claim: ``runs.jsonl`` gains a line per run, and ``latest.json`` says what the
last run saw. Each run reads what the previous runs left, so a claim that survives its
product (``deletionPolicy: Retain``) carries the product's history into its next life.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

CONTRACT = Path("/etc/datamesh/contract/contract.yaml")
DATA = Path("/data")
RUNS = "runs.jsonl"
LATEST = "latest.json"


class PipelineError(RuntimeError):
    """A run that cannot go on; its message is the pod's last log line."""


def read_contract(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PipelineError(f"cannot read the contract {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"the contract {path} is not YAML: {exc}") from exc
    if not isinstance(document, dict) or "product" not in document:
        raise PipelineError(f"the contract {path} names no product")
    return document


def previous_runs(data: Path) -> list[dict[str, Any]]:
    """The runs recorded so far; a torn last line (a run killed mid-write) is ignored."""
    try:
        lines = (data / RUNS).read_text().splitlines()
    except FileNotFoundError:
        return []
    runs = []
    for line in lines:
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return runs


def _columns(contract: dict[str, Any]) -> list[str]:
    schema = contract.get("schema")
    fields = schema.get("fields") if isinstance(schema, dict) else None
    return [str(f["name"]) for f in fields or [] if isinstance(f, dict) and "name" in f]


def record_run(data: Path, contract: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Append this run to the claim and return its record."""
    runs = previous_runs(data)
    history = (data / RUNS).read_bytes() if (data / RUNS).exists() else b""
    record = {
        "run": len(runs) + 1,
        "at": now.isoformat(),
        "product": contract["product"],
        "version": contract.get("version"),
        "columns": _columns(contract),
        # What the run found in the claim before writing: proof it read earlier bytes.
        "previousRuns": len(runs),
        "previousSha256": hashlib.sha256(history).hexdigest(),
    }
    data.mkdir(parents=True, exist_ok=True)
    # A run killed mid-write leaves a line without its newline: start on a fresh one.
    lead = "\n" if history and not history.endswith(b"\n") else ""
    with (data / RUNS).open("a") as out:
        out.write(lead + json.dumps(record, sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    tmp = data / (LATEST + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    tmp.replace(data / LATEST)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datamesh-pipeline", description=__doc__)
    parser.add_argument("--contract", type=Path, default=CONTRACT)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    try:
        contract = read_contract(args.contract)
        record = record_run(args.data, contract, dt.datetime.now(dt.UTC))
    except PipelineError as exc:
        print(f"datamesh-pipeline: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"datamesh-pipeline: cannot write to {args.data}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(record, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
