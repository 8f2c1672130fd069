"""Admission enforcement: with admission on, the operator turns every block policy into a
ValidatingAdmissionPolicy, and the apiserver refuses at `kubectl apply` time exactly the
products the engine blocks (parity), with the rule's message."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamesh.api.models import DataProduct, GovernancePolicy
from datamesh.governance import admission, policy
from datamesh.meshctl import checks, loader
from tests.support import ROOT
from tests.support.cluster import Cluster
from tests.support.factories import dump, product_dict
from tests.support.live_repo import apply_live
from tests.support.operator import Operator
from tests.support.policy_cases import CASES
from tests.support.waiting import wait_for

KINDS = "validatingadmissionpolicies,validatingadmissionpolicybindings"
SELECTOR = f"{admission.LABEL}=true"
TODAY = dt.datetime.now(dt.UTC)

# A block policy only for products labelled parity=yes, with one live and one lapsed
# exception: what exceptions look like at admission.
EXCEPTIONS_POLICY: dict[str, Any] = {
    "apiVersion": "datamesh.io/v1alpha1",
    "kind": "GovernancePolicy",
    "metadata": {"name": "parity-tags", "namespace": "datamesh-system"},
    "spec": {
        "description": "Parity products must carry the tag 'parity'.",
        "enforcement": "block",
        "match": {"selector": {"matchLabels": {"parity": "yes"}}},
        "rules": [
            {
                "name": "tagged",
                "expression": "has(object.spec.tags) && 'parity' in object.spec.tags",
                "message": "parity products must be tagged parity",
            },
            {
                "name": "short-description",
                "when": "object.spec.classification == 'internal'",
                "expression": "size(object.spec.description) < 20",
                "message": "internal parity products keep their description under 20 characters",
            },
        ],
        "exceptions": [
            {
                "product": "exempt-now",
                "reason": "migrating",
                "expires": (TODAY + dt.timedelta(days=30)).date().isoformat(),
            },
            {
                "product": "exempt-lapsed",
                "reason": "was migrating",
                "expires": (TODAY - dt.timedelta(days=2)).date().isoformat(),
            },
        ],
    },
}


def admission_objects(cluster: Cluster) -> dict[str, dict[str, Any]]:
    out = cluster.kubectl("get", KINDS, "-l", SELECTOR, "-o", "json").stdout
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in json.loads(out)["items"]}


def compiled_cluster_policies(cluster: Cluster) -> list[policy.CompiledPolicy]:
    items = json.loads(cluster.kubectl("get", "gp", "-A", "-o", "json").stdout)["items"]
    return [policy.compile_policy(GovernancePolicy.model_validate(i)) for i in items]


@pytest.fixture(scope="module")
def enforcing(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    apply_live(crds)
    # Created before enforcement starts: a product that a block policy rejects.
    crds.kubectl("apply", "-f", "-", input=dump(_doc("sales", "grandfathered", sla=None)))
    crds.kubectl("apply", "-f", "-", input=dump(EXCEPTIONS_POLICY))
    op = Operator(crds, tmp_path_factory.mktemp("admission"), admission="true")
    op.start()
    try:
        expected = admission.desired(
            compiled_cluster_policies(crds), platform_namespace="datamesh-system", now=TODAY
        )
        names = {f"{kind}/{name}" for name in expected for kind in _KIND_NAMES}
        wait_for(
            lambda: set(admission_objects(crds)) == names,
            what="one admission policy and binding per block policy",
        )
        # The apiserver loads new admission policies asynchronously: wait until one bites.
        wait_for(
            lambda: _admit(crds, _doc("sales", "probe", sla=None))[0] is False,
            what="admission to be enforced",
        )
        yield op
    finally:
        op.stop()
        crds.kubectl("delete", KINDS, "-l", SELECTOR, check=False)
        crds.kubectl("delete", "-f", "-", input=dump(EXCEPTIONS_POLICY), check=False)
        crds.kubectl(
            "delete", "dataproduct", "grandfathered", "-n", "sales", "--wait=false", check=False
        )


_KIND_NAMES = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def _doc(namespace: str, name: str, labels: dict[str, str] | None = None, **spec: Any) -> Any:
    spec.setdefault("domain", namespace)
    doc = product_dict(**spec)
    doc["metadata"] = {"name": name, "namespace": namespace, "labels": labels or {}}
    return doc


def _admit(cluster: Cluster, doc: dict[str, Any]) -> tuple[bool, str]:
    proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=dump(doc), check=False)
    return proc.returncode == 0, proc.stderr


def _engine(doc: dict[str, Any], policies: list[policy.CompiledPolicy]) -> set[str]:
    """The (policy [rule]) pairs the engine blocks the product for."""
    product = DataProduct.model_validate(doc)
    namespace = product.metadata.namespace
    result = policy.evaluate(
        product,
        policies,
        now=dt.datetime.now(dt.UTC),
        namespace_domain=namespace,  # every test namespace is its own domain
    )
    return {f"{v.policy} [{v.rule}]" for v in result.violations if v.enforcement == "block"}


def parity_cases() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((ROOT / "products").rglob("*.yaml")):
        docs, problems = loader.load_file(path)
        assert not problems
        for d in docs:
            if isinstance(d.obj, DataProduct):
                doc = copy.deepcopy(d.raw)  # a new name: the live product exists already
                doc["metadata"]["name"] = f"pl-{doc['metadata']['name']}"[:40]
                cases.append((f"live:{path.stem}", doc))
    for i, (path, namespace, good, bad, rule) in enumerate(CASES):
        cases.append((f"{path}:pass", _doc(namespace, f"parity-{i}-ok", **good)))
        if rule:
            cases.append((f"{path}:{rule}", _doc(namespace, f"parity-{i}-bad", **bad)))
    cases += [
        ("domain-isolation", _doc("sales", "claims-finance", domain="finance")),
        ("labelled-untagged", _doc("sales", "untagged", {"parity": "yes"})),
        ("labelled-tagged", _doc("sales", "tagged", {"parity": "yes"}, tags=["parity"])),
        ("when-guard-holds", _doc("sales", "internal-long", {"parity": "yes"}, tags=["parity"])),
        (
            "when-guard-off",
            _doc(
                "sales", "public-long", {"parity": "yes"}, tags=["parity"], classification="public"
            ),
        ),
        ("exception-live", _doc("sales", "exempt-now", {"parity": "yes"})),
        ("exception-lapsed", _doc("sales", "exempt-lapsed", {"parity": "yes"})),
        ("exception-other-domain-product", _doc("finance", "untagged", {"parity": "yes"})),
        ("two-policies", _doc("finance", "two-rules", sla=None, access={"auditLogging": False})),
    ]
    # The bad-input corpus: every product file that is one object with a name.
    for i, path in enumerate(sorted((ROOT / "tests" / "data" / "invalid").glob("product-*"))):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue  # kubectl refuses it before any request (tests/integration/test_bad_input)
        if not isinstance(raw, dict) or not (raw.get("metadata") or {}).get("name"):
            continue
        if raw["metadata"]["name"] == "case":
            raw["metadata"]["name"] = f"corpus-{i}"
        cases.append((f"corpus:{path.stem}", raw))
    return cases


PARITY = parity_cases()


def test_admission_objects_are_type_checked_by_the_apiserver(enforcing: Operator) -> None:
    objects = admission_objects(enforcing.cluster)
    for key, obj in objects.items():
        if key.startswith("ValidatingAdmissionPolicy/"):
            checking = obj.get("status", {}).get("typeChecking", {})
            assert not checking.get("expressionWarnings"), (key, checking)
    # warn and audit policies have none; domain policies bind to their namespace only.
    assert "ValidatingAdmissionPolicy/datamesh.datamesh-system.field-documentation" not in objects
    binding = objects["ValidatingAdmissionPolicyBinding/datamesh.finance.audit-logging"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "finance"}
    }


@pytest.mark.parametrize(("case", "doc"), PARITY, ids=[c for c, _ in PARITY])
def test_admission_and_engine_decide_alike(
    enforcing: Operator, case: str, doc: dict[str, Any]
) -> None:
    admitted, error = _admit(enforcing.cluster, doc)
    if not admitted and "denied request" not in error:
        # Refused by the CRD's own schema or rules, before admission policies run:
        # `meshctl validate` refuses it for the same reason.
        docs, _ = loader.load_text(dump(doc), f"{case}.yaml")
        assert docs[0].problems or checks.schema_problems(docs[0]), error
        return
    blocked_by = _engine(doc, compiled_cluster_policies(enforcing.cluster))
    assert admitted == (not blocked_by), (blocked_by, error)
    if blocked_by:
        assert "denied request" in error, error
        named = {ref for ref in blocked_by if ref in error}
        assert named, f"the rejection names none of {blocked_by}: {error}"


def test_parity_corpus_covers_both_decisions() -> None:
    assert len(PARITY) >= 90
    assert sum(1 for c, _ in PARITY if c.startswith("live:")) == 12


def test_only_spec_changes_are_checked(enforcing: Operator) -> None:
    cluster = enforcing.cluster
    # Metadata of a product stored before enforcement can still change (the operator's
    # finalizers and annotations, a user's labels) ...
    cluster.kubectl("label", "dataproduct", "grandfathered", "-n", "sales", "team=a")
    # ... a spec change is checked like a new product.
    proc = cluster.kubectl(
        "patch",
        "dataproduct",
        "grandfathered",
        "-n",
        "sales",
        "--type=merge",
        "-p",
        '{"spec":{"description":"Still without an SLA."}}',
        check=False,
    )
    assert proc.returncode != 0 and "datamesh-system/sla-required [sla-present]" in proc.stderr
    # A compliant live product edited into a violation is refused and left as it was.
    before = cluster.kubectl("get", "dp", "orders", "-n", "sales", "-o", "json").stdout
    proc = cluster.kubectl(
        "patch", "dp", "orders", "-n", "sales", "--type=json",
        "-p", '[{"op":"remove","path":"/spec/sla"}]', check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "sla-required" in proc.stderr
    after = cluster.kubectl("get", "dp", "orders", "-n", "sales", "-o", "json").stdout
    assert (
        json.loads(after)["metadata"]["resourceVersion"]
        == (json.loads(before)["metadata"]["resourceVersion"])
    )
    # Deleting it still works: the operator's finalizer comes off (a metadata update).
    cluster.kubectl("delete", "dp", "grandfathered", "-n", "sales", "--timeout=60s")


def test_relaxing_a_policy_to_warn_removes_its_admission_policy(enforcing: Operator) -> None:
    cluster = enforcing.cluster
    relaxed = json.loads(json.dumps(EXCEPTIONS_POLICY))
    relaxed["spec"]["enforcement"] = "warn"
    name = "ValidatingAdmissionPolicy/datamesh.datamesh-system.parity-tags"
    try:
        cluster.kubectl("apply", "-f", "-", input=dump(relaxed))
        wait_for(lambda: name not in admission_objects(cluster), what="its removal")
        wait_for(
            lambda: _admit(cluster, _doc("sales", "untagged", {"parity": "yes"}))[0],
            what="the relaxed rule to stop biting",
        )
    finally:
        cluster.kubectl("apply", "-f", "-", input=dump(EXCEPTIONS_POLICY))
    wait_for(lambda: name in admission_objects(cluster), what="its return")


def test_turning_admission_off_removes_every_generated_object(
    enforcing: Operator, tmp_path: Path
) -> None:
    enforcing.stop()
    off = Operator(enforcing.cluster, tmp_path)  # admission is off by default
    off.start()
    try:
        wait_for(lambda: admission_objects(enforcing.cluster) == {}, what="the objects removed")
    finally:
        off.stop()
        enforcing.start()


# -- type checking: the engine's checker and the apiserver's ---------------------------------

TYPED_SELECTOR = {"matchLabels": {"typecheck": "yes"}}  # no parity case carries it


def _typed_policy(name: str, expression: str) -> dict[str, Any]:
    return {
        "apiVersion": "datamesh.io/v1alpha1",
        "kind": "GovernancePolicy",
        "metadata": {"name": name, "namespace": "datamesh-system"},
        "spec": {
            "description": "A rule under type checking.",
            "enforcement": "block",
            "match": {"selector": TYPED_SELECTOR},
            "rules": [{"name": "r", "expression": expression, "message": "m"}],
        },
    }


def _conditions(cluster: Cluster, name: str) -> dict[str, dict[str, Any]]:
    """The policy's conditions by type, once it reports its current generation."""
    obj = json.loads(
        cluster.kubectl("get", "gp", name, "-n", "datamesh-system", "-o", "json").stdout
    )
    st = obj.get("status") or {}
    if st.get("observedGeneration") != obj["metadata"]["generation"]:
        return {}
    return {c["type"]: {**c, "warnings": st.get("warnings", [])} for c in st["conditions"]}


