"""``meshctl validate``: the pull-request check. Schema, placement, policies, lineage and,
with ``--base``, breaking changes, decided offline with the operator's own engine."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from datamesh.meshctl import checks, history, output, repository
from datamesh.meshctl.loader import yaml_files


def register(sub: Any) -> None:
    v = sub.add_parser("validate", help="check products and policies offline")
    v.add_argument("paths", nargs="*", help="files or folders (default: products/ policies/)")
    v.add_argument("--format", choices=output.FORMATS, default="text")
    v.add_argument("--base", help="git ref to compare against for breaking changes")
    repository.add_platform_namespace(v)
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the whole repository; with paths, report only on the files under them,
    still checked against every policy and product of the repository they are in."""
    named = [Path(p) for p in args.paths]
    for path in named:
        if not path.exists():
            raise repository.UsageError(f"{path}: no such file or directory")
    repo = repository.root(named[0] if named else Path.cwd())
    for path in named:
        if repository.find_root(path) != repo:
            raise repository.UsageError(f"{path}: not in the repository at {repo}")
    whole = [repo / folder for folder in ("products", "policies") if (repo / folder).is_dir()]
    if not whole and not named:
        raise repository.UsageError(f"{repo}: no products/ or policies/ folder to validate")
    documents, problems = repository.load(whole, repo)
    loaded = {d.file for d in documents} | {p.file for p in problems}
    extra = [f for f in yaml_files(named) if repository.display(f, repo) not in loaded]
    more_documents, more_problems = repository.load(extra, repo)
    report = checks.validate(
        documents + more_documents,
        problems + more_problems,
        now=dt.datetime.now(dt.UTC),
        platform_namespace=args.platform_namespace,
    )
    if args.base:
        report.other.extend(history.compare(report, args.base, repo))
    if named:
        report = report.only({repository.display(f, repo) for f in yaml_files(named)})
    code = 0 if report.ok else 1
    try:
        output.WRITERS[args.format](report, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:  # `meshctl validate | head`: the verdict still counts
        output.silence_stdout()
    return code
