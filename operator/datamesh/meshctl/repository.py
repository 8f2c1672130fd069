"""The repository ``meshctl`` works on: where its root is, how paths are shown, and
loading its manifests. Every command starts here."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from datamesh.api.constants import DEFAULT_PLATFORM_NAMESPACE
from datamesh.api.models import DataProduct
from datamesh.meshctl.loader import Document, Problem, load_file, yaml_files

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad arguments or a missing path: exit code 2, the message on standard error."""


def find_root(start: Path) -> Path | None:
    """The repository ``start`` (a folder or a file) is in: the nearest folder holding
    ``products/`` or ``policies/``, else the nearest git work tree; None outside both."""
    here = start.resolve()
    folders = [here, *here.parents] if here.is_dir() else list(here.parents)
    for folder in folders:
        if (folder / "products").is_dir() or (folder / "policies").is_dir():
            return folder
    for folder in folders:
        if (folder / ".git").exists():
            return folder
    return None


def root(start: Path) -> Path:
    """The repository of ``start``; outside any, a usage error (never "OK: 0 products")."""
    found = find_root(start)
    if found is None:
        raise UsageError(
            f"{start}: not inside a repository (no products/ or policies/ folder and no git "
            "work tree above it); run meshctl in your data mesh repository"
        )
    return found


def display(path: Path, repo: Path) -> str:
    """A path as messages show it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(repo.resolve()))
    except ValueError:
        return str(path)


def load(paths: Sequence[Path], repo: Path) -> tuple[list[Document], list[Problem]]:
    """Every document under ``paths``; a path that does not exist is a usage error."""
    documents: list[Document] = []
    problems: list[Problem] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
    for path in yaml_files(paths):
        docs, found = load_file(path, display(path, repo))
        documents.extend(docs)
        problems.extend(found)
    return documents, problems


def products(start: Path) -> tuple[Path, list[DataProduct]]:
    """The repository root and every product that parses under its ``products/``."""
    repo = root(start)
    documents, _ = load([repo / "products"], repo)
    return repo, [d.obj for d in documents if isinstance(d.obj, DataProduct)]


def find_product(start: Path, name: str) -> tuple[Path, DataProduct, list[DataProduct]]:
    """The one product called ``name`` or ``domain/name`` (with the repository root and
    every product); none or several is a usage error that lists what was found."""
    repo, found = products(start)
    matches = [p for p in found if name in (p.ref, p.metadata.name)]
    if not matches:
        raise UsageError(f"no product named {name!r} under {display(repo / 'products', repo)}")
    if len(matches) > 1:
        refs = ", ".join(sorted(p.ref for p in matches))
        raise UsageError(f"{name!r} is ambiguous: {refs}; use domain/name")
    return repo, matches[0], found


def add_platform_namespace(parser: argparse.ArgumentParser) -> None:
    """``--platform-namespace``, defaulting as the operator does, for commands that
    evaluate policies (which of them are global depends on it)."""
    parser.add_argument(
        "--platform-namespace",
        default=os.environ.get("DATAMESH_PLATFORM_NAMESPACE", DEFAULT_PLATFORM_NAMESPACE),
        help=f"namespace of the global policies (default: {DEFAULT_PLATFORM_NAMESPACE})",
    )
