"""The operator as a real process against the real control plane, checked with kubectl."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support import ROOT
from tests.support.cluster import Cluster
from tests.support.factories import dump, product_dict
from tests.support.kube import get, phase, pipeline_suspended, products, resource_versions
from tests.support.live_repo import LIVE_PRODUCTS, apply_live
from tests.support.operator import Operator
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def live(operator: Operator) -> Operator:
    apply_live(operator.cluster)
    wait_for(
        lambda: (
            all(
                p.get("status", {}).get("phase") == "Ready"
                for p in products(operator.cluster).values()
                if p["metadata"]["namespace"] != "datamesh-system"
            )
            and set(LIVE_PRODUCTS) <= set(products(operator.cluster))
        ),
        timeout=90,
        what="every live product to be Ready",
    )
    return operator


def test_live_products_are_ready_and_compliant(live: Operator) -> None:
    cluster = live.cluster
    table = cluster.kubectl("get", "dataproducts", "-A").stdout.splitlines()
    assert table[0].split() == [
        "NAMESPACE",
        "NAME",
        "DOMAIN",
        "VERSION",
        "CLASS",
        "COMPLIANT",
        "PHASE",
        "QUALITY",
        "AGE",
    ]
    rows = {f"{r.split()[0]}/{r.split()[1]}": r.split() for r in table[1:]}
    for ref in LIVE_PRODUCTS:
        assert rows[ref][5:7] == ["true", "Ready"], rows[ref]
    orders = products(cluster)["sales/orders"]
    st = orders["status"]
    assert st["observedGeneration"] == orders["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Compliant": "True",
        "StorageReady": "True",
        "PipelineReady": "True",
        "LineageResolved": "True",
        "Ready": "True",
    }
    assert st["children"] == {
        "storageClaim": "orders-data",
        "cronJob": "orders-pipeline",
        "configMap": "orders-contract",
        "serviceAccount": "orders-pipeline",
        "role": "orders-reader",
        "roleBinding": "orders-reader",
    }
    assert "sales/revenue-daily" in st["lineage"]["downstream"]
    assert st["compliance"]["violationCount"] == 0
    assert any(p["policy"] == "sales/customer-contact-pii" for p in st["compliance"]["policies"])
    c360 = products(cluster)["product-analytics/customer-360"]["status"]["lineage"]
    assert "marketing/customer-segments" in c360["upstream"] and c360["missing"] == []


def test_children_are_owned_and_meet_the_restricted_standard(live: Operator) -> None:
    cluster = live.cluster
    uid = get(cluster, "dataproduct", "sales", "orders")["metadata"]["uid"]  # type: ignore[index]
    for kind, name in [
        ("cronjob", "orders-pipeline"),
        ("configmap", "orders-contract"),
        ("serviceaccount", "orders-pipeline"),
        ("role", "orders-reader"),
        ("rolebinding", "orders-reader"),
    ]:
        obj = get(cluster, kind, "sales", name)
        assert obj is not None, (kind, name)
        owners = obj["metadata"]["ownerReferences"]
        assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [
            ("DataProduct", uid, True)
        ]
    # The claim (deletionPolicy Retain) is labelled, never owned: no cascade can reach it.
    pvc = get(cluster, "pvc", "sales", "orders-data")
    assert pvc["metadata"]["labels"]["datamesh.io/product"] == "orders"  # type: ignore[index]
    assert not pvc["metadata"].get("ownerReferences")  # type: ignore[index]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"  # type: ignore[index]
    assert pvc["metadata"]["annotations"]["datamesh.io/classification"] == "confidential"  # type: ignore[index]
    pod = get(cluster, "cronjob", "sales", "orders-pipeline")["spec"]["jobTemplate"]["spec"][  # type: ignore[index]
        "template"
    ]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    contract = yaml.safe_load(
        get(cluster, "configmap", "sales", "orders-contract")[  # type: ignore[index]
            "data"
        ]["contract.yaml"]
    )
    assert contract["version"] == "1.0.0" and contract["sla"]["freshness"] == "15m"
    binding = get(cluster, "rolebinding", "sales", "orders-reader")
    assert {s["name"] for s in binding["subjects"]} == {  # type: ignore[index]
        "datamesh:domain:sales",
        "datamesh:domain:finance",
        "datamesh:domain:marketing",
    }
    # The reader group can read the contract and nothing else.
    can = cluster.kubectl(
        "auth",
        "can-i",
        "get",
        "configmap/orders-contract",
        "-n",
        "sales",
        "--as=alice",
        "--as-group=datamesh:domain:finance",
        check=False,
    )
    assert can.stdout.strip() == "yes"
    cannot = cluster.kubectl(
        "auth",
        "can-i",
        "get",
        "secrets",
        "-n",
        "sales",
        "--as=alice",
        "--as-group=datamesh:domain:finance",
        check=False,
    )
    assert cannot.stdout.strip() == "no"


def test_policy_change_flips_product_and_suspends_pipeline_then_restores(live: Operator) -> None:
    cluster = live.cluster
    path = ROOT / "policies" / "global" / "availability.yaml"
    stricter = yaml.safe_load(path.read_text())
    stricter["spec"]["rules"][0]["expression"] = "object.spec.sla.availability >= 99.7"
    stricter["spec"]["rules"][0]["message"] = "availability must be at least 99.7"
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(stricter))
    try:
        _wait_customers(cluster, "NonCompliant", suspended=True)
        obj = get(cluster, "dataproduct", "sales", "customers")
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")  # type: ignore[index]
        assert ready["status"] == "False" and ready["reason"] == "NonCompliant"
        assert "availability must be at least 99.7" in ready["message"]
        assert get(cluster, "pvc", "sales", "customers-data") is not None, "storage is kept"
        # orders promises 99.9%: untouched.
        assert phase(cluster, "sales", "orders") == "Ready"
        events = cluster.kubectl(
            "get",
            "events",
            "-n",
            "sales",
            "--field-selector",
            "involvedObject.name=customers",
            "-o",
            "json",
        ).stdout
        assert any(e["reason"] == "NonCompliant" for e in json.loads(events)["items"])
        gp = get(cluster, "gp", "datamesh-system", "availability")
        assert gp["status"]["violating"] >= 1  # type: ignore[index]
    finally:
        cluster.kubectl("apply", "-f", str(path))
    _wait_customers(cluster, "Ready", suspended=False)


def _wait_customers(cluster: Cluster, want: str, *, suspended: bool) -> None:
    """sales/customers reaches the phase, then its pipeline the suspension, within 20 s."""
    wait_for(
        lambda: phase(cluster, "sales", "customers") == want,
        timeout=20,
        what=f"customers to be {want}",
    )
    wait_for(
        lambda: pipeline_suspended(cluster, "sales", "customers-pipeline") is suspended,
        timeout=20,
        what=f"the pipeline's suspend to be {suspended}",
    )


def test_restart_and_resync_write_nothing_for_unchanged_products(live: Operator) -> None:
    cluster = live.cluster
    namespaces = sorted({r.split("/")[0] for r in LIVE_PRODUCTS})
    wait_for(
        lambda: all(phase(cluster, *r.split("/")) == "Ready" for r in LIVE_PRODUCTS),
        what="a settled mesh",
    )
    before = resource_versions(cluster, namespaces)
    # Forced resync: the operator re-checks every product every 2 s.
    resyncs = live.metric_sum("datamesh_reconciles_total", trigger="resync")
    wait_for(
        lambda: (
            live.metric_sum("datamesh_reconciles_total", trigger="resync")
            >= resyncs + 2 * len(LIVE_PRODUCTS)
        ),
        timeout=30,
        what="two resync rounds",
    )
    assert resource_versions(cluster, namespaces) == before
    # Restart: resume handlers run for every product and write nothing.
    live.stop()
    live.start()
    wait_for(
        lambda: (
            live.metric_sum("datamesh_reconciles_total", trigger="resume") >= len(LIVE_PRODUCTS)
        ),
        what="resume of every product",
    )
    wait_for(
        lambda: (
            live.metric_sum("datamesh_reconciles_total", trigger="resync") >= len(LIVE_PRODUCTS)
        ),
        what="a resync after restart",
    )
    writes = {k: v for k, v in live.metrics().items() if "api_writes_total" in k}
    assert live.metric_sum("datamesh_api_writes_total") == 0, writes
    assert resource_versions(cluster, namespaces) == before


def _product_in(namespace: str, name: str = "ledger", **spec: Any) -> str:
    spec.setdefault("domain", namespace)
    doc = product_dict(**spec)
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"]["pipeline"] = {"schedule": "0 0 1 1 *", "image": "images.example.com/p:1"}
    return dump(doc)


@pytest.mark.parametrize(
    ("cascade", "operator_down"),
    [
        ("background", False),  # kubectl's default
        ("foreground", False),  # how ArgoCD prunes by default: dependents are deleted first
        ("foreground", True),  # ... while the operator is down (upgrade, crash)
        ("orphan", False),
    ],
)
def test_retain_keeps_the_claim_and_recreating_readopts_it(
    live: Operator, namespace: str, cascade: str, operator_down: bool
) -> None:
    cluster = live.cluster
    cluster.kubectl("apply", "-f", "-", input=_product_in(namespace))
    wait_for(lambda: phase(cluster, namespace, "ledger") == "Ready", what="ledger Ready")
    claim_uid = get(cluster, "pvc", namespace, "ledger-data")["metadata"]["uid"]  # type: ignore[index]

    if operator_down:
        live.stop()
    try:
        cluster.kubectl(
            "delete",
            "dataproduct",
            "ledger",
            "-n",
            namespace,
            f"--cascade={cascade}",
            "--wait=false",
        )
        if operator_down:
            # The collector deletes the owned dependents while our finalizer holds the
            # product; once the cron job is gone it has been through all of them.
            wait_for(
                lambda: get(cluster, "cronjob", namespace, "ledger-pipeline") is None,
                what="the collector to delete the dependents",
            )
            claim = get(cluster, "pvc", namespace, "ledger-data")
            assert claim is not None and not claim["metadata"].get("deletionTimestamp")
    finally:
        if operator_down:
            live.start()
    wait_for(
        lambda: get(cluster, "dataproduct", namespace, "ledger") is None, what="the product gone"
    )
    claim = get(cluster, "pvc", namespace, "ledger-data")
    assert claim is not None and claim["metadata"]["uid"] == claim_uid
    assert not claim["metadata"].get("deletionTimestamp")
    assert not claim["metadata"].get("ownerReferences")
    assert claim["metadata"]["labels"]["datamesh.io/retained"] == "true"
    if cascade != "orphan":  # the other children go with the product (garbage collection)
        wait_for(
            lambda: get(cluster, "cronjob", namespace, "ledger-pipeline") is None,
            what="the cron job to be collected",
        )

    cluster.kubectl("apply", "-f", "-", input=_product_in(namespace))
    wait_for(lambda: phase(cluster, namespace, "ledger") == "Ready", what="ledger Ready again")
    new_uid = get(cluster, "dataproduct", namespace, "ledger")["metadata"]["uid"]  # type: ignore[index]
    claim = get(cluster, "pvc", namespace, "ledger-data")
    assert claim["metadata"]["uid"] == claim_uid, "the same claim, re-adopted"  # type: ignore[index]
    assert "datamesh.io/retained" not in claim["metadata"]["labels"]  # type: ignore[index]
    st = get(cluster, "dataproduct", namespace, "ledger")["status"]  # type: ignore[index]
    assert st["children"]["storageClaim"] == "ledger-data"
    cron = get(cluster, "cronjob", namespace, "ledger-pipeline")
    assert [o["uid"] for o in cron["metadata"]["ownerReferences"]] == [new_uid]  # type: ignore[index]


def test_delete_policy_removes_storage_and_children(live: Operator, namespace: str) -> None:
    cluster = live.cluster
    cluster.kubectl("apply", "-f", "-", input=_product_in(namespace, deletionPolicy="Delete"))
    wait_for(lambda: phase(cluster, namespace, "ledger") == "Ready", what="ledger Ready")
    cluster.kubectl("delete", "dataproduct", "ledger", "-n", namespace, "--timeout=60s")
    for kind, name in [
        ("pvc", "ledger-data"),
        ("cronjob", "ledger-pipeline"),
        ("configmap", "ledger-contract"),
        ("role", "ledger-reader"),
    ]:
        wait_for(
            lambda k=kind, n=name: (
                get(cluster, k, namespace, n) is None
                or get(cluster, k, namespace, n)["metadata"].get("deletionTimestamp")
            ),  # type: ignore[index]
            what=f"{kind}/{name} to be deleted",
        )


def test_missing_upstream_sets_a_condition(live: Operator, namespace: str) -> None:
    cluster = live.cluster
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=_product_in(
            namespace, name="derived", inputPorts=[{"product": "nowhere", "domain": "ghost"}]
        ),
    )
    wait_for(lambda: phase(cluster, namespace, "derived") == "Degraded", what="derived Degraded")
    obj = get(cluster, "dataproduct", namespace, "derived")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")  # type: ignore[index]
    assert ready["status"] == "False" and ready["reason"] == "UpstreamMissing"
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == "LineageResolved")  # type: ignore[index]
    assert cond["status"] == "False" and cond["reason"] == "UpstreamMissing"
    assert "ghost/nowhere" in cond["message"]
    assert obj["status"]["lineage"]["missing"] == ["ghost/nowhere"]  # type: ignore[index]


def test_domain_mismatch_is_non_compliant_and_provisions_nothing(
    live: Operator, namespace: str
) -> None:
    cluster = live.cluster
    cluster.kubectl("apply", "-f", "-", input=_product_in(namespace, domain="finance"))
    wait_for(
        lambda: phase(cluster, namespace, "ledger") == "NonCompliant", what="ledger NonCompliant"
    )
    obj = get(cluster, "dataproduct", namespace, "ledger")
    violation = obj["status"]["compliance"]["violations"][0]  # type: ignore[index]
    assert violation["policy"] == "builtin/domain-isolation"
    assert f"namespace {namespace!r} belongs to domain {namespace!r}" in violation["message"]
    assert get(cluster, "pvc", namespace, "ledger-data") is None
    assert get(cluster, "cronjob", namespace, "ledger-pipeline") is None


def test_invalid_policy_is_reported_and_others_still_apply(live: Operator, namespace: str) -> None:
    cluster = live.cluster
    broken = {
        "apiVersion": "datamesh.io/v1alpha1",
        "kind": "GovernancePolicy",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {
            "description": "d",
            "enforcement": "block",
            "rules": [{"name": "typo", "expression": "object.spec.domian.frob()", "message": "m"}],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(broken))
    cluster.kubectl("apply", "-f", "-", input=_product_in(namespace, sla=None))

    def valid_condition() -> dict[str, Any] | None:
        obj = get(cluster, "gp", namespace, "broken")
        return next(
            (
                c
                for c in (obj or {}).get("status", {}).get("conditions", [])
                if c["type"] == "Valid"
            ),
            None,
        )

    cond = wait_for(valid_condition, what="the Valid condition")
    assert cond["status"] == "False" and cond["reason"] == "InvalidExpression"
    assert "undeclared reference to 'frob'" in cond["message"]
    # The global SLA policy still blocks the product.
    wait_for(lambda: phase(cluster, namespace, "ledger") == "NonCompliant", what="ledger blocked")
    obj = get(cluster, "dataproduct", namespace, "ledger")
    assert [
        v["rule"]
        for v in obj["status"]["compliance"]["violations"]  # type: ignore[index]
        if v["enforcement"] == "block"
    ] == ["sla-present"]
    assert live.alive()


def test_pipeline_pods_are_admitted_under_the_restricted_standard(live: Operator) -> None:
    """The domain namespaces enforce the restricted Pod Security Standard; a Job run from
    a product's CronJob gets its pod admitted (no kubelet runs it here, but admission
    happens at creation, where a violation would be refused)."""
    cluster = live.cluster
    ns = json.loads(cluster.kubectl("get", "namespace", "sales", "-o", "json").stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    cluster.kubectl("create", "job", "pss-check", "--from=cronjob/orders-pipeline", "-n", "sales")
    try:

        def pods() -> list[dict[str, Any]]:
            out = cluster.kubectl(
                "get", "pods", "-n", "sales", "-l", "job-name=pss-check", "-o", "json"
            ).stdout
            return list(json.loads(out)["items"])

        created = wait_for(pods, timeout=60, what="the job's pod to be admitted")
        assert created[0]["spec"]["securityContext"]["runAsNonRoot"] is True
        events = cluster.kubectl(
            "get",
            "events",
            "-n",
            "sales",
            "--field-selector",
            "involvedObject.name=pss-check",
            "-o",
            "json",
        ).stdout
        assert not any(e["reason"] == "FailedCreate" for e in json.loads(events)["items"])
    finally:
        cluster.kubectl("delete", "job", "pss-check", "-n", "sales", "--wait=false", check=False)
