"""``meshctl lineage``: a product's upstream and downstream as indented trees, marking
missing products and cycles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from datamesh.governance.lineage import Graph
from datamesh.meshctl import repository


def register(sub: Any) -> None:
    li = sub.add_parser("lineage", help="print a product's upstream and downstream")
    li.add_argument("name", help="product name or domain/name")
    li.set_defaults(func=run)


def tree(graph: Graph, ref: str, edges: dict[str, list[str]]) -> list[str]:
    """Lines of the tree below ``ref`` along ``edges``; a node already on the path is
    marked ``(cycle)`` and not followed, one not in the mesh ``(missing)``."""
    lines: list[str] = []

    def walk(node: str, depth: int, seen: set[str]) -> None:
        for nxt in sorted(edges.get(node, [])):
            missing = "" if nxt in graph.upstream else "  (missing)"
            cycle = "  (cycle)" if nxt in seen else ""
            lines.append(f"{'  ' * depth}- {nxt}{missing}{cycle}")
            if not cycle:
                walk(nxt, depth + 1, seen | {nxt})

    walk(ref, 1, {ref})
    return lines


def run(args: argparse.Namespace) -> int:
    _, product, products = repository.find_product(Path.cwd(), args.name)
    graph = Graph.of(products)
    up = {k: list(v) for k, v in graph.upstream.items()}
    for line in [
        product.ref,
        "upstream:",
        *tree(graph, product.ref, up),
        "downstream:",
        *tree(graph, product.ref, graph.downstream_map()),
    ]:
        print(line)
    return 0
