"""The operator is a careful deputy, running with exactly the chart's ServiceAccount: it
never changes or deletes an object under a child's name that is not this product's,
repairs its own children's immutable fields by replacing them, and provisions only in
domain namespaces."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.chart import chart_installed, service_account_kubeconfig
from tests.support.cluster import Cluster
from tests.support.factories import dump, product_dict
from tests.support.kube import get, phase
from tests.support.operator import Operator
from tests.support.waiting import wait_for

NAME = "ledger"
JOB = {"schedule": "0 0 1 1 *", "image": "images.example.com/p:1"}

FOREIGN: dict[str, dict[str, Any]] = {
    "persistentvolumeclaim": {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{NAME}-data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    },
    "cronjob": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"{NAME}-pipeline"},
        "spec": {
            "schedule": "5 4 * * *",
            "suspend": True,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox:1.36"}],
                        }
                    }
                }
            },
        },
    },
    "configmap": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{NAME}-contract"},
        "data": {"team": "our own settings"},
    },
    "serviceaccount": {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": f"{NAME}-pipeline"},
    },
    "role": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"{NAME}-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    },
    "rolebinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{NAME}-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    },
}
# What a foreign object blocks: the job needs the claim, the contract and the account;
# the binding needs the role.
BLOCKS = {
    "persistentvolumeclaim": {"cronjob"},
    "configmap": {"cronjob"},
    "serviceaccount": {"cronjob"},
    "role": {"rolebinding"},
}


@pytest.fixture(scope="module")
def deputy(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """The operator with a token of the chart's ServiceAccount, resyncing every second
    (a removed foreign object is noticed on the next reconcile)."""
    with chart_installed(crds):
        logs = tmp_path_factory.mktemp("deputy")
        kubeconfig = service_account_kubeconfig(crds, logs / "sa.kubeconfig")
        operator = Operator(crds, logs, kubeconfig=kubeconfig, resync_seconds="1")
        operator.start()
        try:
            yield operator
        finally:
            operator.stop()


def product(namespace: str, **spec: Any) -> str:
    doc = product_dict(domain=namespace, pipeline=JOB, **spec)
    doc["metadata"] = {"name": NAME, "namespace": namespace}
    return dump(doc)


def ready(cluster: Cluster, namespace: str) -> dict[str, Any]:
    obj = get(cluster, "dataproduct", namespace, NAME) or {}
    return next(
        (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {}
    )


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_foreign_object_under_a_childs_name_is_left_alone(
    deputy: Operator, namespace: str, kind: str
) -> None:
    cluster = deputy.cluster
    foreign = {**FOREIGN[kind], "metadata": {**FOREIGN[kind]["metadata"], "namespace": namespace}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(foreign))
    name = foreign["metadata"]["name"]
    before = get(cluster, kind, namespace, name)
    assert before is not None

    cluster.kubectl("apply", "-f", "-", input=product(namespace))
    condition = wait_for(
        lambda: (
            ready(cluster, namespace).get("reason") == "ChildConflict" and ready(cluster, namespace)
        ),
        what=f"ChildConflict for the foreign {kind}",
    )
    assert f"{foreign['kind']} {namespace}/{name}" in condition["message"]
    assert phase(cluster, namespace, NAME) == "Failed"
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={NAME}"
    ).stdout
    assert "ChildConflict" in events or f"{foreign['kind']} {namespace}/{name}" in events
    # Everything that does not depend on the foreign object is provisioned; what does is not.
    for other in sorted(set(FOREIGN) - {kind}):
        child = FOREIGN[other]["metadata"]["name"]
        exists = get(cluster, other, namespace, child) is not None
        assert exists is (other not in BLOCKS.get(kind, set())), (other, exists)
    assert get(cluster, kind, namespace, name) == before  # not one byte changed

    cluster.kubectl("delete", "dataproduct", NAME, "-n", namespace, "--wait=true")
    assert get(cluster, kind, namespace, name) == before  # no cascade reached it

    cluster.kubectl("apply", "-f", "-", input=product(namespace))
    wait_for(lambda: ready(cluster, namespace).get("reason") == "ChildConflict", what="conflict")
    cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=true")
    wait_for(lambda: phase(cluster, namespace, NAME) == "Ready", what="Ready once it is gone")
    mine = get(cluster, kind, namespace, name)
    assert mine is not None and mine["metadata"]["uid"] != before["metadata"]["uid"]


def test_an_owned_binding_with_another_role_is_replaced(deputy: Operator, namespace: str) -> None:
    cluster = deputy.cluster
    cluster.kubectl("apply", "-f", "-", input=product(namespace))
    wait_for(lambda: phase(cluster, namespace, NAME) == "Ready", what="Ready")
    binding = get(cluster, "rolebinding", namespace, f"{NAME}-reader")
    assert binding is not None
    # roleRef cannot be edited in place: a person replaces the object, keeping its owner.
    edited = {
        "apiVersion": binding["apiVersion"],
        "kind": "RoleBinding",
        "metadata": {
            k: binding["metadata"][k] for k in ("name", "namespace", "labels", "ownerReferences")
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": binding.get("subjects", []),
    }
    cluster.kubectl("replace", "--force", "-f", "-", input=json.dumps(edited))
    repaired = wait_for(
        lambda: (
            (b := get(cluster, "rolebinding", namespace, f"{NAME}-reader"))
            and b["roleRef"]["kind"] == "Role"
            and b
        ),
        what="the planned roleRef back",
    )
    assert repaired["roleRef"]["name"] == f"{NAME}-reader"
    wait_for(lambda: phase(cluster, namespace, NAME) == "Ready", what="Ready again")


def test_a_product_outside_a_domain_namespace_provisions_nothing(deputy: Operator) -> None:
    cluster = deputy.cluster
    plain = f"t-plain-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", plain)
    try:
        cluster.kubectl("apply", "-f", "-", input=product(plain))
        condition = wait_for(
            lambda: ready(cluster, plain).get("reason") == "NonCompliant" and ready(cluster, plain),
            what="NonCompliant outside a domain namespace",
        )
        assert "namespace-is-a-domain" in condition["message"]
        assert "datamesh.io/domain" in condition["message"]
        made = cluster.kubectl(
            "get",
            "pvc,cronjobs,configmaps,serviceaccounts,roles,rolebindings",
            "-n",
            plain,
            "-l",
            "datamesh.io/product",
            "-o",
            "name",
        ).stdout
        assert made.strip() == ""
    finally:
        cluster.kubectl("delete", "namespace", plain, "--wait=false", check=False)


def test_a_retained_claim_is_readopted_by_the_returning_product(
    deputy: Operator, namespace: str, tmp_path: Path
) -> None:
    cluster = deputy.cluster
    cluster.kubectl("apply", "-f", "-", input=product(namespace))
    wait_for(lambda: phase(cluster, namespace, NAME) == "Ready", what="Ready")
    claim = get(cluster, "pvc", namespace, f"{NAME}-data")
    assert claim is not None
    cluster.kubectl("delete", "dataproduct", NAME, "-n", namespace, "--wait=true")
    kept = get(cluster, "pvc", namespace, f"{NAME}-data")
    assert kept is not None and kept["metadata"]["labels"]["datamesh.io/retained"] == "true"
    cluster.kubectl("apply", "-f", "-", input=product(namespace))
    wait_for(lambda: phase(cluster, namespace, NAME) == "Ready", what="Ready again")
    back = get(cluster, "pvc", namespace, f"{NAME}-data")
    assert back is not None and back["metadata"]["uid"] == claim["metadata"]["uid"]
    assert "datamesh.io/retained" not in back["metadata"]["labels"]
