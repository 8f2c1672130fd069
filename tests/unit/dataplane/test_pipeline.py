"""The pipeline runner's record of runs in the product's claim."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from datamesh.dataplane import pipeline


def write_contract(path: Path) -> Path:
    contract = {
        "product": "orders",
        "version": "1.2.0",
        "schema": {"format": "parquet", "fields": [{"name": "order_id"}, {"name": "amount"}]},
    }
    path.write_text(yaml.safe_dump(contract))
    return path


def test_each_run_reads_what_the_previous_runs_left(tmp_path: Path) -> None:
    contract = write_contract(tmp_path / "contract.yaml")
    data = tmp_path / "data"
    assert pipeline.main(["--contract", str(contract), "--data", str(data)]) == 0
    first = (data / pipeline.RUNS).read_bytes()
    assert pipeline.main(["--contract", str(contract), "--data", str(data)]) == 0
    runs = [json.loads(line) for line in (data / pipeline.RUNS).read_text().splitlines()]
    assert [r["run"] for r in runs] == [1, 2]
    assert runs[0]["columns"] == ["order_id", "amount"] and runs[0]["version"] == "1.2.0"
    assert runs[1]["previousRuns"] == 1
    assert runs[1]["previousSha256"] == hashlib.sha256(first).hexdigest()
    assert json.loads((data / pipeline.LATEST).read_text())["run"] == 2


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    contract = write_contract(tmp_path / "contract.yaml")
    data = tmp_path / "data"
    data.mkdir()
    (data / pipeline.RUNS).write_text('{"run": 1}\n{"run": 2, "at"')
    assert pipeline.main(["--contract", str(contract), "--data", str(data)]) == 0
    last = json.loads((data / pipeline.RUNS).read_text().splitlines()[-1])
    assert last["run"] == 2 and last["previousRuns"] == 1


def test_a_missing_or_broken_contract_fails_with_a_message(tmp_path: Path, capsys: object) -> None:
    assert pipeline.main(["--contract", str(tmp_path / "none.yaml"), "--data", str(tmp_path)]) == 1
    (tmp_path / "bad.yaml").write_text("- a list\n")
    assert pipeline.main(["--contract", str(tmp_path / "bad.yaml"), "--data", str(tmp_path)]) == 1
    assert not (tmp_path / pipeline.RUNS).exists()
