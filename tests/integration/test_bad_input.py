"""The bad-input corpus (tests/data/invalid) through the real apiserver and operator.

`meshctl validate` refuses every file (tests/unit/meshctl/test_invalid_corpus.py); here each one is
`kubectl apply`-ed. The apiserver must refuse it naming the field, or, when only the whole
mesh can tell (policy violations, lineage, hostile CEL), the operator must report it in
the object's status. Either way nothing else changes, and the operator stays up with no
unhandled errors.

The text the cluster must show is the field path of the file's `# expect:` line, or its
`# cluster:` line when the apiserver words it differently.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamesh.meshctl.loader import KubectlLoader
from tests.support import ROOT
from tests.support.cluster import Cluster
from tests.support.kube import products
from tests.support.live_repo import LIVE_PRODUCTS, apply_live
from tests.support.operator import Operator
from tests.support.waiting import wait_for

CORPUS = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))


def cluster_expectation(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    for line in lines[:3]:
        if line.startswith("# cluster: "):
            return line.removeprefix("# cluster: ")
    expect = lines[0].removeprefix("# expect: ")
    field, sep, _ = expect.partition(": ")
    assert sep and field.startswith(("spec", "metadata")), (
        f"{path.name}: give a '# cluster:' line, the expect line names no field"
    )
    return field


@pytest.fixture(scope="module")
def mesh(operator: Operator) -> Operator:
    apply_live(operator.cluster)
    wait_for(
        lambda: all(
            products(operator.cluster).get(ref, {}).get("status", {}).get("phase") == "Ready"
            for ref in LIVE_PRODUCTS
        ),
        timeout=90,
        what="every live product to be Ready",
    )
    return operator


def _object(cluster: Cluster, path: Path) -> dict[str, Any] | None:
    """The stored object the file names, if any."""
    try:  # read as kubectl reads it: a date such as 2027-02-30 stays a string
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=KubectlLoader)
    except yaml.YAMLError:
        return None
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or not meta.get("name") or doc.get("kind") is None:
        return None
    proc = cluster.kubectl(
        "get", str(doc["kind"]), str(meta["name"]), "-n", str(meta.get("namespace", "default")),
        "--ignore-not-found", "-o", "json", check=False,
    )  # fmt: skip
    # a kind the apiserver does not serve cannot have been stored
    return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None


def _reported(obj: dict[str, Any] | None) -> str | None:
    """The object's status once the operator has handled its current generation."""
    if not obj:
        return None
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"].get("generation"):
        return None
    if obj["kind"] == "DataProduct" and st.get("phase") in (None, "Pending", "Provisioning"):
        return None
    return json.dumps(st)


def test_corpus_has_sixty_cases() -> None:
    assert len(CORPUS) >= 60


@pytest.mark.parametrize("case", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_input_is_refused_or_reported(mesh: Operator, case: Path) -> None:
    cluster = mesh.cluster
    expected = cluster_expectation(case)
    before = _live_verdicts(cluster)
    proc = cluster.kubectl("apply", "-f", str(case), check=False)
    if proc.returncode != 0:
        assert expected in proc.stderr, proc.stderr[:2000]
        assert _object(cluster, case) is None, "refused, so nothing may be stored"
    else:
        try:
            status = wait_for(
                lambda: _reported(_object(cluster, case)), what=f"the operator to report {case}"
            )
            assert expected in status, status[:2000]
        finally:
            cluster.kubectl("delete", "-f", str(case), "--timeout=60s", check=False)
    time.sleep(0.2)
    assert mesh.alive(), mesh.log_tail()
    # Nothing else changed: every live product keeps its verdict. (An invalid policy in
    # the platform namespace is still listed among the policies a product was evaluated
    # against, so statuses may be rewritten; the verdicts may not move.)
    assert _live_verdicts(cluster) == before


def test_operator_survived_the_corpus_without_unhandled_errors(mesh: Operator) -> None:
    assert mesh.alive()
    assert mesh.metric_sum("datamesh_unhandled_errors_total") == 0
    # Bad input is a verdict in status, never a failed reconcile.
    assert mesh.metric_sum("datamesh_reconciles_total", outcome="error") == 0
    assert mesh.metric_sum("datamesh_reconciles_total") > 0
    assert all(
        p.get("status", {}).get("phase") == "Ready"
        for ref, p in products(mesh.cluster).items()
        if ref in LIVE_PRODUCTS
    )


def _live_verdicts(cluster: Cluster) -> dict[str, tuple[Any, ...]]:
    out = {}
    for ref, p in products(cluster).items():
        if ref in LIVE_PRODUCTS:
            st = p.get("status") or {}
            compliance = st.get("compliance") or {}
            out[ref] = (st.get("phase"), compliance.get("violationCount"))
    return out
