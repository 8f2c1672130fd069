"""Lineage graph: upstream, downstream, missing products and cycles."""

from __future__ import annotations

from datamesh.governance.lineage import Graph, GraphLookup, cycle_through, upstream_refs
from tests.support.factories import product


def p(name: str, domain: str = "sales", *inputs: str):  # type: ignore[no-untyped-def]
    ports = []
    for ref in inputs:
        d, n = ref.split("/") if "/" in ref else (None, ref)
        ports.append({"product": n, **({"domain": d} if d else {})})
    return product(name=name, namespace=domain, domain=domain, inputPorts=ports)


def test_upstream_defaults_to_own_domain_and_dedupes() -> None:
    assert upstream_refs(p("x", "sales", "orders", "sales/orders", "finance/ledger")) == [
        "sales/orders",
        "finance/ledger",
    ]


def test_downstream_is_the_inverse_of_upstream() -> None:
    g = Graph.of(
        [
            p("orders"),
            p("revenue", "sales", "orders"),
            p("c360", "analytics", "sales/orders", "sales/revenue"),
        ]
    )
    assert g.downstream("sales/orders") == ["analytics/c360", "sales/revenue"]
    assert g.transitive_downstream("sales/orders") == ["analytics/c360", "sales/revenue"]
    assert g.downstream("analytics/c360") == []


def test_missing_upstream_is_reported() -> None:
    g = Graph.of([p("revenue", "sales", "orders", "finance/ledger")])
    assert g.missing("sales/revenue") == ["sales/orders", "finance/ledger"]


def test_cycles_are_found_once() -> None:
    g = Graph.of(
        [
            p("a", "sales", "b"),
            p("b", "sales", "c"),
            p("c", "sales", "a"),
            p("d", "sales", "a"),
            p("self", "sales", "self"),
        ]
    )
    cycles = g.cycles()
    assert len(cycles) == 2
    assert ["sales/self", "sales/self"] in cycles
    three = next(c for c in cycles if len(c) == 4)
    assert three[0] == three[-1] and set(three) == {"sales/a", "sales/b", "sales/c"}


def test_acyclic_graph_has_no_cycles() -> None:
    assert Graph.of([p("a"), p("b", "sales", "a"), p("c", "sales", "a", "b")]).cycles() == []


def test_the_operator_finds_the_cycle_through_one_product() -> None:
    products = [
        p("a", "sales", "b"),
        p("b", "sales", "c", "x"),
        p("c", "sales", "a"),
        p("d", "sales", "a"),
        p("x"),
        p("self", "sales", "self"),
    ]
    lookup = GraphLookup(Graph.of(products))
    by_name = {q.metadata.name: q for q in products}
    # The path in reading order: a reads b, b reads c, c reads a.
    assert cycle_through(by_name["a"], lookup) == ["sales/a", "sales/b", "sales/c", "sales/a"]
    assert cycle_through(by_name["c"], lookup) == ["sales/c", "sales/a", "sales/b", "sales/c"]
    assert cycle_through(by_name["self"], lookup) == ["sales/self", "sales/self"]
    # Reading a cycle is not being on one.
    assert cycle_through(by_name["d"], lookup) == []
    assert cycle_through(by_name["x"], lookup) == []
