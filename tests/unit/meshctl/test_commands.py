"""meshctl, run in a temporary copy of the repository layout."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamesh.meshctl.main import main as meshctl
from tests.support import ROOT


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = meshctl(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def edit(path: Path, change: Any) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_live_repository_validates(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate")
    assert code == 0, out
    assert out.startswith("OK: 12 products, 14 policies, 0 errors")


def test_json_shape(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert set(data) == {"products", "policies", "errors", "summary"}
    assert set(data["products"][0]) == {
        "file",
        "namespace",
        "name",
        "compliant",
        "errors",
        "violations",
    }
    assert set(data["policies"][0]) == {"file", "name", "valid", "errors", "warnings"}
    assert data["summary"] == {"products": 12, "errors": 0, "blocking": 0, "warnings": 0}


def test_block_violation_fails_with_github_annotation(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo / "products" / "sales" / "orders.yaml"
    edit(path, lambda d: d["spec"].pop("sla"))
    code, out, _ = run(capsys, "validate", "--format", "github")
    assert code == 1
    line = next(x for x in out.splitlines() if "sla-present" in x)
    assert line.startswith("::error file=products/sales/orders.yaml,line=1,")
    assert "add spec.sla" in line


TYPED_POLICY = """\
apiVersion: datamesh.io/v1alpha1
kind: GovernancePolicy
metadata:
  name: typed
  namespace: datamesh-system
spec:
  description: Rules under type checking.
  enforcement: warn
  rules:
    - name: fine
      expression: has(object.metadata.labels) && object.spec.?sla.?availability.orValue(0.0) > 0
      message: ok
    - name: misspelt
      expression: object.spec.retentionDayz <= 365
      message: never compiles
    - name: not-a-bool
      when: object.spec.owner
      expression: "true"
      message: never compiles