def test_a_rule_reading_a_field_the_product_lacks_is_invalid_and_never_enforced(
    enforcing: Operator,
) -> None:
    cluster = enforcing.cluster
    doc = _typed_policy("typo", "object.spec.retentionDayz <= 365")
    cluster.kubectl("apply", "-f", "-", input=dump(doc))
    try:
        valid = wait_for(
            lambda: _conditions(cluster, "typo").get("Valid"), what="the policy's Valid"
        )
        assert (valid["status"], valid["reason"]) == ("False", "InvalidExpression")
        assert "rule r: <input>:1:12: undefined field 'retentionDayz'" in valid["message"]
        # Its status is written after the admission sync: had it an admission policy, it
        # would be there by now.
        assert "ValidatingAdmissionPolicy/datamesh.datamesh-system.typo" not in (
            admission_objects(cluster)
        )
    finally:
        cluster.kubectl("delete", "-f", "-", input=dump(doc), check=False)


# (rule, a fragment of the engine's error, a fragment of the apiserver's warning); None:
# no error. Each rule goes to the apiserver as the operator writes it: `(rule) == true`.
AGREEMENT: list[tuple[str, str | None, str | None]] = [
    ("has(object.spec.sla) && object.spec.sla.availability >= 99.5", None, None),
    ("object.spec.?pipeline.?schedule.orValue('') == ''", None, None),
    ("object.?spec.?sla.?completeness.orValue(100.0) >= 99", None, None),
    ("object.metadata.labels['tier'] == 'gold'", None, None),
    ("'tier' in object.metadata.labels && object.metadata.namespace == 'sales'", None, None),
    ("object.spec.retentionDays > 30.5", None, None),
    ("object.spec.schema.fields.exists(f, has(f.piiCategory) && f.pii)", None, None),
    ("object.spec.storage.encryption.atRest", None, None),
    ("object.spec.retentionDayz <= 365", "undefined field 'retentionDayz'", "undefined field"),
    (
        "object.spec.schema.fields.all(f, f.descripton != '')",
        "undefined field 'descripton'",
        "undefined field 'descripton'",
    ),
    ("object.spec.owner", "must evaluate to bool", "no matching overload for '_==_'"),
    ("object.spec.owner.team.name == 'a'", "operand of a select", "field selection"),
    ("object.spec.retentionDays + 'd' == '30d'", "overload for '_+_'", "overload for '_+_'"),
    ("object.spec.sla.availability == 99", "'(double, int)'", "'(double, int)'"),
    ("size(object.spec.owner) == 2", "overload for 'size'", "overload for 'size'"),
    ("object.spec.retentionDays in {'a': 1}", "overload for '@in'", "overload for '@in'"),
]


