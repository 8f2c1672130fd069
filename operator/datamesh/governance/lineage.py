"""Lineage: the graph of products reading other products. Pure functions over references.

A reference is ``domain/name``. Upstream edges are declared by each product's
``inputPorts``; downstream edges are computed by inverting them, so no product has to
know who consumes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from datamesh.api.models import DataProduct


def upstream_refs(product: DataProduct) -> list[str]:
    """The products this one reads, in declaration order, without duplicates."""
    return refs(product.spec.domain, ((p.domain, p.product) for p in product.spec.input_ports))


def spec_upstream_refs(spec: Mapping[str, Any]) -> list[str]:
    """``upstream_refs`` of a spec as stored (camelCase), for callers without a model."""
    ports = spec.get("inputPorts") or []
    return refs(str(spec.get("domain", "")), ((p.get("domain"), p.get("product")) for p in ports))


def refs(domain: str, ports: Iterable[tuple[str | None, str | None]]) -> list[str]:
    """``domain/product`` per input port (the product's own domain when the port names
    none), in order, without duplicates."""
    return list(dict.fromkeys(f"{d or domain}/{name}" for d, name in ports if name))


@dataclass(frozen=True)
class Graph:
    """Upstream edges by product reference; downstream is derived."""

    upstream: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, products: Iterable[DataProduct]) -> Graph:
        return cls({p.ref: tuple(upstream_refs(p)) for p in products})

    def downstream(self, ref: str) -> list[str]:
        return sorted(r for r, ups in self.upstream.items() if ref in ups)

    def downstream_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {r: [] for r in self.upstream}
        for ref, ups in sorted(self.upstream.items()):
            for up in ups:
                out.setdefault(up, []).append(ref)
        return out

    def missing(self, ref: str) -> list[str]:
        return [u for u in self.upstream.get(ref, ()) if u not in self.upstream]

    def transitive_downstream(self, ref: str) -> list[str]:
        down = self.downstream_map()
        seen: set[str] = set()
        stack = list(down.get(ref, []))
        while stack:
            nxt = stack.pop()
            if nxt not in seen:
                seen.add(nxt)
                stack.extend(down.get(nxt, []))
        return sorted(seen)

    def cycles(self) -> list[list[str]]:
        """Each cycle once, as the path that closes it, e.g. ``[a, b, a]``."""
        white, grey, black = 0, 1, 2
        color = dict.fromkeys(self.upstream, white)
        found: list[list[str]] = []
        seen: set[frozenset[str]] = set()

        def visit(node: str, path: list[str]) -> None:
            color[node] = grey
            path.append(node)
            for up in self.upstream.get(node, ()):
                if up not in color:
                    continue
                if color[up] == grey:
                    cycle = [*path[path.index(up) :], up]
                    key = frozenset(cycle)
                    if key not in seen:
                        seen.add(key)
                        found.append(cycle)
                elif color[up] == white:
                    visit(up, path)
            path.pop()
            color[node] = black

        for node in sorted(self.upstream):
            if color[node] == white:
                visit(node, [])
        return found


class Lookup(Protocol):
    """What resolving one product's lineage needs to know about the others."""

    def exists(self, ref: str) -> bool: ...

    def consumers(self, ref: str) -> Iterable[str]: ...

    def upstream(self, ref: str) -> Iterable[str]: ...

    def product(self, ref: str) -> DataProduct | None: ...


@dataclass(frozen=True)
class GraphLookup:
    graph: Graph
    products: Mapping[str, DataProduct] = field(default_factory=dict)

    def product(self, ref: str) -> DataProduct | None:
        return self.products.get(ref)

    def exists(self, ref: str) -> bool:
        return ref in self.graph.upstream

    def consumers(self, ref: str) -> Iterable[str]:
        return self.graph.downstream(ref)

    def upstream(self, ref: str) -> Iterable[str]:
        return self.graph.upstream.get(ref, ())


def cycle_through(product: DataProduct, lookup: Lookup, limit: int = 10_000) -> list[str]:
    """The shortest lineage cycle through this product, as the path that closes it
    (``[a, b, a]``), or []. Breadth-first over its ancestors; at most ``limit`` visited."""
    start = product.ref
    parent: dict[str, str] = {}
    queue = [(u, start) for u in upstream_refs(product)]
    while queue and len(parent) < limit:
        nxt: list[tuple[str, str]] = []
        for node, came_from in queue:
            if node in parent:
                continue
            parent[node] = came_from
            if node == start:
                path = [start]
                step = came_from
                while step != start:
                    path.append(step)
                    step = parent[step]
                path.append(start)
                return path[::-1] if len(path) > 2 else path
            nxt.extend((u, node) for u in lookup.upstream(node))
        queue = nxt
    return []


def resolve(product: DataProduct, lookup: Lookup) -> tuple[list[str], list[str], list[str]]:
    """(upstream that exist, downstream, upstream that do not exist), each sorted stably.
    O(ports + consumers): the operator calls it for every product on every reconcile."""
    ups = upstream_refs(product)
    return (
        [u for u in ups if lookup.exists(u)],
        sorted(set(lookup.consumers(product.ref))),
        [u for u in ups if not lookup.exists(u)],
    )
