"""``meshctl export``: a product's contract as an Open Data Contract Standard document,
for tools outside the mesh (contract testing, catalogs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from datamesh.meshctl import odcs, repository


def register(sub: Any) -> None:
    e = sub.add_parser("export", help="export a product's contract (ODCS v3)")
    e.add_argument("name", help="product name or domain/name")
    e.add_argument("--format", choices=["odcs"], default="odcs")
    e.add_argument("--out", help="file to write (default: standard output)")
    e.add_argument(
        "--server",
        help="the warehouse's address for the table's server, as `host=H port=P dbname=D` "
        "(then `datacontract test` runs against the real table)",
    )
    e.set_defaults(func=run)


def server_address(text: str | None) -> dict[str, Any] | None:
    """``host=H port=P dbname=D`` as an ODCS server's host, port and database."""
    if not text:
        return None
    pairs = dict(part.split("=", 1) for part in text.split() if "=" in part)
    unknown = sorted(set(pairs) - {"host", "port", "dbname"})
    if unknown or "host" not in pairs or len(pairs) != len(text.split()):
        raise repository.UsageError(
            f"--server {text!r}: write `host=H port=P dbname=D` (host required)"
        )
    out: dict[str, Any] = {"host": pairs["host"]}
    if "port" in pairs:
        if not pairs["port"].isdigit():
            raise repository.UsageError(f"--server: port {pairs['port']!r} is not a number")
        out["port"] = int(pairs["port"])
    if "dbname" in pairs:
        out["database"] = pairs["dbname"]
    return out


def run(args: argparse.Namespace) -> int:
    _, product, _ = repository.find_product(Path.cwd(), args.name)
    text = yaml.safe_dump(
        odcs.to_odcs(product, server_address(args.server)), sort_keys=False, width=100
    )
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