def test_the_type_checker_agrees_with_the_apiservers(crds: Cluster) -> None:
    """One admission policy (unbound: it enforces nothing) holding every rule; the
    apiserver type-checks it against the CRD schema and warns per expression."""
    name = "datamesh-test.type-agreement"
    vap = {
        "apiVersion": admission.API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["datamesh.io"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["dataproducts"],
                    }
                ]
            },
            "validations": [{"expression": f"({rule}) == true"} for rule, _, _ in AGREEMENT],
        },
    }
    crds.kubectl("delete", "validatingadmissionpolicy", name, "--ignore-not-found")
    crds.kubectl("create", "-f", "-", input=json.dumps(vap))

    def checked() -> dict[str, Any] | None:
        obj = json.loads(
            crds.kubectl("get", "validatingadmissionpolicy", name, "-o", "json").stdout
        )
        st = obj.get("status") or {}
        return st if st.get("observedGeneration") == obj["metadata"]["generation"] else None

    try:
        st = wait_for(checked, what="the apiserver's type checking")
    finally:
        crds.kubectl("delete", "validatingadmissionpolicy", name, "--ignore-not-found")
    warnings = {
        w["fieldRef"]: w["warning"]
        for w in (st.get("typeChecking") or {}).get("expressionWarnings") or []
    }
    for i, (rule, ours, theirs) in enumerate(AGREEMENT):
        _, error = policy.compile_expression(rule)
        warning = warnings.get(f"spec.validations[{i}].expression")
        if ours is None:
            assert error is None and warning is None, (rule, error, warning)
        else:
            assert error is not None and ours in error, (rule, error)
            assert warning is not None and theirs in warning, (rule, warning)


