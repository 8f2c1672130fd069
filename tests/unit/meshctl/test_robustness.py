"""meshctl never crashes on what it finds in the tree: every bad file gets a message on
that file, the other files are still checked, no traceback reaches the user, and a
fault of meshctl's own exits 3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datamesh.meshctl import checks, loader
from datamesh.meshctl.main import main as meshctl
from tests.support import ROOT

CORPUS = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))
LIVE = 12  # products in the live repository


def hostile_files(folder: Path) -> dict[str, str]:
    """File name -> what meshctl must say about it."""
    (folder / "binary.yaml").write_bytes(b"apiVersion: v1\n\x00\x01\x02")
    (folder / "latin1.yaml").write_bytes(b"kind: DataProduct\ndescription: caf\xe9\n")
    (folder / "huge.yaml").write_bytes(b"# padding\n" * (loader.MAX_MANIFEST_BYTES // 10 + 1))
    (folder / "deep.yaml").write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    wide = {"apiVersion": "datamesh.io/v1alpha1", "kind": "DataProduct"}
    wide["metadata"] = {"name": "wide", "namespace": "sales"}  # type: ignore[assignment]
    wide["spec"] = {f"field{i}": i for i in range(500)}  # type: ignore[assignment]
    (folder / "wide.yaml").write_text(yaml.safe_dump(wide))
    return {
        "binary.yaml": "a binary file (a NUL byte at offset 15)",
        "latin1.yaml": "not UTF-8 text: byte 0xe9",
        "huge.yaml": "the apiserver accepts at most 3,145,728 bytes",
        "deep.yaml": "nested too deeply",
        "wide.yaml": "unknown field",
    }


def test_every_hostile_file_gets_its_own_message(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = hostile_files(repo / "products" / "sales")
    code = meshctl(["validate"])
    out, err = capsys.readouterr()
    assert code == 1, out
    assert "Traceback" not in out + err
    for name, message in expected.items():
        lines = [line for line in out.splitlines() if line.startswith(f"products/sales/{name}:")]
        assert any(message in line for line in lines), (name, lines)
    # the live products were all still checked
    assert f"{LIVE + 1} products" in out.splitlines()[-1]  # the live ones and wide.yaml


def test_the_whole_invalid_corpus_at_once(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for case in CORPUS:
        folder = "products/sales" if case.name.startswith("product-") else "policies/global"
        shutil.copy(case, repo / folder / f"zz-{case.name}")
    code = meshctl(["validate"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out + err
    for case in CORPUS:
        assert f"zz-{case.name}:" in out, case.name


def test_a_fault_inside_meshctl_exits_3_without_a_traceback(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(checks, "validate", broken)
    assert meshctl(["validate"]) == 3
    out, err = capsys.readouterr()
    assert "internal error (KeyError" in err and "Traceback" not in out + err
    report = Path(err.rsplit("Details: ", 1)[1].strip())
    assert "Traceback" in report.read_text()
    report.unlink()


def test_a_closed_pipe_is_not_an_error(repo: Path) -> None:
    script = "import sys; from datamesh.meshctl.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f"{sys.executable} -c '{script}' validate --format json | head -c 10",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{\n  "ok": '[:10] or len(proc.stdout) == 10
    assert proc.stderr == ""


def test_an_unquoted_date_is_the_string_kubectl_sends() -> None:
    text = (ROOT / "tests" / "data" / "invalid" / "policy-no-rules.yaml").read_text()
    doc = yaml.safe_load(text)
    doc["spec"]["rules"] = [{"name": "r", "expression": "true", "message": "m"}]
    doc["spec"]["exceptions"] = [{"product": "orders", "reason": "migrating"}]
    dumped = yaml.safe_dump(doc).replace(
        "reason: migrating", "reason: migrating\n    expires: 2027-05-31"
    )
    docs, problems = loader.load_text(dumped, "policies/global/p.yaml")
    assert problems == [], problems
    assert docs[0].raw["spec"]["exceptions"][0]["expires"] == "2027-05-31"


def test_named_files_are_checked_in_the_whole_repository(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = repo / "products" / "sales" / "orders.yaml"
    doc = yaml.safe_load(orders.read_text())
    doc["spec"].pop("sla", None)  # a global block policy requires an SLA
    orders.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.chdir(repo / "products")  # anywhere inside the repository
    code = meshctl(["validate", "sales/orders.yaml", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [p["file"] for p in report["products"]] == ["products/sales/orders.yaml"]
    assert any(
        v["policy"].startswith("datamesh-system/") for v in report["products"][0]["violations"]
    )
    assert report["summary"]["products"] == 1
    # the same file, from outside, names the same repository
    monkeypatch.chdir(repo.parent)
    assert meshctl(["validate", str(orders)]) == 1
    capsys.readouterr()


def test_no_repository_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "p.yaml").write_text("kind: DataProduct\n")
    monkeypatch.chdir(lonely)
    assert meshctl(["validate"]) == 2
    assert "not inside a repository" in capsys.readouterr().err
    assert meshctl(["validate", "p.yaml"]) == 2
    assert "not inside a repository" in capsys.readouterr().err


def test_a_path_in_another_repository_is_a_usage_error(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path_factory.mktemp("other")
    (other / "products").mkdir()
    (other / "products" / "x.yaml").write_text("kind: Namespace\n")
    assert meshctl(["validate", "products", str(other / "products" / "x.yaml")]) == 2
    assert "not in the repository" in capsys.readouterr().err


def test_the_largest_schema_the_crd_allows_passes_offline(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """128 fields (the CRD's maximum) cost nothing in uniqueness checks: names are a map
    list's keys, checked as the apiserver does, not by a quadratic CEL rule."""
    orders = repo / "products" / "sales" / "orders.yaml"
    doc = yaml.safe_load(orders.read_text())
    doc["spec"]["schema"]["fields"] = [
        {"name": f"c{i}", "type": "string", "description": f"column {i}", "nullable": i > 0}
        for i in range(128)
    ]
    doc["spec"]["schema"]["fields"][0]["primaryKey"] = True
    doc["spec"]["qualityChecks"] = [{"name": "rows", "rule": "row_count", "threshold": 1}]
    orders.write_text(yaml.safe_dump(doc, sort_keys=False))
    code = meshctl(["validate", "products/sales/orders.yaml"])
    out = capsys.readouterr().out
    assert "budget" not in out.lower()
    assert code == 0, out


def test_policy_problems_point_at_their_own_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo / "policies" / "global" / "zz-hygiene.yaml"
    path.write_text(
        "apiVersion: datamesh.io/v1alpha1\n"
        "kind: GovernancePolicy\n"
        "metadata:\n"
        "  name: hygiene\n"
        "  namespace: datamesh-system\n"
        "spec:\n"
        "  description: Hygiene under test.\n"
        "  enforcement: warn\n"
        "  rules:\n"
        "    - name: fine\n"
        "      expression: has(object.spec.sla)\n"
        "      message: ok\n"
        "    - name: broken\n"
        "      expression: object.spec.frobnicate(\n"  # line 14
        "      message: never compiles\n"
        "  exceptions:\n"
        "    - product: orders\n"
        "      reason: migrating\n"
        "      expires: 2099-01-01\n"
        "    - product: ordres\n"  # line 20: a typo
        "      reason: typo\n"
        "      expires: 2099-01-01\n"
    )
    code = meshctl(["validate"])
    out = capsys.readouterr().out
    assert code == 1
    assert any(
        line.startswith("policies/global/zz-hygiene.yaml:14: error:")
        and "spec.rules[1].expression" in line
        for line in out.splitlines()
    ), out
    stale = [line for line in out.splitlines() if "zz-hygiene.yaml:20: warning:" in line]
    assert stale and "exception for 'ordres': no such product" in stale[0], out
    assert not any("'orders': no such product" in line for line in out.splitlines())


@pytest.mark.parametrize(
    ("expires", "real"),
    [
        ("2028-02-29", True),  # a leap year
        ("2027-02-29", False),
        ("2100-02-29", False),  # a century is not a leap year
        ("2000-02-29", True),  # unless it is a fourth one
        ("2027-04-31", False),
        ("2027-12-31T23:59:59Z", True),
        ("2027-13-01", False),
        ("2027-00-10", False),
    ],
)
def test_an_impossible_expiry_date_is_refused(expires: str, real: bool) -> None:
    text = (ROOT / "tests" / "data" / "invalid" / "policy-exception-bad-date.yaml").read_text()
    docs, _ = loader.load_text(text.replace("next year", expires), "policies/global/p.yaml")
    found = checks.schema_problems(docs[0])
    assert (found == []) is real, found
    if not real:
        assert found[0].field == "spec.exceptions[0].expires"
        assert "does not match" in found[0].message
