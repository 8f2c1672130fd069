"""The live repository (products/ and policies/) on the test cluster."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support import ROOT
from tests.support.cluster import Cluster

# Every live product as ``namespace/name``, from the files under products/.
LIVE_PRODUCTS = sorted(
    f"{p.parent.name}/{p.stem}"
    for p in (ROOT / "products").rglob("*.yaml")
    if p.name != "namespace.yaml"
)


def apply_live(cluster: Cluster) -> None:
    """Apply the domain namespaces, then every live policy and product."""
    namespaces = sorted(ROOT.glob("*/*/namespace.yaml"))
    for ns in namespaces:
        cluster.kubectl("apply", "-f", str(ns))
    cluster.kubectl("apply", "-R", "-f", str(ROOT / "policies"))
    cluster.kubectl("apply", "-R", "-f", str(ROOT / "products"))


def live_products() -> list[dict[str, Any]]:
    """Every live product's document, parsed from products/."""
    return [
        yaml.safe_load(p.read_text())
        for p in sorted((ROOT / "products").rglob("*.yaml"))
        if p.name != "namespace.yaml"
    ]
