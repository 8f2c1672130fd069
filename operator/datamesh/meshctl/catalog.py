"""``meshctl catalog``: a static, browsable catalog of the mesh, one HTML file that needs
no server. ``render`` is pure; ``run`` validates the repository and writes the page.

Search filters by name, domain, tag and description as you type; each product shows its
contract, owner, SLA and compliance; the lineage graph is an inline SVG laid out by
depth (sources on the left). Given the cluster's view (``--status``, what ``kubectl get
dataproducts -A -o json`` prints), each product also shows its phase, its latest quality
verdicts with the failing checks, and its measured SLA.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datamesh.api.models import DataProduct, Enforcement
from datamesh.governance.lineage import Graph
from datamesh.governance.policy import Evaluation
from datamesh.meshctl import checks, repository

NODE_W, NODE_H, GAP_X, GAP_Y = 210, 40, 70, 22


def _depths(graph: Graph) -> dict[str, int]:
    depth: dict[str, int] = {}

    def visit(ref: str, seen: frozenset[str]) -> int:
        if ref in depth:
            return depth[ref]
        ups = [u for u in graph.upstream.get(ref, ()) if u in graph.upstream and u not in seen]
        depth[ref] = 1 + max((visit(u, seen | {ref}) for u in ups), default=-1)
        return depth[ref]

    for ref in sorted(graph.upstream):
        visit(ref, frozenset())
    return depth


def lineage_svg(graph: Graph) -> str:
    depth = _depths(graph)
    columns: dict[int, list[str]] = {}
    for ref in sorted(depth, key=lambda r: (depth[r], r)):
        columns.setdefault(depth[ref], []).append(ref)
    pos = {
        ref: (d * (NODE_W + GAP_X) + 10, i * (NODE_H + GAP_Y) + 10)
        for d, refs in columns.items()
        for i, ref in enumerate(refs)
    }
    width = (max(columns, default=0) + 1) * (NODE_W + GAP_X) + 20
    height = max((len(r) for r in columns.values()), default=1) * (NODE_H + GAP_Y) + 20
    parts = [
        f'<svg id="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" role="img" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#667"/></marker>'
        "</defs>",
    ]
    for ref, ups in sorted(graph.upstream.items()):
        for up in ups:
            if up not in pos:
                continue
            x1, y1 = pos[up][0] + NODE_W, pos[up][1] + NODE_H / 2
            x2, y2 = pos[ref][0], pos[ref][1] + NODE_H / 2
            parts.append(
                f'<path class="edge" d="M{x1},{y1} C{x1 + 40},{y1} {x2 - 40},{y2} '
                f'{x2},{y2}" stroke="#667" fill="none" marker-end="url(#arrow)"/>'
            )
    for ref, (x, y) in sorted(pos.items()):
        label = html.escape(ref)
        parts.append(
            f'<a href="#{html.escape(ref.replace("/", "-"))}"><g class="node" '
            f'data-ref="{label}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" '
            f'rx="6" fill="#eef3fb" stroke="#3b6bb5"/><text x="{x + 10}" y="{y + 25}" '
            f'font-size="13" font-family="sans-serif">{label}</text></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _live(status: Mapping[str, Any] | None) -> str:
    """The product's phase, quality and measured SLA, as the cluster reported them."""
    if not status:
        return ""
    e = html.escape
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    parts = [f'<p class="live"><b>Phase</b> {e(str(status.get("phase", "unknown")))}']
    quality = status.get("quality") or {}
    if quality:
        parts.append(
            f" · <b>Quality</b> {e(str(quality.get('summary', '')))} "
            f"<small>(checked {e(str(quality.get('lastRun', '?')))})</small>"
        )
    sla = conditions.get("SLAMet")
    if sla:
        parts.append(f" · <b>SLA</b> {e(str(sla.get('reason')))}: {e(str(sla.get('message')))}")
    parts.append("</p>")
    failing = [c for c in quality.get("checks") or [] if c.get("verdict") != "Passed"]
    if failing:
        items = "".join(
            f'<li class="check-{e(str(c.get("verdict", "")).lower())}">{e(str(c.get("name")))} '
            f"({e(str(c.get('severity')))}): {e(str(c.get('verdict')))}, "
            f"{e(str(c.get('message') or ''))}"
            + "".join(f"<br><code>{e(str(row))}</code>" for row in c.get("sample") or [])
            + "</li>"
            for c in failing
        )
        parts.append(f'<ul class="checks">{items}</ul>')
    return "".join(parts)


