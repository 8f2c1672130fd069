"""`meshctl`: the domain teams' tool. Checks pull requests offline with the operator's own
engine, scaffolds products, shows lineage and writes CODEOWNERS.

Exit codes: 0 all good, 1 errors or blocking violations, 2 usage errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import escape, quoteattr

import yaml

from datamesh import catalog, compat, manifest, odcs, policy, validation
from datamesh.lineage import Graph
from datamesh.manifest import Document, Problem
from datamesh.model import MAX_PRODUCT_NAME, DataProduct, ProductType, Violation

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad arguments; exit code 2."""


def _repo_root(start: Path) -> Path:
    for folder in [start, *start.parents]:
        if (folder / "products").is_dir() or (folder / ".git").exists():
            return folder
    return start


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def load(paths: Sequence[Path], root: Path) -> tuple[list[Document], list[Problem]]:
    documents: list[Document] = []
    problems: list[Problem] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
    for path in manifest.yaml_files(paths):
        docs, found = manifest.load_file(path, _display(path, root))
        documents.extend(docs)
        problems.extend(found)
    return documents, problems


def _repo_products() -> tuple[Path, list[DataProduct]]:
    """The repository root and every product that parses under its products/."""
    root = _repo_root(Path.cwd())
    documents, _ = load([root / "products"], root)
    return root, [d.obj for d in documents if isinstance(d.obj, DataProduct)]


# -- validate -------------------------------------------------------------------------------


def _breaking(report: validation.Report, base: str, root: Path) -> list[Problem]:
    """Compare each product with its version at ``base`` (a git ref)."""
    import git
    import gitdb.exc

    try:
        repo = git.Repo(root, search_parent_directories=True)
        tree = repo.commit(base).tree
    except (git.exc.GitError, gitdb.exc.BadName, ValueError) as exc:
        raise UsageError(
            f"--base {base}: not a commit of the repository at {root}: {exc}"
        ) from None
    current = {r.product.ref: r for r in report.products if r.product is not None}
    graph = Graph.of(r.product for r in report.products if r.product is not None)
    problems: list[Problem] = []
    old_products: dict[str, tuple[str, DataProduct]] = {}
    for blob in tree.traverse():
        if not isinstance(blob, git.Blob):
            continue
        path = str(blob.path)
        if not path.startswith("products/") or not path.endswith((".yaml", ".yml")):
            continue
        docs, _ = manifest.load_text(blob.data_stream.read().decode("utf-8", "replace"), path)
        for doc in docs:
            if isinstance(doc.obj, DataProduct):
                old_products[doc.obj.ref] = (path, doc.obj)
    for ref, (path, old) in sorted(old_products.items()):
        result = current.get(ref)
        if result is None:
            consumers = graph.downstream(ref)
            if consumers:
                problems.append(
                    Problem(
                        path,
                        1,
                        f"DataProduct/{ref}",
                        "",
                        f"product {ref} was removed but is consumed by {', '.join(consumers)}",
                    )
                )
            continue
        assert result.product is not None
        verdict = compat.judge(old, result.product, graph.transitive_downstream(ref))
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


def _print_text(report: validation.Report, out: TextIO) -> None:
    for p in report.other:
        print(f"{p.file}:{p.line}: error: {p.message}", file=out)
    for pol in report.policies:
        for e in pol.errors:
            print(f"{e.file}:{e.line}: error: {e.object} {e.field}: {e.message}", file=out)
    for prod in report.products:
        for e in prod.errors:
            where = " ".join(x for x in (e.object, e.field) if x)
            print(f"{e.file}:{e.line}: error: {where}: {e.message}", file=out)
        for v in prod.violations:
            level = "error" if v.enforcement == "block" else v.enforcement
            print(
                f"{prod.file}:{prod.line}: {level}: DataProduct/{prod.namespace}/{prod.name}"
                f" violates {v.policy}/{v.rule} ({v.severity}): {v.message}",
                file=out,
            )
    s = report.to_json()["summary"]
    verdict = "OK" if report.ok else "FAILED"
    print(
        f"{verdict}: {s['products']} products, {len(report.policies)} policies, "
        f"{s['errors']} errors, {s['blocking']} blocking violations, "
        f"{s['warnings']} warnings",
        file=out,
    )


