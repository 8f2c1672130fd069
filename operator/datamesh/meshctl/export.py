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
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, product, _ = repository.find_product(Path.cwd(), args.name)
    text = yaml.safe_dump(odcs.to_odcs(product), sort_keys=False, width=100)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
