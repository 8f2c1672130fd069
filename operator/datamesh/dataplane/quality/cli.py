"""``datamesh-check``: a product's quality checks against its table, from its contract
(the mounted ConfigMap) and its own warehouse login (libpq's ``PG*`` variables). The
SQL runner runs the same checks right after each load; this command runs them on the
product's own schedule. The report goes to stdout and to the termination message, where
the operator reads it; failing checks do not fail the run (the verdict is the product's
status, and nothing is ever deprovisioned for it)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import psycopg

from datamesh.api.constants import API_VERSION
from datamesh.api.models import DataProduct
from datamesh.dataplane.pipeline import CONTRACT, PipelineError, read_contract
from datamesh.dataplane.quality import report
from datamesh.dataplane.quality.plan import plan, table_of
from datamesh.dataplane.quality.run import STATEMENT_TIMEOUT_MS, run_checks


def product_of(contract: dict[str, Any]) -> DataProduct:
    """The product as the contract describes it (what the checks need of it)."""
    spec = {k: v for k, v in contract.items() if k != "product"}
    try:
        return DataProduct.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": "DataProduct",
                "metadata": {"name": contract["product"], "namespace": contract.get("domain")},
                "spec": spec,
            }
        )
    except ValueError as exc:
        raise PipelineError(f"the contract does not describe a product: {exc}") from exc


def check(
    conn: psycopg.Connection[Any],
    product: DataProduct,
    termination_log: Path | None,
    timeout_ms: int = STATEMENT_TIMEOUT_MS,
) -> str:
    """Run the product's checks on ``conn``; the report, also left in the log file."""
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results = run_checks(conn, plan(product), timeout_ms=timeout_ms)
    text = report.encode(at, table_of(product) or "", results)
    if termination_log is not None:
        with contextlib.suppress(OSError):  # not in a pod: stdout has it
            termination_log.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datamesh-check", description=__doc__)
    parser.add_argument("--contract", type=Path, default=CONTRACT)
    parser.add_argument("--termination-log", type=Path, default=Path(report.TERMINATION_LOG))
    parser.add_argument("--timeout-ms", type=int, default=STATEMENT_TIMEOUT_MS)
    args = parser.parse_args(argv)
    try:
        product = product_of(read_contract(args.contract))
        with psycopg.connect("", application_name="datamesh-check", autocommit=True) as conn:
            print(check(conn, product, args.termination_log, args.timeout_ms))
    except PipelineError as exc:
        print(f"datamesh-check: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"datamesh-check: the warehouse could not be reached: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