def _github_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _print_github(report: validation.Report, out: TextIO) -> None:
    def line(level: str, file: str, lineno: int, title: str, message: str) -> None:
        print(
            f"::{level} file={file},line={lineno},title={_github_escape(title)}::"
            f"{_github_escape(message)}",
            file=out,
        )

    for p in [
        *report.other,
        *(e for x in report.policies for e in x.errors),
        *(e for x in report.products for e in x.errors),
    ]:
        line("error", p.file, p.line, p.field or "meshctl", f"{p.object}: {p.message}")
    for prod in report.products:
        for v in prod.violations:
            level = {"block": "error", "warn": "warning"}.get(str(v.enforcement), "notice")
            line(level, prod.file, prod.line, f"{v.policy}/{v.rule}", v.message)
    _print_text_summary(report, out)


def _print_text_summary(report: validation.Report, out: TextIO) -> None:
    s = report.to_json()["summary"]
    print(
        f"{'OK' if report.ok else 'FAILED'}: {s['products']} products, {s['errors']} errors, "
        f"{s['blocking']} blocking violations, {s['warnings']} warnings",
        file=out,
    )


def _print_junit(report: validation.Report, out: TextIO) -> None:
    cases = []
    for prod in report.products:
        failures = [f"{e.field}: {e.message}" for e in prod.errors] + [
            f"{v.policy}/{v.rule}: {v.message}" for v in prod.violations if v.enforcement == "block"
        ]
        cases.append((prod.file, f"{prod.namespace}/{prod.name}", failures))
    for pol in report.policies:
        cases.append((pol.file, pol.name, [f"{e.field}: {e.message}" for e in pol.errors]))
    for p in report.other:
        cases.append((p.file, p.file, [p.message]))
    failed = sum(1 for *_, f in cases if f)
    print('<?xml version="1.0" encoding="UTF-8"?>', file=out)
    print(
        f'<testsuites><testsuite name="meshctl validate" tests="{len(cases)}" failures="{failed}">',
        file=out,
    )
    for file, name, failures in cases:
        print(f"  <testcase classname={quoteattr(file)} name={quoteattr(name)}>", file=out)
        if failures:
            text = "\n".join(failures)
            print(
                f"    <failure message={quoteattr(failures[0])}>{escape(text)}</failure>", file=out
            )
        print("  </testcase>", file=out)
    print("</testsuite></testsuites>", file=out)


def cmd_validate(args: argparse.Namespace) -> int:
    root = _repo_root(Path.cwd())
    paths = [Path(p) for p in args.paths] or [root / "products", root / "policies"]
    paths = [p for p in paths if p.exists() or args.paths]
    documents, problems = load(paths, root)
    report = validation.validate(
        documents, problems, now=dt.datetime.now(dt.UTC), platform_namespace=args.platform_namespace
    )
    if args.base:
        report.other.extend(_breaking(report, args.base, root))
    out = sys.stdout
    if args.format == "json":
        json.dump(report.to_json(), out, indent=2)
        print(file=out)
    elif args.format == "junit":
        _print_junit(report, out)
    elif args.format == "github":
        _print_github(report, out)
    else:
        _print_text(report, out)
    return 0 if report.ok else 1


