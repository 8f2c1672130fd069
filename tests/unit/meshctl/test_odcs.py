"""ODCS export, checked by a real ODCS consumer: the standard's JSON Schema and model."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import open_data_contract_standard
import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from datamesh.api.models import DataProduct
from datamesh.meshctl import odcs
from datamesh.meshctl.main import main as meshctl
from tests.support import ROOT
from tests.support.factories import live_documents

SCHEMA = json.loads((Path(open_data_contract_standard.__file__).parent / "schema.json").read_text())
VALIDATOR = jsonschema.Draft201909Validator(SCHEMA)
PRODUCTS = [d.obj for d in live_documents() if isinstance(d.obj, DataProduct)]


@pytest.mark.parametrize("product", PRODUCTS, ids=[p.ref for p in PRODUCTS])
def test_every_live_product_exports_valid_odcs(product: DataProduct) -> None:
    doc = odcs.to_odcs(product)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert errors == []
    parsed = OpenDataContractStandard.model_validate(doc)
    assert parsed.id == product.spec.domain + "." + product.metadata.name
    assert parsed.version == product.spec.version
    assert [p.name for p in parsed.schema_[0].properties] == [
        f.name for f in product.spec.schema_.fields
    ]


def test_the_schema_check_can_fail() -> None:
    doc = copy.deepcopy(odcs.to_odcs(PRODUCTS[0]))
    doc["schema"][0]["properties"][0]["logicalType"] = "varchar"
    assert list(VALIDATOR.iter_errors(doc)), "a wrong logicalType must be rejected"


def test_contract_carries_keys_pii_sla_and_owner() -> None:
    customers = next(p for p in PRODUCTS if p.ref == "sales/customers")
    doc = odcs.to_odcs(customers)
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    assert props["customer_id"]["primaryKey"] is True and props["customer_id"]["required"]
    assert props["customer_email"]["classification"] == "pii"
    sla = {s["property"]: (s["value"], s["unit"]) for s in doc["slaProperties"]}
    assert sla["latency"] == (1, "h") and sla["retention"] == (1095, "d")
    assert doc["team"]["name"] == "sales-analytics"


def test_meshctl_export_writes_odcs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "orders.odcs.yaml"
    assert meshctl(["export", "sales/orders", "--format", "odcs", "--out", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["kind"] == "DataContract" and doc["name"] == "orders"
    assert meshctl(["export", "nothing"]) == 2
    assert "no product named 'nothing'" in capsys.readouterr().err
