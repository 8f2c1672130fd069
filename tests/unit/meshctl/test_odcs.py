"""ODCS export, checked by a real ODCS consumer: the standard's JSON Schema and model."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import open_data_contract_standard
import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from datamesh.api.models import DataProduct
from datamesh.meshctl import odcs
from datamesh.meshctl.main import main as meshctl
from tests.support import ROOT, factories
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
    assert sla["freshness"] == (1, "h") and sla["retention"] == (1095, "d")
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


def _valid(doc: dict[str, Any]) -> dict[str, Any]:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    assert errors == []
    return doc


def test_a_topic_port_is_a_kafka_server_and_never_a_physical_name() -> None:
    topic = "sales.orders.changes"
    product = factories.product(
        outputPorts=[{"name": "events", "type": "topic", "location": topic}]
    )
    doc = _valid(odcs.to_odcs(product))
    [server] = doc["servers"]
    assert server["type"] == "kafka" and server["server"] == "events" and server["host"]
    assert {"property": "topic", "value": topic} in server["customProperties"]
    schema = doc["schema"][0]
    assert "physicalName" not in schema and schema["physicalType"] == "topic"
    assert topic not in json.dumps(doc["schema"])


def test_a_table_port_is_a_postgres_server_on_the_provisioned_table() -> None:
    product = factories.product(
        outputPorts=[
            {"name": "events", "type": "topic", "location": "sales.orders.changes"},
            {"name": "warehouse", "type": "table", "location": "sales.orders_v1"},
            {"name": "rest", "type": "api", "location": "https://api.example.com/orders"},
        ]
    )
    doc = _valid(odcs.to_odcs(product))
    servers = {s["server"]: s for s in doc["servers"]}
    warehouse = servers["warehouse"]
    assert warehouse["type"] == "postgres" and warehouse["schema"] == "sales"
    assert {"host", "port", "database"} <= warehouse.keys()
    assert servers["events"]["type"] == "kafka"
    assert servers["rest"] == {
        "server": "rest",
        "type": "api",
        "location": "https://api.example.com/orders",
    }
    schema = doc["schema"][0]
    # The table the platform provisions, with the column types it gives them.
    assert schema["physicalName"] == "orders__warehouse_v1" and schema["physicalType"] == "table"
    types = {p["name"]: p["physicalType"] for p in schema["properties"]}
    assert types == {"order_id": "text", "amount": "numeric"}
    with_server = odcs.to_odcs(product, {"host": "10.0.0.5", "port": 6543, "database": "w"})
    server = next(s for s in with_server["servers"] if s["server"] == "warehouse")
    assert (server["host"], server["port"], server["database"]) == ("10.0.0.5", 6543, "w")


def test_a_table_is_in_the_domains_schema() -> None:
    product = factories.product(
        name="customer-360",
        namespace="product-analytics",
        domain="product-analytics",
        outputPorts=[{"name": "warehouse", "type": "table", "location": "customer_360"}],
    )
    doc = _valid(odcs.to_odcs(product))
    assert doc["servers"][0]["schema"] == "product_analytics"
    assert doc["schema"][0]["physicalName"] == "customer_360__warehouse_v1"


def test_file_ports_are_file_servers() -> None:
    product = factories.product(
        outputPorts=[
            {"name": "export", "type": "file", "location": "s3://bucket/orders/*.parquet"},
            {"name": "share", "type": "file", "location": "/data/orders/*.parquet"},
        ]
    )
    doc = _valid(odcs.to_odcs(product))
    export, share = doc["servers"]
    assert (export["type"], export["location"]) == ("s3", "s3://bucket/orders/*.parquet")
    assert (share["type"], share["path"], share["format"]) == (
        "local",
        "/data/orders/*.parquet",
        "parquet",
    )
    assert "physicalName" not in doc["schema"][0]


def _freshness(doc: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in doc["slaProperties"] if s["property"] == "freshness")


def test_the_freshness_element_is_one_table_and_one_column() -> None:
    """datacontract-cli drops a freshness check whose element has more than one dot."""
    fields = [
        *factories.BASE_PRODUCT["spec"]["schema"]["fields"],
        {"name": "loaded_at", "type": "timestamp", "nullable": True},
        {"name": "ordered_at", "type": "timestamp", "nullable": False},
    ]
    product = factories.product(
        name="orders.v2",
        schema={"format": "parquet", "fields": fields},
        outputPorts=[{"name": "warehouse", "type": "table", "location": "sales.orders"}],
    )
    doc = _valid(odcs.to_odcs(product))
    element = _freshness(doc)["element"]
    assert element.count(".") == 1
    table, column = element.split(".")
    schema = doc["schema"][0]
    assert table == schema["name"] and column in [p["name"] for p in schema["properties"]]
    assert column == "ordered_at", "a non-null timestamp is preferred"
    assert "freshness" not in json.dumps(schema.get("quality", [])), "the SLA carries it"


@pytest.mark.parametrize("product", PRODUCTS, ids=[p.ref for p in PRODUCTS])
def test_every_live_freshness_element_names_a_column_of_the_schema(product: DataProduct) -> None:
    doc = odcs.to_odcs(product)
    element = _freshness(doc).get("element")
    if element is None:
        assert not any(f.type == "timestamp" for f in product.spec.schema_.fields)
        return
    table, column = element.split(".")
    assert table == doc["schema"][0]["name"]
    assert column in [f.name for f in product.spec.schema_.fields]


def test_checks_become_rules_on_the_column_they_check() -> None:
    fields = [
        {"name": "order_id", "type": "string", "primaryKey": True, "nullable": False},
        {"name": "amount", "type": "decimal", "constraints": {"minimum": 0, "maximum": 1e6}},
        {"name": "currency", "type": "string", "constraints": {"allowedValues": ["EUR", "O'K"]}},
    ]
    checks = [
        {"name": "amount-set", "rule": "not_null", "column": "amount", "threshold": 0.95},
        {"name": "amount-complete", "rule": "completeness", "column": "amount"},
        {"name": "id-unique", "rule": "unique", "column": "order_id"},
        {"name": "rows-unique", "rule": "unique"},
        {"name": "amount-range", "rule": "range", "column": "amount"},
        {"name": "currency-known", "rule": "accepted_values", "column": "currency"},
        {"name": "not-empty", "rule": "row_count"},
        {"name": "completeness", "rule": "completeness", "threshold": 0.99},
        {"name": "custom", "sql": "SELECT 1.0", "threshold": 0.9},
    ]
    product = factories.product(
        schema={"format": "parquet", "fields": fields}, qualityChecks=checks
    )
    doc = _valid(odcs.to_odcs(product))
    schema = doc["schema"][0]
    on = {p["name"]: {q.get("id"): q for q in p.get("quality", [])} for p in schema["properties"]}
    table = {q["id"]: q for q in schema["quality"]}
    # a share below 1 is a percent (0..100) of failing rows
    amount_set = on["amount"]["amount-set"]
    assert (amount_set["metric"], amount_set["unit"]) == ("nullValues", "percent")
    assert amount_set["mustBeLessOrEqualTo"] == 5.0
    # datacontract-cli names checks by metric: a second one on a property is SQL instead
    assert on["amount"]["amount-complete"]["query"].endswith("FROM ${table}")
    assert on["order_id"]["id-unique"]["metric"] == "duplicateValues"
    assert table["rows-unique"]["arguments"] == {"properties": ["order_id"]}
    assert "${column} <= 1000000" in on["amount"]["amount-range"]["query"]
    # allowed values are an invalidValues rule already
    currency = on["currency"]
    assert [q.get("metric") for q in currency.values()].count("invalidValues") == 1
    assert "IN ('EUR', 'O''K')" in currency["currency-known"]["query"]
    assert table["not-empty"]["metric"] == "rowCount"
    assert table["completeness"]["type"] == "custom", "needs the source's record count"
    assert table["custom"]["query"] == "SELECT 1.0"
    assert all(q.get("description") for q in [*table.values(), *on["amount"].values()])
