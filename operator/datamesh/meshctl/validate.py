"""``meshctl validate``: the pull-request check. Schema, placement, policies, lineage and,
with ``--base``, breaking changes, decided offline with the operator's own engine."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from datamesh.meshctl import checks, history, output, repository


def register(sub: Any) -> None:
    v = sub.add_parser("validate", help="check products and policies offline")
    v.add_argument("paths", nargs="*", help="files or folders (default: products/ policies/)")
    v.add_argument("--format", choices=output.FORMATS, default="text")
    v.add_argument("--base", help="git ref to compare against for breaking changes")
    repository.add_platform_namespace(v)
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    repo = repository.root(Path.cwd())
    paths = [Path(p) for p in args.paths] or [repo / "products", repo / "policies"]
    paths = [p for p in paths if p.exists() or args.paths]
    documents, problems = repository.load(paths, repo)
    if args.paths:  # the namespaces of the whole repository decide which are domains'
        loaded = {d.file for d in documents}
        documents += [d for d in repository.namespaces(repo) if d.file not in loaded]
    report = checks.validate(
        documents, problems, now=dt.datetime.now(dt.UTC), platform_namespace=args.platform_namespace
    )
    if args.base:
        report.other.extend(history.compare(report, args.base, repo))
    code = 0 if report.ok else 1
    try:
        output.WRITERS[args.format](report, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `meshctl validate | head`: the verdict still counts
        output.silence_stdout()
    return code
