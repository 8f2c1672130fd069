"""The GitOps loop for real: ArgoCD (repo server, application controller, ApplicationSet
controller, Redis) syncs this repository from a local bare git repository onto a cluster
with a node, the operator running from its image as the chart's pod.

Every change is a commit, followed by a refresh annotation on the Applications it touches
(what a push webhook does), never a fixed sleep. One cluster and one ArgoCD for the
module; the tests run in file order and build on each other's commits.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import localcluster
from datamesh.api.constants import MANAGED_BY_LABEL
from datamesh.api.models import DataProduct
from datamesh.controller.provisioning import LABEL_PRODUCT, plan
from localcluster import gitops
from localcluster import node as node_module
from localcluster.argocd import ArgoCD
from localcluster.common import ClusterError
from tests.support import ROOT
from tests.support.cluster import Cluster
from tests.support.factories import product_dict
from tests.support.waiting import wait_for

DOMAIN = "sales"
DOMAIN_APP = f"products-{DOMAIN}"
SYNC_TIMEOUT_S = 600
STEP_TIMEOUT_S = 180
RETAINED_LABEL = "datamesh.io/retained"


@dataclass
class Mesh:
    cluster: Cluster
    remote: gitops.LocalRemote

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = self.cluster.kubectl(*args, input=input, check=check)
        return proc.stdout if proc.returncode == 0 else ""

    def get(self, kind: str, name: str, ns: str = DOMAIN) -> dict[str, Any] | None:
        out = self.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
        return json.loads(out) if out else None

    def app(self, name: str) -> dict[str, Any]:
        return gitops.applications(self.kubectl)[name]

    def commit(self, message: str, changes: dict[str, str | None], *apps: str) -> str:
        """Commit, push and refresh ``apps``; returns the commit."""
        revision = self.remote.commit(message, changes)
        gitops.refresh(self.kubectl, *apps)
        return revision

    def wait_app(
        self, name: str, holds: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        """Poll the Application until ``holds`` is true of it; returns it."""

        last: list[dict[str, Any]] = [{}]

        def check() -> dict[str, Any] | None:
            last[0] = self.app(name)
            return last[0] if holds(last[0]) else None

        try:
            return dict(wait_for(check, STEP_TIMEOUT_S, f"{name}: {what}"))
        except AssertionError as exc:
            status = json.dumps(last[0].get("status") or {}, indent=1)[-4000:]
            raise AssertionError(f"{exc}\n{gitops.summary(last[0])}\n{status}") from None

    def wait_synced(self, app: str, revision: str) -> dict[str, Any]:
        return self.wait_app(app, lambda a: gitops.settled(a, revision), f"synced {revision[:12]}")

    def wait_product(
        self, name: str, holds: Callable[[dict[str, Any] | None], bool], what: str
    ) -> dict[str, Any] | None:
        """Poll the product (None when it does not exist) until ``holds`` is true of it."""
        last: list[dict[str, Any] | None] = []

        def check() -> bool:
            last[:] = [self.get("dataproduct", name)]
            return holds(last[0])

        wait_for(check, STEP_TIMEOUT_S, f"{name}: {what}")
        return last[0]

    def wait_object(
        self, kind: str, name: str, holds: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(kind, name)
            return obj if obj and holds(obj) else None

        return dict(wait_for(check, STEP_TIMEOUT_S, f"{kind}/{name}: {what}"))


def ready(product: dict[str, Any] | None) -> bool:
    if not product:
        return False
    status = product.get("status") or {}
    return status.get("observedGeneration") == product["metadata"]["generation"] and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def condition(product: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in product["status"]["conditions"] if c["type"] == type_)


def resource_health(app: dict[str, Any], kind: str, name: str) -> dict[str, Any] | None:
    for resource in (app.get("status") or {}).get("resources") or []:
        if resource["kind"] == kind and resource["name"] == name:
            return resource.get("health")
    return None


def product_file(name: str, **spec: Any) -> tuple[str, str]:
    doc = product_dict(**spec)
    doc["metadata"] = {"name": name, "namespace": DOMAIN, "labels": {"datamesh.io/domain": DOMAIN}}
    doc["spec"]["domain"] = DOMAIN
    doc["metadata"].pop("generation", None)
    return f"products/{DOMAIN}/{name}.yaml", yaml.safe_dump(doc, sort_keys=False)


def running_in(folder: Path) -> list[str]:
    """Processes whose working folder is under ``folder``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append((proc / "cmdline").read_text().replace("\0", " "))
        except OSError:
            continue
    return found


def kube(mesh_cluster: Cluster) -> gitops.Kubectl:
    def run(*args: str, input: str | None = None, check: bool = True) -> str:
        proc = mesh_cluster.kubectl(*args, input=input, check=check)
        return proc.stdout if proc.returncode == 0 else ""

    return run