# -- new ------------------------------------------------------------------------------------

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def scaffold(name: str, domain: str, product_type: str, team: str | None) -> dict[str, Any]:
    """A product that passes every live policy as generated; owners then edit it."""
    team = team or f"{domain}-team"
    table = f"{domain.replace('-', '_')}.{name.replace('-', '_')}"
    return {
        "apiVersion": "datamesh.io/v1alpha1",
        "kind": "DataProduct",
        "metadata": {"name": name, "namespace": domain, "labels": {"datamesh.io/domain": domain}},
        "spec": {
            "domain": domain,
            "owner": {"team": team, "email": f"{team}@example.com", "channel": f"#{team}"},
            "description": f"TODO: what {name} contains and who it is for.",
            "version": "0.1.0",
            "type": product_type,
            "classification": "internal",
            "retentionDays": 365,
            "tags": [domain],
            "schema": {
                "format": "parquet",
                "fields": [
                    {
                        "name": "id",
                        "type": "string",
                        "description": "Record identifier.",
                        "primaryKey": True,
                        "nullable": False,
                    },
                    {
                        "name": "updated_at",
                        "type": "timestamp",
                        "description": "When the record last changed (UTC).",
                    },
                ],
            },
            "outputPorts": [
                {
                    "name": "warehouse",
                    "type": "table",
                    "location": table,
                    "description": "Curated table in the warehouse.",
                }
            ],
            "sla": {"freshness": "1h", "availability": 99.5, "completeness": 99.0},
            "qualityChecks": [
                {"name": "completeness", "rule": "completeness", "threshold": 0.99},
                {"name": "freshness", "rule": "freshness"},
                {"name": "id-unique", "rule": "unique", "column": "id"},
            ],
            "storage": {"size": "10Gi", "encryption": {"atRest": True}},
            "pipeline": {
                "schedule": "0 * * * *",
                "image": f"images.example.com/{domain}/{name}-pipeline:0.1.0",
                "command": ["python", "-m", "pipeline", "--product", name],
            },
            "access": {"readers": {"domains": [domain]}, "auditLogging": True},
        },
    }


def cmd_new(args: argparse.Namespace) -> int:
    name, domain = args.name, args.domain
    for label, value in (("NAME", name), ("--domain", domain)):
        if not NAME_RE.match(value) or len(value) > 63:
            raise UsageError(
                f"{label} {value!r} must be a DNS label: lower-case letters, "
                "digits and '-', starting and ending with a letter or digit"
            )
    if len(name) > MAX_PRODUCT_NAME:
        raise UsageError(
            f"NAME {name!r} is {len(name)} characters; at most "
            f"{MAX_PRODUCT_NAME}, so that the names of its children fit"
        )
    root = _repo_root(Path.cwd())
    folder = root / "products" / domain
    target = folder / f"{name}.yaml"
    if target.exists():
        raise UsageError(f"{_display(target, root)} already exists")
    folder.mkdir(parents=True, exist_ok=True)
    ns_file = folder / "namespace.yaml"
    if not ns_file.exists():
        ns_file.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": domain,
                        "labels": {
                            "datamesh.io/domain": domain,
                            "pod-security.kubernetes.io/enforce": "restricted",
                        },
                    },
                },
                sort_keys=False,
            )
        )
        print(f"created {_display(ns_file, root)}")
    target.write_text(
        yaml.safe_dump(scaffold(name, domain, args.type, args.team), sort_keys=False, width=100)
    )
    print(f"created {_display(target, root)}; edit the schema, then run `meshctl validate`")
    return 0


# -- lineage --------------------------------------------------------------------------------


def cmd_lineage(args: argparse.Namespace) -> int:
    root, products = _repo_products()
    graph = Graph.of(products)
    matches = [p.ref for p in products if p.ref == args.name or p.metadata.name == args.name]
    if not matches:
        raise UsageError(
            f"no product named {args.name!r} under {_display(root / 'products', root)}"
        )
    if len(matches) > 1:
        raise UsageError(
            f"{args.name!r} is ambiguous: {', '.join(sorted(matches))}; use domain/name"
        )
    ref = matches[0]
    down = graph.downstream_map()

    def walk(node: str, edges: dict[str, list[str]], depth: int, seen: set[str]) -> None:
        for nxt in sorted(edges.get(node, [])):
            missing = "" if nxt in graph.upstream else "  (missing)"
            cycle = "  (cycle)" if nxt in seen else ""
            print(f"{'  ' * depth}- {nxt}{missing}{cycle}")
            if not cycle:
                walk(nxt, edges, depth + 1, seen | {nxt})

    up = {k: list(v) for k, v in graph.upstream.items()}
    print(ref)
    print("upstream:")
    walk(ref, up, 1, {ref})
    print("downstream:")
    walk(ref, down, 1, {ref})
    return 0


# -- catalog --------------------------------------------------------------------------------


