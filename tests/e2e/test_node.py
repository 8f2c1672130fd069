"""The data plane's first part: a real node. Claims bind, pipeline pods run under the
restricted standard and write real bytes, the operator runs as the chart's pod from its
own image, and ``cluster-down`` leaves nothing behind.

One cluster with a node for the module (the machine has one node slot); the tests run in
file order and the last one stops it and looks for leftovers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import localcluster
from datamesh.api.constants import DOMAIN_LABEL, PIPELINE_IMAGE
from localcluster import node as node_module
from tests.support import ROOT
from tests.support.chart import NAMESPACE, RELEASE, install_local_image
from tests.support.cluster import Cluster
from tests.support.factories import product_dict
from tests.support.kube import wait_job_complete
from tests.support.waiting import wait_for

DOMAIN = "nodetest"
DEPLOYMENT = f"{RELEASE}-datamesh-operator"
BURST = 300


@pytest.fixture(scope="module")
def node() -> Iterator[Cluster]:
    """A cluster with a node, the CRDs, a restricted domain namespace and the operator
    installed by its chart from the local image."""
    if reason := node_module.preflight():
        pytest.fail(f"this machine cannot run the node: {reason}")
    directory = localcluster.cache_dir() / "test-clusters" / f"node-{os.getpid()}"
    archives = localcluster.build_images()
    try:
        with localcluster.running_cluster(directory, node=True) as state:
            cluster = Cluster(
                state.kubeconfig,
                str(Path(state.bin_dir) / "kubectl"),
                localcluster.LocalCluster(directory, node=True),
            )
            cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
            cluster.kubectl("apply", "-f", str(ROOT / "policies" / "global" / "namespace.yaml"))
            cluster.kubectl(
                "apply",
                "-f",
                "-",
                input=json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {
                            "name": DOMAIN,
                            "labels": {
                                DOMAIN_LABEL: DOMAIN,
                                "pod-security.kubernetes.io/enforce": "restricted",
                            },
                        },
                    }
                ),
            )
            image_id = (archives / "operator.tar.id").read_text().strip()
            install_local_image(cluster, localcluster.image_names()["operator"], image_id)
            yield cluster
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def apply_product(cluster: Cluster, name: str, **spec: Any) -> None:
    doc = product_dict(**spec)
    doc["metadata"] = {"name": name, "namespace": DOMAIN}
    doc["spec"]["domain"] = DOMAIN
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))


def get(cluster: Cluster, kind: str, name: str, ns: str = DOMAIN) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def condition(cluster: Cluster, name: str, type_: str) -> dict[str, Any] | None:
    obj = get(cluster, "dataproduct", name) or {}
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return None


def phase(cluster: Cluster, name: str) -> str | None:
    return ((get(cluster, "dataproduct", name) or {}).get("status") or {}).get("phase")


def run_pipeline(cluster: Cluster, product: str, job: str) -> None:
    cluster.kubectl("create", "job", f"--from=cronjob/{product}-pipeline", job, "-n", DOMAIN)


def wait_complete(cluster: Cluster, job: str, timeout: int = 180) -> None:
    wait_job_complete(cluster, DOMAIN, job, timeout)


def claim_folder(cluster: Cluster, claim: str) -> Path:
    """Where the provisioner put the claim's volume on this machine."""
    pvc = wait_for(
        lambda: (get(cluster, "pvc", claim) or {}).get("spec", {}).get("volumeName"),
        60,
        f"claim {claim} bound",
    )
    pv = get(cluster, "pv", pvc, ns="") or {}
    spec = pv.get("spec", {})
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    assert path, f"volume {pvc} has no host path: {spec}"
    return Path(path)


