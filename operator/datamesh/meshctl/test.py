"""``meshctl test NAME --server DSN``: a product's quality checks against a warehouse,
from a laptop or CI, with the operator's own plan and runner: the same SQL, the same
read-only transaction and time limit, the same verdicts as the product's pods report.

Exit codes as `validate`'s: 0 every error and critical check passed, 1 one failed or
could not run, 2 a usage error (an unknown product, a malformed connection string)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import escape, quoteattr

from datamesh.meshctl import repository

BLOCKING = ("error", "critical")


def register(sub: Any) -> None:
    t = sub.add_parser("test", help="run a product's quality checks against a warehouse")
    t.add_argument("name", help="product name or domain/name")
    t.add_argument(
        "--server",
        required=True,
        help="PostgreSQL connection string (libpq's PG* variables fill what it leaves out, "
        "e.g. PGPASSWORD)",
    )
    t.add_argument("--format", choices=["text", "json", "junit"], default="text")
    t.add_argument("--timeout-ms", type=int, default=30_000, help="limit per check")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The runner needs the PostgreSQL client, which `validate` does not: imported here.
    import psycopg

    from datamesh.dataplane.quality.plan import plan, table_of
    from datamesh.dataplane.quality.run import run_checks

    _, product, _ = repository.find_product(Path.cwd(), args.name)
    try:
        psycopg.conninfo.conninfo_to_dict(args.server)
    except psycopg.ProgrammingError as exc:
        raise repository.UsageError(f"--server is not a connection string: {exc}") from None
    checks = plan(product)
    if not checks:
        raise repository.UsageError(f"{product.ref} has no table port to check")
    try:
        with psycopg.connect(args.server, autocommit=True, connect_timeout=10) as conn:
            results = [asdict(r) for r in run_checks(conn, checks, timeout_ms=args.timeout_ms)]
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        results = [
            {
                "name": c.name,
                "rule": c.rule,
                "severity": c.severity,
                "verdict": "Unknown",
                "expected": c.expectation,
                "value": None,
                "message": f"the warehouse could not be reached: {reason}",
                "sample": [],
            }
            for c in checks
        ]
    report = {"product": product.ref, "table": table_of(product), "checks": results}
    WRITERS[args.format](report, sys.stdout)
    blocking = [r for r in results if r["severity"] in BLOCKING and r["verdict"] != "Passed"]
    return 1 if blocking else 0


def text(report: dict[str, Any], out: TextIO) -> None:
    for r in report["checks"]:
        value = "" if r["value"] is None else f" = {r['value']:g}"
        print(
            f"{r['verdict'].upper():8} {r['name']} ({r['severity']}){value}: {r['message']}",
            file=out,
        )
        for row in r["sample"]:
            print(f"           {json.dumps(row, sort_keys=True)}", file=out)
    counts = {
        v: sum(1 for r in report["checks"] if r["verdict"] == v)
        for v in ("Passed", "Failed", "Unknown")
    }
    print(
        f"{report['product']} ({report['table']}): {counts['Passed']} passed, "
        f"{counts['Failed']} failed, {counts['Unknown']} could not run",
        file=out,
    )


def as_json(report: dict[str, Any], out: TextIO) -> None:
    json.dump(report, out, indent=2, sort_keys=True)
    out.write("\n")


def junit(report: dict[str, Any], out: TextIO) -> None:
    checks = report["checks"]
    failed = sum(1 for r in checks if r["verdict"] == "Failed")
    errors = sum(1 for r in checks if r["verdict"] == "Unknown")
    print('<?xml version="1.0" encoding="UTF-8"?>', file=out)
    print(
        f"<testsuites><testsuite name={quoteattr('meshctl test ' + report['product'])} "
        f'tests="{len(checks)}" failures="{failed}" errors="{errors}">',
        file=out,
    )
    for r in checks:
        print(
            f"  <testcase classname={quoteattr(report['product'])} name={quoteattr(r['name'])}>",
            file=out,
        )
        body = "\n".join([r["message"], *(json.dumps(s, sort_keys=True) for s in r["sample"])])
        if r["verdict"] == "Failed":
            print(
                f"    <failure message={quoteattr(r['message'])}>{escape(body)}</failure>", file=out
            )
        elif r["verdict"] == "Unknown":
            print(f"    <error message={quoteattr(r['message'])}>{escape(body)}</error>", file=out)
        print("  </testcase>", file=out)
    print("</testsuite></testsuites>", file=out)


WRITERS = {"text": text, "json": as_json, "junit": junit}
