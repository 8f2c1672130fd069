"""Breaking changes against the base branch: read every product as it was at a git ref
and let the pure rules in ``governance.breaking_changes`` judge each change."""

from __future__ import annotations

from pathlib import Path

from datamesh.api.models import DataProduct, Violation
from datamesh.governance import breaking_changes
from datamesh.governance.lineage import Graph
from datamesh.meshctl.checks import Report
from datamesh.meshctl.loader import Problem, load_text
from datamesh.meshctl.repository import UsageError


def products_at(base: str, repo: Path) -> dict[str, tuple[str, DataProduct]]:
    """Every product under ``products/`` at commit ``base``, by ref, with its path."""
    import git  # only --base needs git; plain validation runs without it
    import gitdb.exc

    try:
        tree = git.Repo(repo, search_parent_directories=True).commit(base).tree
    except (git.exc.GitError, gitdb.exc.BadName, ValueError) as exc:
        raise UsageError(
            f"--base {base}: not a commit of the repository at {repo}: {exc}"
        ) from None
    found: dict[str, tuple[str, DataProduct]] = {}
    for blob in tree.traverse():
        if not isinstance(blob, git.Blob):
            continue
        path = str(blob.path)
        if not path.startswith("products/") or not path.endswith((".yaml", ".yml")):
            continue
        docs, _ = load_text(blob.data_stream.read().decode("utf-8", "replace"), path)
        for doc in docs:
            if isinstance(doc.obj, DataProduct):
                found[doc.obj.ref] = (path, doc.obj)
    return found


def compare(report: Report, base: str, repo: Path) -> list[Problem]:
    """Errors for breaking changes without a major bump and for removed products that
    others consume; warnings (on the report) for additions without a minor bump."""
    current = {r.product.ref: r for r in report.products if r.product is not None}
    graph = Graph.of(r.product for r in report.products if r.product is not None)
    problems: list[Problem] = []
    for ref, (path, old) in sorted(products_at(base, repo).items()):
        result = current.get(ref)
        if result is None:
            consumers = graph.downstream(ref)
            if consumers:
                message = f"product {ref} was removed but is consumed by {', '.join(consumers)}"
                problems.append(Problem(path, 1, f"DataProduct/{ref}", "", message))
            continue
        assert result.product is not None
        verdict = breaking_changes.judge(old, result.product, graph.transitive_downstream(ref))
        for message in verdict.errors:
            problems.append(
                Problem(result.file, result.line, f"DataProduct/{ref}", "spec.version", message)
            )
        for message in verdict.warnings:
            result.violations.append(
                Violation(
                    policy="builtin/versioning",
                    rule="minor-bump",
                    enforcement="warn",
                    severity="warning",
                    message=message,
                )
            )
    return problems