def test_the_apiservers_verdict_on_the_admission_policy_is_on_the_policy(
    enforcing: Operator,
) -> None:
    """The apiserver's type checking is a second opinion: a rule the engine's checker
    accepts but the apiserver's does not (a map literal mixing value types, typed once
    `object` is) is reported as AdmissionChecked=False, and one the apiserver refuses
    outright (a list literal mixing int and double) as Refused, without holding up the
    other policies' admission objects."""
    cluster = enforcing.cluster
    docs = {
        "typed-clean": _typed_policy("typed-clean", "has(object.spec.sla)"),
        "typed-warned": _typed_policy(
            "typed-warned", "{'a': object.spec.retentionDays, 'b': object.spec.domain}.size() == 2"
        ),
        "typed-refused": _typed_policy("typed-refused", "object.spec.retentionDays in [1, 2.0]"),
    }
    for doc in docs.values():
        assert policy.compile_expression(doc["spec"]["rules"][0]["expression"])[1] is None
        cluster.kubectl("apply", "-f", "-", input=dump(doc))
    try:
        checked = {
            name: wait_for(
                lambda name=name: _conditions(cluster, name).get("AdmissionChecked"),
                what=f"the apiserver's verdict on {name}",
            )
            for name in docs
        }
        clean, warned, refused = (checked[n] for n in docs)
        assert (clean["status"], clean["reason"], clean["warnings"]) == ("True", "TypeChecked", [])
        assert (warned["status"], warned["reason"]) == ("False", "TypeWarnings")
        assert "rule r: " in warned["message"]
        assert "expected type 'int' but found 'string'" in warned["message"]
        assert any("type checking warns: rule r:" in w for w in warned["warnings"])
        assert _conditions(cluster, "typed-warned")["Valid"]["status"] == "True"
        assert (refused["status"], refused["reason"]) == ("False", "Refused")
        assert "expected type 'int' but found 'double'" in refused["message"]
        objects = admission_objects(cluster)
        for name, present in (("typed-clean", True), ("typed-refused", False)):
            for kind in _KIND_NAMES:
                key = f"{kind}/datamesh.datamesh-system.{name}"
                assert (key in objects) == present, key
        assert "ValidatingAdmissionPolicy/datamesh.datamesh-system.sla-required" in objects
    finally:
        for doc in docs.values():
            cluster.kubectl("delete", "-f", "-", input=dump(doc), check=False)
        wait_for(
            lambda: not any("typed-" in key for key in admission_objects(cluster)),
            what="their admission objects removed",
        )