def cmd_catalog(args: argparse.Namespace) -> int:
    root = _repo_root(Path.cwd())
    documents, problems = load([root / "products", root / "policies"], root)
    report = validation.validate(
        documents, problems, now=dt.datetime.now(dt.UTC), platform_namespace=args.platform_namespace
    )
    products = [r.product for r in report.products if r.product is not None]
    evaluations = {
        r.product.ref: policy.Evaluation(tuple(r.violations), ())
        for r in report.products
        if r.product is not None
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(catalog.render(products, evaluations), encoding="utf-8")
    print(f"wrote {out / 'index.html'} ({len(products)} products)")
    return 0


# -- export ---------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    _, products = _repo_products()
    matches = [p for p in products if args.name in (p.ref, p.metadata.name)]
    if len(matches) != 1:
        found = ", ".join(sorted(p.ref for p in matches)) or "none"
        raise UsageError(f"{args.name!r} must name exactly one product (found: {found})")
    text = yaml.safe_dump(odcs.to_odcs(matches[0]), sort_keys=False, width=100)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# -- codeowners -----------------------------------------------------------------------------


def codeowners(products: Sequence[DataProduct], org: str) -> str:
    """One line per domain folder: the teams that own its products approve its changes
    (an access request is a pull request adding a reader, approved by the owners)."""
    teams: dict[str, set[str]] = {}
    for p in products:
        teams.setdefault(p.spec.domain, set()).add(p.spec.owner.team)
    lines = [
        "# Generated by `meshctl codeowners` from the owners in products/. Do not edit.",
        f"* @{org}/platform-team",
        "/policies/ @" + org + "/platform-team",
    ]
    for domain in sorted(teams):
        owners = " ".join(f"@{org}/{t}" for t in sorted(teams[domain]))
        lines.append(f"/products/{domain}/ {owners}")
    return "\n".join(lines) + "\n"


def cmd_codeowners(args: argparse.Namespace) -> int:
    root = _repo_root(Path.cwd())
    documents, problems = load([root / "products"], root)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    text = codeowners([d.obj for d in documents if isinstance(d.obj, DataProduct)], args.org)
    target = root / args.out
    if args.check:
        current = target.read_text() if target.exists() else ""
        if current != text:
            print(f"{_display(target, root)} is stale: run `meshctl codeowners`", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {_display(target, root)}")
    return 0


# -- entry point ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="meshctl", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check products and policies offline")
    v.add_argument("paths", nargs="*", help="files or folders (default: products/ policies/)")
    v.add_argument("--format", choices=["text", "json", "junit", "github"], default="text")
    v.add_argument("--base", help="git ref to compare against for breaking changes")
    v.add_argument(
        "--platform-namespace",
        default=os.environ.get("DATAMESH_PLATFORM_NAMESPACE", policy.DEFAULT_PLATFORM_NAMESPACE),
    )
    v.set_defaults(func=cmd_validate)

    n = sub.add_parser("new", help="scaffold a product that passes validate")
    n.add_argument("name")
    n.add_argument("--domain", required=True)
    n.add_argument("--type", choices=[t.value for t in ProductType], default="source")
    n.add_argument("--team", help="owning team (default: <domain>-team)")
    n.set_defaults(func=cmd_new)

    li = sub.add_parser("lineage", help="print a product's upstream and downstream")
    li.add_argument("name", help="product name or domain/name")
    li.set_defaults(func=cmd_lineage)

    cat = sub.add_parser("catalog", help="write a static HTML catalog of the mesh")
    cat.add_argument("--out", required=True, help="folder for index.html")
    cat.add_argument(
        "--platform-namespace",
        default=os.environ.get("DATAMESH_PLATFORM_NAMESPACE", policy.DEFAULT_PLATFORM_NAMESPACE),
    )
    cat.set_defaults(func=cmd_catalog)

    e = sub.add_parser("export", help="export a product's contract (ODCS v3)")
    e.add_argument("name", help="product name or domain/name")
    e.add_argument("--format", choices=["odcs"], default="odcs")
    e.add_argument("--out", help="file to write (default: standard output)")
    e.set_defaults(func=cmd_export)

    c = sub.add_parser("codeowners", help="write CODEOWNERS from product owners")
    c.add_argument("--org", default="datamesh")
    c.add_argument("--out", default="CODEOWNERS")
    c.add_argument("--check", action="store_true", help="fail when the file is stale")
    c.set_defaults(func=cmd_codeowners)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"meshctl: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