@pytest.fixture(scope="module")
def node_cluster() -> Iterator[Cluster]:
    """A cluster with a node (the operator's Application is healthy only when its pod
    runs) and nothing else: ArgoCD installs the rest."""
    if reason := node_module.preflight():
        pytest.fail(f"this machine cannot run the node: {reason}")
    localcluster.build_images()
    directory = localcluster.cache_dir() / "test-clusters" / f"argocd-{os.getpid()}"
    try:
        with localcluster.running_cluster(directory, node=True) as state:
            yield Cluster(
                state.kubeconfig,
                str(Path(state.bin_dir) / "kubectl"),
                localcluster.LocalCluster(directory, node=True),
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_redis_or_argocd_failing_to_start_says_which_with_its_log(
    node_cluster: Cluster, tmp_path: Path
) -> None:
    """A busy port makes first Redis, then the repo server fail at start-up: the error
    names the process and shows its log, and nothing is left running."""
    helm_dir = localcluster.build_binaries()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for field, name, says in (
            ("redis_port", "redis", "Address already in use"),
            ("repo_server_port", "argocd-repo-server", "address already in use"),
        ):
            argocd = ArgoCD(tmp_path / field, die_with_parent=True)
            with pytest.raises(ClusterError) as failed:
                argocd.start(
                    kubeconfig=node_cluster.kubeconfig,
                    kubectl=kube(node_cluster),
                    helm_dir=helm_dir,
                    ports={field: port},
                )
            message = str(failed.value)
            assert message.startswith(f"{name} exited during start-up"), message
            assert says in message, message
            assert argocd.load() is None
            # Every process ArgoCD starts works in its folder: none may be left there.
            assert running_in(argocd.dir) == [], running_in(argocd.dir)


@pytest.fixture(scope="module")
def mesh(node_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """ArgoCD started on the cluster (it stops with the cluster) and the repository under
    test published to a local bare repository; nothing applied yet."""
    directory = Path(node_cluster.kubeconfig).parent
    argocd = ArgoCD(directory, die_with_parent=True)
    argocd.start(
        kubeconfig=node_cluster.kubeconfig,
        kubectl=kube(node_cluster),
        helm_dir=localcluster.build_binaries(),
        resync_seconds=30,
    )
    remote = gitops.LocalRemote(tmp_path_factory.mktemp("git"))
    remote.publish_tree(ROOT)
    try:
        yield Mesh(node_cluster, remote)
    finally:
        argocd.stop()


def test_sync_from_an_empty_cluster_reaches_every_product_ready_in_wave_order(
    mesh: Mesh,
) -> None:
    repository, tag = localcluster.image_names()["operator"].rsplit(":", 1)
    gitops.bootstrap(
        mesh.kubectl,
        mesh.remote.url,
        operator_values={
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "operator": {"resyncSeconds": 30},
        },
    )
    domains = sorted(d.name for d in (ROOT / "products").iterdir() if d.is_dir())
    apps = gitops.wait_all_synced(mesh.kubectl, 4 + len(domains), SYNC_TIMEOUT_S)
    assert set(apps) == {
        "datamesh",
        "datamesh-crds",
        "datamesh-operator",
        "datamesh-policies",
        *(f"products-{d}" for d in domains),
    }

    # Wave order: the root created each wave's Application only after the previous
    # wave's had synced and turned healthy.
    waves = [["datamesh-crds"], ["datamesh-operator"], ["datamesh-policies"]]
    waves.append([f"products-{d}" for d in domains])
    for earlier, later in itertools.pairwise(waves):
        finished = max(apps[a]["status"]["operationState"]["finishedAt"] for a in earlier)
        created = min(apps[a]["metadata"]["creationTimestamp"] for a in later)
        assert finished <= created, (earlier, finished, later, created)

    products = json.loads(mesh.kubectl("get", "dataproducts", "-A", "-o", "json"))["items"]
    live = {(d.parent.name, d.stem) for d in (ROOT / "products").glob("*/*.yaml")}
    live -= {(ns, "namespace") for ns in domains}
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in products} == live
    assert all(ready(p) for p in products), [p["status"] for p in products if not ready(p)]
    for p in products:
        health = resource_health(
            apps[f"products-{p['metadata']['namespace']}"], "DataProduct", p["metadata"]["name"]
        )
        assert health == {"status": "Healthy", "message": condition(p, "Ready")["message"]}
    policies = json.loads(mesh.kubectl("get", "gp", "-n", "datamesh-system", "-o", "json"))
    for gp in policies["items"]:
        health = resource_health(
            apps["datamesh-policies"], "GovernancePolicy", gp["metadata"]["name"]
        )
        assert health and health["status"] == "Healthy", gp["metadata"]["name"]


def health_is(status: str, product: str) -> Callable[[dict[str, Any]], bool]:
    """The Application shows ``product``'s health as ``status``."""
    return lambda app: (resource_health(app, "DataProduct", product) or {}).get("status") == status


def app_health(app: dict[str, Any]) -> str | None:
    return ((app.get("status") or {}).get("health") or {}).get("status")


def reconciled(product: dict[str, Any] | None) -> bool:
    status = (product or {}).get("status") or {}
    return bool(product) and status.get("observedGeneration") == product["metadata"]["generation"]  # type: ignore[index]


def test_a_commit_adding_a_compliant_product_syncs_it_ready(mesh: Mesh) -> None:
    path, text = product_file("argo-orders")
    revision = mesh.commit("Add argo-orders", {path: text}, DOMAIN_APP)
    mesh.wait_synced(DOMAIN_APP, revision)
    product = mesh.wait_product("argo-orders", ready, "Ready")
    assert product
    app = mesh.wait_app(DOMAIN_APP, health_is("Healthy", "argo-orders"), "argo-orders Healthy")
    assert resource_health(app, "DataProduct", "argo-orders") == {
        "status": "Healthy",
        "message": condition(product, "Ready")["message"],
    }
    claim = mesh.get("pvc", "argo-orders-data")
    assert claim and claim["metadata"]["labels"][MANAGED_BY_LABEL]


def test_a_commit_adding_a_non_compliant_product_degrades_it_and_its_domain(mesh: Mesh) -> None:
    path, text = product_file("argo-no-sla", sla=None)
    revision = mesh.commit("Add argo-no-sla without an SLA", {path: text}, DOMAIN_APP)
    mesh.wait_synced(DOMAIN_APP, revision)
    product = mesh.wait_product("argo-no-sla", reconciled, "reconciled")
    assert product
    ready_condition = condition(product, "Ready")
    assert ready_condition["reason"] == "NonCompliant"
    assert "sla" in ready_condition["message"].lower()
    app = mesh.wait_app(DOMAIN_APP, lambda a: app_health(a) == "Degraded", "Degraded")
    assert resource_health(app, "DataProduct", "argo-no-sla") == {
        "status": "Degraded",
        "message": ready_condition["message"],
    }
    revision = mesh.commit("Remove argo-no-sla", {path: None}, DOMAIN_APP)
    mesh.wait_app(
        DOMAIN_APP,
        lambda a: gitops.settled(a, revision) and app_health(a) == "Healthy",
        "Healthy again",
    )


def test_a_commit_with_a_product_the_crd_refuses_shows_the_apiservers_message(
    mesh: Mesh,
) -> None:
    path, text = product_file("argo-invalid", classification="top-secret")
    revision = mesh.commit("Add argo-invalid", {path: text}, DOMAIN_APP)

    def refused(app: dict[str, Any]) -> bool:
        # ArgoCD retries the sync (the Application's retry policy), so the operation may be
        # Running between attempts; its message carries the apiserver's refusal.
        operation = (app.get("status") or {}).get("operationState") or {}
        return revision in (operation.get("syncResult") or {}).get("revisions", []) and (
            "top-secret" in operation.get("message", "")
        )

    app = mesh.wait_app(DOMAIN_APP, refused, f"sync of {revision[:12]} refused")
    message = app["status"]["operationState"]["message"]
    assert 'spec.classification: Unsupported value: "top-secret"' in message, message
    assert 'DataProduct.datamesh.io "argo-invalid" is invalid' in message, message
    assert app["status"]["sync"]["status"] == "OutOfSync"
    assert mesh.get("dataproduct", "argo-invalid") is None
    # The domain's other products are still there, synced and Ready.
    for name in ("orders", "customers", "argo-orders"):
        assert ready(mesh.get("dataproduct", name)), name
    revision = mesh.commit("Remove argo-invalid", {path: None}, DOMAIN_APP)
    mesh.wait_synced(DOMAIN_APP, revision)


def test_a_commit_removing_a_product_prunes_it_keeps_its_claim_and_a_return_adopts_it(
    mesh: Mesh,
) -> None:
    path = f"products/{DOMAIN}/argo-orders.yaml"
    text = mesh.remote.read(path)
    old = mesh.get("dataproduct", "argo-orders")
    assert old
    revision = mesh.commit("Remove argo-orders", {path: None}, DOMAIN_APP)
    mesh.wait_synced(DOMAIN_APP, revision)
    mesh.wait_product("argo-orders", lambda p: p is None, "pruned")
    claim = mesh.wait_object(
        "pvc",
        "argo-orders-data",
        lambda c: c["metadata"].get("labels", {}).get(RETAINED_LABEL) == "true",
        "retained",
    )
    assert not claim["metadata"].get("ownerReferences")
    assert claim["metadata"]["labels"][MANAGED_BY_LABEL]

    revision = mesh.commit("Bring argo-orders back", {path: text}, DOMAIN_APP)
    mesh.wait_synced(DOMAIN_APP, revision)
    product = mesh.wait_product("argo-orders", ready, "Ready again")
    assert product and product["metadata"]["uid"] != old["metadata"]["uid"]
    adopted = mesh.wait_object(
        "pvc",
        "argo-orders-data",
        lambda c: RETAINED_LABEL not in c["metadata"].get("labels", {}),
        "adopted by the returning product (no longer marked retained)",
    )
    # The same claim, with the rows it held: adopted, never recreated.
    assert adopted["metadata"]["uid"] == claim["metadata"]["uid"]
    assert not adopted["metadata"].get("ownerReferences")


def test_a_global_policy_commit_degrades_a_product_without_a_product_commit(
    mesh: Mesh,
) -> None:
    """Raise the availability floor above argo-orders' 99.5: its health turns Degraded
    though no product file changed; restoring the policy heals it."""
    path = "policies/global/availability.yaml"
    original = mesh.remote.read(path)
    stricter = original.replace(">= 95.0", ">= 99.9").replace(
        "at least 95 (percent)", "at least 99.9 (percent)"
    )
    assert stricter != original
    revision = mesh.commit("Availability at least 99.9", {path: stricter}, "datamesh-policies")
    mesh.wait_synced("datamesh-policies", revision)

    def degraded(app: dict[str, Any]) -> bool:
        # ArgoCD re-reads a resource's health when the object changes (it watches the
        # cluster); the refresh only hurries the Application's own summary.
        if health_is("Degraded", "argo-orders")(app):
            return True
        gitops.refresh(mesh.kubectl, DOMAIN_APP)
        return False

    app = mesh.wait_app(DOMAIN_APP, degraded, "argo-orders Degraded")
    health = resource_health(app, "DataProduct", "argo-orders") or {}
    assert "at least 99.9" in health.get("message", ""), health

    revision = mesh.commit("Availability at least 95 again", {path: original}, "datamesh-policies")
    mesh.wait_synced("datamesh-policies", revision)
    mesh.wait_product("argo-orders", ready, "Ready again")


def test_the_operator_restarting_mid_sync_changes_nothing_in_the_end_state(mesh: Mesh) -> None:
    names = [f"argo-batch-{i}" for i in range(6)]
    files = dict(product_file(name) for name in names)

    def operator_pods() -> set[str]:
        """The operator's pods that are not on their way out."""
        out = json.loads(mesh.kubectl("get", "pods", "-n", "datamesh-system", "-o", "json"))
        return {
            p["metadata"]["uid"] for p in out["items"] if not p["metadata"].get("deletionTimestamp")
        }

    before = operator_pods()
    revision = mesh.commit("Add six products", files, DOMAIN_APP)
    # Kill the operator's pod as soon as the first of them exists.
    mesh.wait_product(names[0], lambda p: p is not None, "created by ArgoCD")
    mesh.kubectl("delete", "pods", "-n", "datamesh-system", "--all", "--wait=false")
    mesh.wait_synced(DOMAIN_APP, revision)
    for name in names:
        mesh.wait_product(name, ready, "Ready")
    after = operator_pods()
    assert after and not after & before, "the operator's pod was not replaced"
    # Exactly the children the operator's plan names, each once, owned as planned (the
    # claim of a Retain product by nobody, so no cascade can reach it).
    kinds = "pvc,configmap,serviceaccount,cronjob,role,rolebinding"
    for name in names:
        product = mesh.get("dataproduct", name)
        assert product
        uid = product["metadata"]["uid"]
        planned = {
            (c.kind, c.manifest["metadata"]["name"]): [
                o["uid"] for o in c.manifest["metadata"].get("ownerReferences") or []
            ]
            for c in plan(DataProduct.model_validate(product), uid, compliant=True)
        }
        found = json.loads(
            mesh.kubectl("get", kinds, "-n", DOMAIN, "-l", f"{LABEL_PRODUCT}={name}", "-o", "json")
        )["items"]
        assert {
            (o["kind"], o["metadata"]["name"]): [
                r["uid"] for r in o["metadata"].get("ownerReferences") or []
            ]
            for o in found
        } == planned
        assert len(found) == len(planned)
    mesh.wait_app(
        DOMAIN_APP,
        lambda a: gitops.settled(a, revision) and app_health(a) == "Healthy",
        "Healthy",
    )
