"""The live mesh's pipeline order: every product after its upstreams."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster import livemesh
from localcluster.common import ClusterError
from tests.support.live_repo import live_products


def item(ref: str, *inputs: str, pipeline: bool = True) -> dict[str, Any]:
    domain, name = ref.split("/")
    ports = [{"product": i.split("/")[1], "domain": i.split("/")[0]} for i in inputs]
    spec: dict[str, Any] = {"domain": domain, "inputPorts": ports}
    if pipeline:
        spec["pipeline"] = {"schedule": "0 * * * *", "image": "x"}
    return {"metadata": {"namespace": domain, "name": name}, "spec": spec}


def test_the_live_products_run_upstreams_first() -> None:
    products = live_products()
    waves = livemesh.pipeline_waves(products)
    position = {f"{ns}/{name}": i for i, wave in enumerate(waves) for ns, name in wave}
    assert len(position) == sum(1 for p in products if p["spec"].get("pipeline"))
    for p in products:
        spec = p["spec"]
        ref = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for port in spec.get("inputPorts") or []:
            upstream = f"{port.get('domain') or spec['domain']}/{port['product']}"
            assert position[upstream] < position[ref], (upstream, ref)
    # Sources load first, and the deepest consumer (customer-360) runs last.
    assert ("sales", "orders") in waves[0] and ("product-analytics", "customer-360") in waves[-1]


def test_an_upstream_without_a_pipeline_does_not_hold_anyone_back() -> None:
    waves = livemesh.pipeline_waves([item("a/x", "a/manual"), item("a/manual", pipeline=False)])
    assert waves == [[("a", "x")]]


def test_a_cycle_is_an_error_not_a_hang() -> None:
    with pytest.raises(ClusterError, match="cycle"):
        livemesh.pipeline_waves([item("a/x", "a/y"), item("a/y", "a/x")])