"""


def test_a_rule_the_type_checker_refuses_is_an_error_on_its_own_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "policies" / "global" / "zz-typed.yaml").write_text(TYPED_POLICY)
    code, out, _ = run(capsys, "validate")
    assert code == 1
    errors = [line for line in out.splitlines() if "zz-typed.yaml" in line and "error" in line]
    assert len(errors) == 2, out
    assert errors[0].startswith("policies/global/zz-typed.yaml:14: error:")
    assert "spec.rules[1].expression" in errors[0]
    assert "undefined field 'retentionDayz'" in errors[0]
    assert errors[1].startswith("policies/global/zz-typed.yaml:17: error:")
    assert "spec.rules[2].when" in errors[1]
    assert "must evaluate to bool, not DataProduct.Spec.Owner" in errors[1]
    code, out, _ = run(capsys, "validate", "--format", "github")
    assert "::error file=policies/global/zz-typed.yaml,line=14," in out


def test_junit_output_is_xml_with_failures(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(repo / "products" / "sales" / "orders.yaml", lambda d: d["spec"].pop("sla"))
    code, out, _ = run(capsys, "validate", "--format", "junit")
    suite = ET.fromstring(out).find("testsuite")
    assert code == 1 and suite is not None
    assert suite.get("failures") == "1"


def test_usage_errors_exit_2(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", "nowhere/")
    assert code == 2 and "no such file" in err
    with pytest.raises(SystemExit) as info:
        meshctl(["validate", "--format", "xml"])
    assert info.value.code == 2


def test_new_scaffolds_a_product_that_validates(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "new", "churn-scores", "--domain", "customer-success", "--type", "derived"
    )
    assert code == 0, out
    assert (repo / "products" / "customer-success" / "churn-scores.yaml").exists()
    assert (repo / "products" / "customer-success" / "namespace.yaml").exists()
    code, out, _ = run(capsys, "validate")
    assert code == 0, out
    code, _, err = run(capsys, "new", "churn-scores", "--domain", "customer-success")
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "new", "Bad_Name", "--domain", "sales")
    assert code == 2 and "DNS label" in err
    code, _, err = run(capsys, "new", "x" * 41, "--domain", "sales")
    assert code == 2 and "at most 40" in err


def test_lineage_prints_upstream_and_downstream(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "lineage", "customer-segments")
    assert code == 0
    up, down = out.split("downstream:")
    assert "- sales/customers" in up and "- marketing/leads" in up
    assert "- product-analytics/customer-360" in down
    code, _, err = run(capsys, "lineage", "nothing-here")
    assert code == 2 and "no product named" in err


def test_committed_codeowners_is_current(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, _, err = run(capsys, "codeowners", "--check")
    assert code == 0, err
    text = (ROOT / "CODEOWNERS").read_text()
    assert "/products/finance/ @datamesh/finance-analytics" in text


def test_stale_codeowners_is_detected(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "CODEOWNERS").write_text("old\n")
    code, _, err = run(capsys, "codeowners", "--check")
    assert code == 1 and "stale" in err


# -- breaking changes against a base branch ------------------------------------------------


@pytest.fixture
def git_repo(repo: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
    return repo


ORDERS = Path("products") / "sales" / "orders.yaml"


def test_removed_field_without_major_bump_blocks_and_names_consumers(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(git_repo / ORDERS, lambda d: d["spec"]["schema"]["fields"].pop())
    code, out, _ = run(capsys, "validate", "--base", "main")
    assert code == 1
    assert "breaking change without a major version bump (1.0.0 -> 1.0.0)" in out
    assert "field ordered_at was removed" in out
    assert "sales/revenue-daily" in out and "finance/financial-metrics" in out


def test_breaking_change_with_major_bump_passes(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(d: dict[str, Any]) -> None:
        d["spec"]["schema"]["fields"][4]["type"] = "long"
        d["spec"]["version"] = "2.0.0"

    edit(git_repo / ORDERS, change)
    code, out, _ = run(capsys, "validate", "--base", "main")
    assert code == 0, out


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda d: d["spec"]["schema"]["fields"][0].update(type="integer"),
            "type changed from string to integer",
        ),
        (
            lambda d: d["spec"]["schema"]["fields"][4].update(nullable=False),
            "nullable field became required",
        ),
        (
            lambda d: d["spec"]["schema"]["fields"][1]["constraints"].update(minimum=2),
            "minimum raised from 1.0 to 2",
        ),
        (
            lambda d: d["spec"]["schema"]["fields"][6]["constraints"].update(allowedValues=["EUR"]),
            "allowedValues no longer include GBP, USD",
        ),
        (lambda d: d["spec"].update(outputPorts=[]), "output port warehouse was removed"),
        (
            lambda d: d["spec"]["schema"]["fields"].append(
                {"name": "channel", "type": "string", "nullable": False, "description": "c"}
            ),
            "field channel was added as required",
        ),
    ],
)
def test_breaking_changes_are_recognised(
    git_repo: Path, capsys: pytest.CaptureFixture[str], change: Any, fragment: str
) -> None:
    edit(git_repo / ORDERS, change)
    code, out, _ = run(capsys, "validate", "--base", "main")
    assert code == 1 and fragment in out, out


def test_additive_change_without_minor_bump_warns(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        git_repo / ORDERS,
        lambda d: d["spec"]["schema"]["fields"].append(
            {"name": "coupon", "type": "string", "description": "Coupon code."}
        ),
    )
    code, out, _ = run(capsys, "validate", "--base", "main")
    assert code == 0
    assert "warn: " in out and "additive change without a minor version bump" in out
    edit(git_repo / ORDERS, lambda d: d["spec"].update(version="1.1.0"))
    code, out, _ = run(capsys, "validate", "--base", "main")
    assert code == 0 and "additive change" not in out


def test_removing_a_consumed_product_blocks(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (git_repo / "products" / "sales" / "customers.yaml").unlink()
    code, out, _ = run(capsys, "validate", "--base", "main")
    assert code == 1
    assert "product sales/customers was removed but is consumed by" in out


def test_unknown_base_is_a_usage_error(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", "--base", "no-such-branch")
    assert code == 2 and "--base no-such-branch" in err


def test_a_table_name_the_warehouse_would_truncate_is_an_error_on_the_port(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 53-character port makes `orders__<port>_v1` 64 bytes: PostgreSQL would cut it."""
    path = repo / "products" / "sales" / "orders.yaml"
    long_port = "p" * 53
    edit(path, lambda d: d["spec"]["outputPorts"][0].update(name=long_port, type="table"))
    code, out, _ = run(capsys, "validate")
    assert code == 1
    errors = [line for line in out.splitlines() if "orders.yaml" in line and "error" in line]
    assert len(errors) == 1, out
    assert "spec.outputPorts[0].name" in errors[0]
    assert f"the table of port 'orders__{long_port}_v1' is 64 bytes" in errors[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda job: job.update(sql="SELECT * FROM {{ ledger }}"),
            "{{ ledger }} names no input port of the product (inputs: sales/customers, "
            "sales/orders)",
        ),
        (
            lambda job: job.update(sql="SELECT * FROM {{ orders }}", sourceSecret="sources"),
            "a query run in the source database (sourceSecret) cannot name input ports",
        ),
    ],
)
def test_a_pipeline_query_naming_no_input_port_is_an_error_on_the_query(
    repo: Path, capsys: pytest.CaptureFixture[str], change: Any, message: str
) -> None:
    path = repo / "products" / "sales" / "revenue-daily.yaml"
    edit(path, lambda d: change(d["spec"]["pipeline"]))
    code, out, _ = run(capsys, "validate")
    assert code == 1
    errors = [line for line in out.splitlines() if "revenue-daily.yaml" in line and "error" in line]
    assert len(errors) == 1, out
    assert "spec.pipeline.sql" in errors[0] and message in errors[0]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM {{ table }}", "a check only reads: the query starts with DELETE"),
        ("SELECT 1; DROP TABLE x", "a check is one statement"),
        ("WITH d AS (UPDATE t SET a = 1 RETURNING 1) SELECT count(*) FROM d", "uses UPDATE"),
    ],
)
def test_a_quality_check_that_writes_is_an_error_on_its_query(
    repo: Path, capsys: pytest.CaptureFixture[str], query: str, message: str
) -> None:
    path = repo / "products" / "sales" / "orders.yaml"
    edit(path, lambda d: d["spec"]["qualityChecks"].append({"name": "custom", "sql": query}))
    code, out, _ = run(capsys, "validate")
    assert code == 1
    errors = [line for line in out.splitlines() if "orders.yaml" in line and "error" in line]
    assert len(errors) == 1, out
    assert "spec.qualityChecks[3].sql" in errors[0] and message in errors[0]


