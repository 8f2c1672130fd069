"""The ODCS export as datacontract-cli reads it: an outside ODCS client, pinned and installed
by hack/install-datacontract-cli.sh into a virtualenv of its own. `datacontract lint` must
pass every live product's export with no error and no warning. Its exit code is 0 with
warnings, so the JSON results it writes are read instead."""

from __future__ import annotations

import functools
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from datamesh.api.models import DataProduct
from datamesh.meshctl import odcs
from tests.support import factories
from tests.support.datacontract import cli as _cli
from tests.support.factories import live_documents

PRODUCTS = [d.obj for d in live_documents() if isinstance(d.obj, DataProduct)]

# Every kind of output port and of quality check, so that each mapping meets the client.
EVERY_KIND = factories.product(
    name="every-kind",
    schema={
        "format": "parquet",
        "fields": [
            {"name": "order_id", "type": "string", "primaryKey": True, "nullable": False},
            {"name": "amount", "type": "decimal", "constraints": {"minimum": 0}},
            {"name": "currency", "type": "string", "constraints": {"allowedValues": ["EUR"]}},
            {"name": "ordered_at", "type": "timestamp", "nullable": False},
        ],
    },
    outputPorts=[
        {"name": "warehouse", "type": "table", "location": "sales.every_kind"},
        {"name": "curated", "type": "view", "location": "every_kind_view"},
        {"name": "events", "type": "topic", "location": "sales.every-kind.v1"},
        {"name": "rest", "type": "api", "location": "https://api.example.com/every-kind"},
        {"name": "export", "type": "file", "location": "s3://bucket/every-kind/"},
        {"name": "share", "type": "file", "location": "/data/every-kind/*.parquet"},
    ],
    sla={"freshness": "90s", "availability": 99.5, "completeness": 99.0},
    qualityChecks=[
        {"name": "completeness", "rule": "completeness", "threshold": 0.99},
        {"name": "freshness", "rule": "freshness"},
        {"name": "amount-set", "rule": "not_null", "column": "amount", "threshold": 0.9},
        {"name": "amount-complete", "rule": "completeness", "column": "amount"},
        {"name": "id-unique", "rule": "unique", "column": "order_id"},
        {"name": "id-mostly-unique", "rule": "unique", "column": "order_id", "threshold": 0.9},
        {"name": "rows-unique", "rule": "unique"},
        {"name": "currency-known", "rule": "accepted_values", "column": "currency"},
        {"name": "amount-range", "rule": "range", "column": "amount", "threshold": 0.5},
        {"name": "not-empty", "rule": "row_count"},
        {"name": "known-orders", "rule": "referential_integrity", "column": "order_id"},
        {"name": "share", "sql": "SELECT 1.0", "threshold": 0.9},
    ],
)


@dataclass(frozen=True)
class Lint:
    exit_code: int
    output: str
    results: dict[str, Any]

    def findings(self) -> list[str]:
        """Every check that did not pass: errors and warnings alike."""
        return [
            f"{c['result']}: {c['name']}: {c['reason']}"
            for c in self.results.get("checks", [])
            if c["result"] != "passed"
        ]


def _lint(cli: Path, contract: Path) -> Lint:
    report = contract.with_suffix(".lint.json")
    proc = subprocess.run(
        [str(cli), "lint", str(contract), "--output-format", "json", "--output", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    results = json.loads(report.read_text()) if report.exists() else {}
    return Lint(proc.returncode, proc.stdout + proc.stderr, results)


def _write(folder: Path, product: DataProduct, doc: dict[str, Any] | None = None) -> Path:
    path = folder / f"{product.spec.domain}.{product.metadata.name}.odcs.yaml"
    text = yaml.safe_dump(doc or odcs.to_odcs(product), sort_keys=False, width=100)
    path.write_text(text)
    return path


@functools.cache
def _lint_exports(folder: Path) -> dict[str, Lint]:
    """Each export in ``folder`` linted, two at a time (a run takes a few seconds)."""
    cli = _cli()
    contracts = sorted(folder.glob("*.odcs.yaml"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        lints = pool.map(functools.partial(_lint, cli), contracts)
        return {
            c.name.removesuffix(".odcs.yaml"): lint
            for c, lint in zip(contracts, lints, strict=True)
        }


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("odcs")
    for product in [*PRODUCTS, EVERY_KIND]:
        _write(folder, product)
    return folder


@pytest.mark.parametrize(
    "product", [*PRODUCTS, EVERY_KIND], ids=[*(p.ref for p in PRODUCTS), "every-kind"]
)
def test_datacontract_lint_passes_the_export_with_no_warning(
    exports: Path, product: DataProduct
) -> None:
    lint = _lint_exports(exports)[f"{product.spec.domain}.{product.metadata.name}"]
    assert lint.exit_code == 0, lint.output
    assert lint.findings() == [], lint.output
    assert lint.results["result"] == "passed", lint.output
    assert lint.results["dataContractId"] == f"{product.spec.domain}.{product.metadata.name}"


def test_the_lint_check_sees_warnings_and_errors(tmp_path: Path) -> None:
    """A percent of duplicates (as the export once had) and a field ODCS does not know are
    warnings, with exit code 0; a wrong logical type is an error."""
    product = PRODUCTS[0]
    doc = odcs.to_odcs(product)
    schema = doc["schema"][0]
    schema["physicalTable"] = schema["name"]
    schema["quality"] = [
        {
            "type": "library",
            "metric": "duplicateValues",
            "arguments": {"column": product.spec.schema_.fields[0].name},
            "mustBeLessOrEqualTo": 0,
            "unit": "percent",
        }
    ]
    lint = _lint(_cli(), _write(tmp_path, product, doc))
    assert lint.exit_code == 0, "warnings do not change the exit code"
    findings = "\n".join(lint.findings())
    assert findings.count("warning: ") == 2, findings
    assert "'unit:percent' has to be combined with" in findings
    assert "unknown fields are ignored: 'physicalTable'" in findings

    schema["properties"][0]["logicalType"] = "varchar"
    lint = _lint(_cli(), _write(tmp_path, product, doc))
    assert lint.exit_code == 1 and lint.results["result"] in ("error", "failed"), lint.output