def _product_section(
    product: DataProduct,
    evaluation: Evaluation | None,
    graph: Graph,
    status: Mapping[str, Any] | None = None,
) -> str:
    spec = product.spec
    e = html.escape
    anchor = e(product.ref.replace("/", "-"))
    rows = "".join(
        f"<tr><td>{e(f.name)}</td><td>{e(str(f.type))}</td>"
        f"<td>{'yes' if f.primary_key else ''}</td><td>{'' if f.nullable else 'required'}</td>"
        f"<td>{e(str(f.pii_category)) if f.pii else ''}</td><td>{e(f.description or '')}</td></tr>"
        for f in spec.schema_.fields
    )
    if evaluation is None:
        verdict = "not evaluated"
    elif evaluation.compliant:
        verdict = f"compliant ({evaluation.warnings} warnings)"
    else:
        verdict = "NON-COMPLIANT: " + "; ".join(
            f"{v.policy}/{v.rule}: {v.message}"
            for v in evaluation.violations
            if v.enforcement == Enforcement.BLOCK
        )
    sla = spec.sla
    sla_text = f"freshness {e(sla.freshness)}, availability {sla.availability}%" if sla else "none"
    ups = ", ".join(e(u) for u in graph.upstream.get(product.ref, ())) or "none"
    downs = ", ".join(e(d) for d in graph.downstream(product.ref)) or "none"
    words = " ".join([product.metadata.name, spec.domain, *spec.tags, spec.description])
    return (
        f'<section class="product" id="{anchor}" data-search="{e(words.lower())}">'
        f"<h2>{e(product.ref)} <small>v{e(spec.version)} · {e(str(spec.classification))} · "
        f"{e(str(spec.type))}</small></h2>"
        f'<p class="description">{e(spec.description)}</p>'
        f"<p><b>Owner</b> {e(spec.owner.team)} &lt;{e(spec.owner.email)}&gt; "
        f"{e(spec.owner.channel or '')}</p>"
        f"<p><b>SLA</b> {sla_text}</p>"
        f'<p class="compliance"><b>Compliance</b> {e(verdict)}</p>'
        f"{_live(status)}"
        f"<p><b>Upstream</b> {ups} · <b>Downstream</b> {downs}</p>"
        f"<p><b>Tags</b> {e(', '.join(spec.tags)) or 'none'}</p>"
        "<table><tr><th>field</th><th>type</th><th>key</th><th>nullable</th><th>pii</th>"
        f"<th>description</th></tr>{rows}</table></section>"
    )


_SCRIPT = """
const box = document.getElementById('search');
const sections = Array.from(document.querySelectorAll('section.product'));
const count = document.getElementById('count');
function filter() {
  const words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
  let shown = 0;
  for (const s of sections) {
    const hit = words.every(w => s.dataset.search.includes(w));
    s.hidden = !hit;
    if (hit) shown++;
  }
  count.textContent = shown + ' of ' + sections.length + ' products';
}
box.addEventListener('input', filter);
filter();
"""

_STYLE = """
body{font-family:sans-serif;margin:2em;color:#222}
input{font-size:1.1em;padding:.4em;width:30em}
section.product{border-top:1px solid #ccc;padding:.5em 0}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:2px 6px}
small{color:#666;font-weight:normal}
"""


def render(
    products: Sequence[DataProduct],
    evaluations: Mapping[str, Evaluation] | None = None,
    statuses: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The catalog page for these products (evaluations and the cluster's statuses keyed
    by ``domain/name``)."""
    graph = Graph.of(products)
    ordered = sorted(products, key=lambda p: p.ref)
    sections = "".join(
        _product_section(p, (evaluations or {}).get(p.ref), graph, (statuses or {}).get(p.ref))
        for p in ordered
    )
    index = json.dumps([p.ref for p in ordered])
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Data mesh catalog</title><style>{_STYLE}</style></head><body>"
        "<h1>Data mesh catalog</h1>"
        '<input id="search" type="search" placeholder="search name, domain, tag or text" '
        'autofocus> <span id="count"></span>'
        f"<h2>Lineage</h2>{lineage_svg(graph)}"
        f'<div id="products">{sections}</div>'
        f'<script type="application/json" id="index">{html.escape(index)}</script>'
        f"<script>{_SCRIPT}</script></body></html>"
    )


def read_statuses(source: str) -> dict[str, Mapping[str, Any]]:
    """``domain/name`` -> status, from a DataProduct list as kubectl prints it."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
        items = json.loads(text)["items"]
        return {
            f"{i['spec']['domain']}/{i['metadata']['name']}": i.get("status") or {} for i in items
        }
    except OSError as exc:
        raise repository.UsageError(f"--status {source}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise repository.UsageError(
            f"--status {source}: not a DataProduct list (write it with "
            "`kubectl get dataproducts -A -o json`)"
        ) from None


def register(sub: Any) -> None:
    cat = sub.add_parser("catalog", help="write a static HTML catalog of the mesh")
    cat.add_argument("--out", required=True, help="folder for index.html")
    cat.add_argument(
        "--status",
        help="the cluster's view: a file with the output of `kubectl get dataproducts -A -o "
        "json` (`-` reads standard input); adds each product's phase, quality and SLA",
    )
    repository.add_platform_namespace(cat)
    cat.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    repo = repository.root(Path.cwd())
    documents, problems = repository.load([repo / "products", repo / "policies"], repo)
    report = checks.validate(
        documents, problems, now=dt.datetime.now(dt.UTC), platform_namespace=args.platform_namespace
    )
    products = [r.product for r in report.products if r.product is not None]
    evaluations = {
        r.product.ref: Evaluation(tuple(r.violations), ())
        for r in report.products
        if r.product is not None
    }
    statuses = read_statuses(args.status) if args.status else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(render(products, evaluations, statuses), encoding="utf-8")
    print(f"wrote {out / 'index.html'} ({len(products)} products)")
    return 0