STATUSES = {
    "items": [
        {
            "metadata": {"name": "orders", "namespace": "sales"},
            "spec": {"domain": "sales"},
            "status": {
                "phase": "Degraded",
                "quality": {
                    "summary": "1 failed",
                    "lastRun": "2026-12-06T05:00:00Z",
                    "checks": [
                        {"name": "key-unique", "severity": "critical", "verdict": "Passed"},
                        {
                            "name": "currency-allowed-values",
                            "severity": "error",
                            "verdict": "Failed",
                            "message": "measured 0.99975, expected >= 1",
                            "sample": ['{"currency":"euro","order_id":"O000100"}'],
                        },
                    ],
                },
                "conditions": [
                    {"type": "SLAMet", "status": "True", "reason": "Met", "message": "within 15m"}
                ],
            },
        }
    ]
}


def test_the_catalog_shows_the_clusters_latest_verdicts(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps(STATUSES))
    assert run(capsys, "catalog", "--out", str(tmp_path / "site"), "--status", str(status))[0] == 0
    page = (tmp_path / "site" / "index.html").read_text()
    section = page[page.index('id="sales-orders"') :].split("</section>")[0]
    assert "<b>Phase</b> Degraded" in section and "<b>Quality</b> 1 failed" in section
    assert "currency-allowed-values (error): Failed" in section and "euro" in section
    assert "key-unique" not in section  # passing checks are not listed
    assert "<b>SLA</b> Met" in section
    other = page[page.index('id="sales-customers"') :].split("</section>")[0]
    assert "<b>Phase</b>" not in other  # the cluster said nothing of it


def test_a_status_file_that_is_not_a_product_list_is_a_usage_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "status.json"
    bad.write_text('{"kind": "Pod"}')
    code, _, err = run(capsys, "catalog", "--out", str(tmp_path / "site"), "--status", str(bad))
    assert code == 2 and "not a DataProduct list" in err and str(bad) in err