def operator_metrics(cluster: Cluster) -> dict[str, float]:
    """Resync reconciles and API writes so far, read from the operator pod's metrics
    through the apiserver's pod proxy."""
    pod = cluster.kubectl(
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ).stdout
    text = cluster.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}:9090/proxy/metrics"
    ).stdout
    out = {"resync": 0.0, "writes": 0.0}
    for line in text.splitlines():
        if line.startswith("datamesh_reconciles_total{") and 'trigger="resync"' in line:
            out["resync"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("datamesh_api_writes_total{"):
            out["writes"] += float(line.rsplit(" ", 1)[1])
            out[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def resource_versions(cluster: Cluster) -> dict[str, str]:
    items = json.loads(
        cluster.kubectl(
            "get", "dataproducts,cronjobs,configmaps", "-n", DOMAIN, "-o", "json"
        ).stdout
    )["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["metadata"]["resourceVersion"] for i in items}


def now_utc() -> str:
    """Now, in the apiserver's timestamp format (comparable as a string)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def runs(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]


PIPELINE = {"schedule": "0 0 1 1 *", "image": PIPELINE_IMAGE}


def test_the_operator_runs_as_the_charts_pod_under_the_restricted_standard(node: Cluster) -> None:
    pods = json.loads(node.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running, f"no operator pod is running: {[p['status'] for p in pods]}"
    pod = running[0]
    assert pod["spec"]["containers"][0]["image"] == localcluster.image_names()["operator"]
    assert pod["spec"]["serviceAccountName"] == f"{RELEASE}-datamesh-operator"
    ns = json.loads(node.kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True", "the operator's probe is not answered"


def test_a_compliant_products_claim_binds_and_its_pipeline_writes_into_it(node: Cluster) -> None:
    apply_product(node, "orders", pipeline=PIPELINE)
    wait_for(lambda: phase(node, "orders") == "Ready", 90, "orders Ready")
    run_pipeline(node, "orders", "orders-run-1")
    wait_complete(node, "orders-run-1")
    folder = claim_folder(node, "orders-data")
    [record] = runs(folder)
    assert record["product"] == "orders" and record["columns"] == ["order_id", "amount"]
    logs = node.kubectl("logs", "-n", DOMAIN, "job/orders-run-1").stdout
    assert '"product": "orders"' in logs, "kubectl logs reaches the kubelet"
    pipe = wait_for(
        lambda: (
            (c := condition(node, "orders", "PipelineReady")) and c["reason"] == "Succeeded" and c
        ),
        60,
        "PipelineReady from the run",
    )
    assert "orders-run-1 completed" in pipe["message"]


def test_a_pod_breaking_the_restricted_standard_is_refused(node: Cluster) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": DOMAIN},
        "spec": {
            "containers": [
                # No securityContext: may run as root, keeps every capability.
                {"name": "c", "image": PIPELINE_IMAGE}
            ]
        },
    }
    proc = node.kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode != 0 and 'violates PodSecurity "restricted' in proc.stderr, proc.stderr


def test_a_missing_pipeline_image_is_named_on_the_product(node: Cluster) -> None:
    missing = "localhost/datamesh/no-such-pipeline:0.0.1"
    apply_product(node, "ghost", pipeline={**PIPELINE, "image": missing}, storage=None)
    wait_for(lambda: phase(node, "ghost") == "Ready", 90, "ghost Ready before its run")
    run_pipeline(node, "ghost", "ghost-run-1")
    pipe = wait_for(
        lambda: (c := condition(node, "ghost", "PipelineReady")) and c["status"] == "False" and c,
        120,
        "PipelineReady=False naming the image",
    )
    assert pipe["reason"] == "ImagePullFailed", pipe
    assert missing in pipe["message"]
    assert phase(node, "ghost") == "Degraded"


def test_a_failing_pipeline_sets_pipeline_ready_false_and_keeps_the_data(node: Cluster) -> None:
    apply_product(node, "flaky", pipeline=PIPELINE)
    wait_for(lambda: phase(node, "flaky") == "Ready", 90, "flaky Ready")
    run_pipeline(node, "flaky", "flaky-run-1")
    wait_complete(node, "flaky-run-1")
    folder = claim_folder(node, "flaky-data")
    before = (folder / "runs.jsonl").read_bytes()
    apply_product(node, "flaky", pipeline={**PIPELINE, "command": ["sh", "-c", "exit 3"]})
    wait_for(
        lambda: (
            "exit 3" in json.dumps((get(node, "cronjob", "flaky-pipeline") or {}).get("spec", {}))
        ),
        60,
        "the cron job carries the new command",
    )
    run_pipeline(node, "flaky", "flaky-run-2")
    pipe = wait_for(
        lambda: (c := condition(node, "flaky", "PipelineReady")) and c["status"] == "False" and c,
        240,
        "PipelineReady=False from the failed Job",
    )
    assert pipe["reason"] == "BackoffLimitExceeded" and "flaky-run-2" in pipe["message"]
    assert phase(node, "flaky") == "Degraded"
    assert (folder / "runs.jsonl").read_bytes() == before, "a failed run changed the data"
    assert get(node, "pvc", "flaky-data") is not None


def test_a_retained_claim_keeps_its_bytes_across_a_prune_and_the_next_run_reads_them(
    node: Cluster,
) -> None:
    apply_product(node, "ledger", pipeline=PIPELINE, deletionPolicy="Retain")
    wait_for(lambda: phase(node, "ledger") == "Ready", 90, "ledger Ready")
    run_pipeline(node, "ledger", "ledger-run-1")
    wait_complete(node, "ledger-run-1")
    folder = claim_folder(node, "ledger-data")
    first = (folder / "runs.jsonl").read_bytes()

    # Pruned as ArgoCD prunes (foreground), while the operator is stopped.
    node.kubectl("scale", f"deployment/{DEPLOYMENT}", "-n", NAMESPACE, "--replicas=0")
    wait_for(
        lambda: (
            not json.loads(node.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)[
                "items"
            ]
        ),
        120,
        "the operator stopped",
    )
    node.kubectl(
        "delete", "dataproduct", "ledger", "-n", DOMAIN, "--cascade=foreground", "--wait=false"
    )
    node.kubectl("scale", f"deployment/{DEPLOYMENT}", "-n", NAMESPACE, "--replicas=1")
    wait_for(lambda: get(node, "dataproduct", "ledger") is None, 180, "ledger pruned")
    claim = get(node, "pvc", "ledger-data")
    assert claim is not None, "the retained claim was deleted"
    assert not claim["metadata"].get("ownerReferences")
    assert claim["metadata"]["labels"].get("datamesh.io/retained") == "true"
    assert (folder / "runs.jsonl").read_bytes() == first

    apply_product(node, "ledger", pipeline=PIPELINE, deletionPolicy="Retain")
    wait_for(lambda: phase(node, "ledger") == "Ready", 120, "ledger Ready again")
    run_pipeline(node, "ledger", "ledger-run-2")
    wait_complete(node, "ledger-run-2")
    assert claim_folder(node, "ledger-data") == folder, "the product got a new volume"
    second = runs(folder)[-1]
    assert second["run"] == 2 and second["previousRuns"] == 1
    assert second["previousSha256"] == hashlib.sha256(first).hexdigest()


def test_a_non_compliant_products_suspended_cron_job_starts_no_job(node: Cluster) -> None:
    every_minute = {**PIPELINE, "schedule": "* * * * *"}
    apply_product(node, "ticker", pipeline=every_minute, storage=None)
    apply_product(node, "blocked", pipeline=every_minute, storage=None)
    for name in ("ticker", "blocked"):
        wait_for(lambda name=name: phase(node, name) == "Ready", 90, f"{name} Ready")
    policy = {
        "apiVersion": "datamesh.io/v1alpha1",
        "kind": "GovernancePolicy",
        "metadata": {"name": "no-blocked", "namespace": DOMAIN},
        "spec": {
            "description": "The product named blocked may not run.",
            "enforcement": "block",
            "rules": [
                {
                    "name": "not-blocked",
                    "expression": "object.metadata.name != 'blocked'",
                    "message": "blocked is blocked",
                }
            ],
        },
    }
    node.kubectl("apply", "-f", "-", input=json.dumps(policy))
    try:
        wait_for(
            lambda: (get(node, "cronjob", "blocked-pipeline") or {}).get("spec", {}).get("suspend"),
            90,
            "blocked's cron job suspended",
        )
        assert phase(node, "blocked") == "NonCompliant"
        suspended_at = now_utc()
        # The cron job controller has scheduled a minute tick after the suspension when
        # the compliant sibling has a Job from it: by then blocked would have had one too.
        wait_for(
            lambda: (
                (get(node, "cronjob", "ticker-pipeline") or {})
                .get("status", {})
                .get("lastScheduleTime", "")
                > suspended_at
            ),
            150,
            "a cron tick after the suspension",
        )
        jobs = json.loads(
            node.kubectl(
                "get", "jobs", "-n", DOMAIN, "-l", "datamesh.io/product=blocked", "-o", "json"
            ).stdout
        )["items"]
        late = [
            j["metadata"]["name"] for j in jobs if j["metadata"]["creationTimestamp"] > suspended_at
        ]
        assert not late, f"the suspended cron job started {late}"
    finally:
        node.kubectl("delete", "governancepolicy", "no-blocked", "-n", DOMAIN, check=False)
        for name in ("ticker", "blocked"):
            node.kubectl("delete", "dataproduct", name, "-n", DOMAIN, "--wait=false", check=False)


def test_pods_and_claims_come_back_after_the_kubelet_restarts_mid_run(node: Cluster) -> None:
    assert node.local is not None
    slow = {**PIPELINE, "command": ["sh", "-c", "sleep 15 && exec datamesh-pipeline"]}
    apply_product(node, "slow", pipeline=slow)
    wait_for(lambda: phase(node, "slow") == "Ready", 90, "slow Ready")
    run_pipeline(node, "slow", "slow-run-1")
    wait_for(
        lambda: (
            "Running"
            in node.kubectl(
                "get",
                "pods",
                "-n",
                DOMAIN,
                "-l",
                "job-name=slow-run-1",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ).stdout
        ),
        120,
        "the run's pod running",
    )
    node.local.restart_node_component("kubelet")
    wait_complete(node, "slow-run-1", 240)
    [record] = runs(claim_folder(node, "slow-data"))
    assert record["product"] == "slow"
    wait_for(
        lambda: (
            node.kubectl(
                "get",
                "node",
                node_module.NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ).stdout
            == "True"
        ),
        60,
        "the node Ready again",
    )
    pods = json.loads(node.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    assert any(p["status"].get("phase") == "Running" for p in pods), "the operator pod is gone"


def test_the_operator_pod_force_deleted_during_a_burst_converges_without_duplicates(
    node: Cluster,
) -> None:
    names = [f"burst-{i:03d}" for i in range(BURST)]
    items = []
    for name in names:
        doc = product_dict(pipeline=PIPELINE, storage=None)
        doc["metadata"] = {"name": name, "namespace": DOMAIN}
        doc["spec"]["domain"] = DOMAIN
        items.append(doc)
    node.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )

    def reconciled() -> int:
        products = json.loads(
            node.kubectl("get", "dataproducts", "-n", DOMAIN, "-o", "json").stdout
        )["items"]
        return sum(
            1
            for p in products
            if p["metadata"]["name"].startswith("burst-")
            and (p.get("status") or {}).get("observedGeneration") == p["metadata"]["generation"]
        )

    for kill in range(3):
        seen = reconciled()
        if seen < BURST:
            wait_for(lambda seen=seen: reconciled() > seen, 120, f"progress before kill {kill + 1}")
        node.kubectl(
            "delete",
            "pod",
            "-n",
            NAMESPACE,
            "-l",
            f"app.kubernetes.io/instance={RELEASE}",
            "--force",
            "--grace-period=0",
        )
    wait_for(lambda: reconciled() == BURST, 300, "every burst product reconciled")
    wait_for(
        lambda: all(phase(node, n) == "Ready" for n in names), 180, "every burst product Ready"
    )
    # No churn: once settled, a whole resync of every product writes nothing.
    settled = operator_metrics(node)
    versions = resource_versions(node)
    wait_for(
        lambda: operator_metrics(node)["resync"] >= settled["resync"] + BURST,
        180,
        "one full resync after convergence",
    )
    after = operator_metrics(node)
    assert after["writes"] == settled["writes"], "the settled mesh was written: " + str(
        {k: v - settled.get(k, 0) for k, v in after.items() if v != settled.get(k, 0)}
    )
    assert resource_versions(node) == versions
    products = {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in json.loads(node.kubectl("get", "dataproducts", "-n", DOMAIN, "-o", "json").stdout)[
            "items"
        ]
    }
    for kind in ("cronjobs", "configmaps", "serviceaccounts"):
        children = json.loads(
            node.kubectl(
                "get",
                kind,
                "-n",
                DOMAIN,
                "-l",
                "app.kubernetes.io/managed-by=datamesh-operator",
                "-o",
                "json",
            ).stdout
        )["items"]
        owners: dict[str, int] = {}
        for child in children:
            refs = child["metadata"].get("ownerReferences") or []
            assert len(refs) == 1, f"{kind} {child['metadata']['name']} has owners {refs}"
            assert products.get(refs[0]["name"]) == refs[0]["uid"], (
                f"{kind} {child['metadata']['name']} is orphaned"
            )
            owners[refs[0]["name"]] = owners.get(refs[0]["name"], 0) + 1
        for name in names:
            assert owners.get(name) == 1, f"{name} has {owners.get(name, 0)} {kind}"
    node.kubectl("delete", "dataproducts", "-n", DOMAIN, *names, "--wait=false")


def test_a_second_cluster_is_refused_the_node_and_leaves_the_first_intact(
    node: Cluster, tmp_path: Path
) -> None:
    assert node.local is not None
    second = localcluster.LocalCluster(tmp_path / "second", node=True)
    with pytest.raises(localcluster.ClusterError) as refused:
        second.start()
    assert str(node.local.dir) in str(refused.value) and "NODE=0" in str(refused.value)
    second.stop()
    bridge = subprocess.run(["ip", "link", "show", node_module.BRIDGE], capture_output=True)
    assert bridge.returncode == 0, "the second cluster removed the first one's bridge"
    assert node_module.NODE_LOCK.read_text().strip() == str(node.local.dir)
    wait_for(
        lambda: (
            node.kubectl(
                "get",
                "node",
                node_module.NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ).stdout
            == "True"
        ),
        30,
        "the first cluster's node still Ready",
    )


def test_the_operators_log_has_no_forbidden(node: Cluster) -> None:
    logs = node.kubectl("logs", "-n", NAMESPACE, f"deployment/{DEPLOYMENT}").stdout
    assert logs, "the operator logged nothing"
    assert "Forbidden" not in logs and " 403" not in logs, [
        line for line in logs.splitlines() if "Forbidden" in line or " 403" in line
    ][:5]


def test_cluster_down_leaves_no_process_mount_cgroup_bridge_or_chain(node: Cluster) -> None:
    local = node.local
    assert local is not None
    directory = local.dir
    before = local.load()
    assert before is not None and before.node is not None
    sysctls = dict(before.node["sysctls"])  # type: ignore[arg-type]
    local.stop()
    assert local.stop() == [], "a second cluster-down found something to stop"

    leftovers = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if str(directory).encode() in cmdline:
                leftovers.append(cmdline.decode(errors="replace")[:200])
    assert not leftovers, f"processes left: {leftovers}"
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(directory))
    ]
    assert not mounts, f"mounts left: {mounts}"
    cgroups = list(Path("/sys/fs/cgroup").glob(f"*/{node_module.CGROUP_ROOT}"))
    assert not cgroups, f"cgroups left: {cgroups}"
    bridge = subprocess.run(["ip", "link", "show", node_module.BRIDGE], capture_output=True)
    assert bridge.returncode != 0, "the bridge is still there"
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert "KUBE-" not in rules, "kube-proxy's chains are still there"
    assert not node_module.NODE_LOCK.exists(), "the node slot is still taken"
    for key, value in sysctls.items():
        assert Path("/proc/sys", key).read_text().strip() == value, f"{key} was not restored"
