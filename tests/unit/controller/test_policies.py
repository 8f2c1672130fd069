"""A policy's status: Valid=False with the type checker's own message, and the
apiserver's opinion of its generated admission policy (AdmissionChecked)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from datamesh.controller.admission_sync import AdmissionSync, admission_checks
from datamesh.controller.kube import Cluster
from datamesh.controller.policies import PolicyReconciler
from datamesh.controller.settings import Settings
from datamesh.governance import admission, policy
from tests.support.factories import policy_obj

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


class Apiserver:
    """Admission objects in memory. Like the apiserver, it refuses what it cannot
    compile (here: any expression containing ``refuse``), and its status controller
    type-checks each stored admission policy (here: ``warn`` in an expression warns)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind]

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._store(kind, body, 1)

    def replace(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._store(kind, body, self.objects[kind, name]["metadata"]["generation"] + 1)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, name), None)

    def _store(self, kind: str, body: dict[str, Any], generation: int) -> dict[str, Any]:
        validations = body.get("spec", {}).get("validations", [])
        if any("refuse" in v["expression"] for v in validations):
            message = f"{kind} is invalid: compilation failed"
            raise ApiException(status=422, reason="Invalid", body=json.dumps({"message": message}))
        obj = copy.deepcopy(body)
        obj["metadata"].update(generation=generation, resourceVersion=str(generation))
        if kind == "ValidatingAdmissionPolicy":
            warnings = [
                {"fieldRef": f"spec.validations[{i}].expression", "warning": "ERROR: undefined"}
                for i, v in enumerate(validations)
                if "warn" in v["expression"]
            ]
            obj["status"] = {
                "observedGeneration": generation,
                "typeChecking": {"expressionWarnings": warnings} if warnings else {},
            }
        self.objects[kind, obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)


def rule(name: str, expression: str) -> dict[str, str]:
    return {"name": name, "expression": expression, "message": "m"}


def body_of(compiled: policy.CompiledPolicy) -> dict[str, Any]:
    meta = compiled.policy.metadata
    return {"metadata": {"namespace": meta.namespace, "name": meta.name, "generation": 1}}


def test_a_rule_reading_a_field_the_product_lacks_is_invalid_with_the_checkers_message() -> None:
    compiled = policy.compile_policy(
        policy_obj(rules=[rule("typo", "object.spec.retentionDayz <= 365")])
    )
    reconciler = PolicyReconciler(cast(Cluster, None), Settings(), clock=lambda: NOW)
    status = reconciler.compute_status(compiled, body_of(compiled), [], {})
    (valid,) = status["conditions"]
    assert (valid["type"], valid["status"], valid["reason"]) == (
        "Valid",
        "False",
        "InvalidExpression",
    )
    assert valid["message"].startswith("rule typo: <input>:1:12: undefined field 'retentionDayz'")
    assert status["errors"] == [valid["message"]]


def test_the_apiservers_type_checking_is_surfaced_on_the_policy() -> None:
    apiserver = Apiserver()
    cluster = cast(Cluster, apiserver)
    settings = Settings(admission=True)
    clean = policy.compile_policy(policy_obj(name="clean", rules=[rule("a", "true")]))
    warned = policy.compile_policy(
        policy_obj(name="warned", rules=[rule("a", "true"), rule("b", "'warn' != ''")])
    )
    refused = policy.compile_policy(policy_obj(name="refused", rules=[rule("a", "'refuse' != ''")]))
    relaxed = policy.compile_policy(policy_obj(name="relaxed", enforcement="warn"))
    sync = AdmissionSync(cluster, settings, clock=lambda: NOW)
    sync.sync([clean, warned, refused, relaxed])
    names = {name for _, name in apiserver.objects}
    assert admission.object_name("datamesh-system", "refused") not in names  # nor its binding
    assert admission.object_name("datamesh-system", "clean") in names

    reconciler = PolicyReconciler(cluster, settings, clock=lambda: NOW)

    def admission_condition(compiled: policy.CompiledPolicy) -> tuple[Any, list[str]]:
        status = reconciler.compute_status(compiled, body_of(compiled), [], {})
        found = [c for c in status["conditions"] if c["type"] == "AdmissionChecked"]
        return (found[0] if found else None), status["warnings"]

    condition, warnings = admission_condition(clean)
    assert (condition["status"], condition["reason"], warnings) == ("True", "TypeChecked", [])
    condition, warnings = admission_condition(warned)
    assert (condition["status"], condition["reason"]) == ("False", "TypeWarnings")
    assert condition["message"] == "rule b: ERROR: undefined"
    assert warnings == ["admission: type checking warns: rule b: ERROR: undefined"]
    condition, warnings = admission_condition(refused)
    assert (condition["status"], condition["reason"]) == ("False", "Refused")
    assert "compilation failed" in condition["message"]
    assert warnings == [f"admission: {condition['message']}"]
    assert admission_condition(relaxed) == (None, [])  # not enforced at admission

    # Until the apiserver has checked a generation (a restart, a sync to come), what was
    # said of it stays; a newer generation says nothing until it is checked.
    said = reconciler.compute_status(warned, body_of(warned), [], {})
    admission_checks(cluster).replace({})
    kept = reconciler.compute_status(warned, {**body_of(warned), "status": said}, [], {})
    assert kept["conditions"] == said["conditions"] and kept["warnings"] == said["warnings"]
    newer = {"metadata": {**body_of(warned)["metadata"], "generation": 2}, "status": said}
    status = reconciler.compute_status(warned, newer, [], {})
    assert [c["type"] for c in status["conditions"]] == ["Valid"]
    assert status["warnings"] == []
    assert admission_checks(cluster) is sync.checks


def test_without_admission_there_is_nothing_to_check() -> None:
    apiserver = Apiserver()
    cluster = cast(Cluster, apiserver)
    compiled = policy.compile_policy(policy_obj(rules=[rule("b", "'warn' != ''")]))
    AdmissionSync(cluster, Settings(admission=False), clock=lambda: NOW).sync([compiled])
    reconciler = PolicyReconciler(cluster, Settings(admission=False), clock=lambda: NOW)
    status = reconciler.compute_status(compiled, body_of(compiled), [], {})
    assert [c["type"] for c in status["conditions"]] == ["Valid"]
    assert apiserver.objects == {}
