"""The corpus of bad input in tests/data/invalid: each file names its expected error in
its first line (`# expect: ...`). Each is dropped into a copy of the live repository
(products into products/sales/, policies into policies/global/) and `meshctl validate`
must fail, pointing at that file with the expected message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from datamesh.meshctl.main import main as meshctl
from tests.support import ROOT

CORPUS = sorted((ROOT / "tests" / "data" / "invalid").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 60
    assert len([p for p in CORPUS if p.name.startswith("policy-")]) >= 10


@pytest.mark.parametrize("case", CORPUS, ids=[p.stem for p in CORPUS])
def test_invalid_input_is_reported(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in ("products", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    target_dir = "products/sales" if case.name.startswith("product-") else "policies/global"
    target = tmp_path / target_dir / f"zz-{case.name}"
    shutil.copy(case, target)
    monkeypatch.chdir(tmp_path)
    code = meshctl(["validate"])
    out = capsys.readouterr().out
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.startswith(f"{target_dir}/zz-")]
    assert lines, f"no problem reported for the case file:\n{out}"
    assert any(expected(case) in line for line in lines), "\n".join(lines)
    # Nothing else in the repository is blamed.
    others = [line for line in out.splitlines() if ": error:" in line and "zz-" not in line]
    assert others == [], others
