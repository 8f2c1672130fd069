"""A product's warehouse objects, planned without a warehouse."""

from __future__ import annotations

import pytest

from datamesh.dataplane.warehouse.plan import Consumer, plan
from datamesh.governance.warehouse_names import WarehouseNameError, reader_role
from tests.support.factories import product

PORTS = [
    {"name": "order-lines", "type": "table", "location": "sales.order_lines"},
    {"name": "events", "type": "topic", "location": "orders.events"},
]


def test_one_table_per_table_port_and_major_version_in_the_domains_schema() -> None:
    planned = plan(
        product(
            namespace="product-analytics",
            domain="product-analytics",
            version="2.3.0",
            outputPorts=PORTS,
        )
    )
    assert planned.schema == "product_analytics"
    assert [t.name for t in planned.tables] == ["orders__order_lines_v2"]
    assert planned.pipeline_role == "dmp_product_analytics__orders"


def test_columns_types_keys_and_comments_come_from_the_contract() -> None:
    table = plan(product(outputPorts=PORTS)).tables[0]
    assert [(c.name, c.type, c.not_null) for c in table.columns] == [
        ("order_id", "text", True),
        ("amount", "numeric", False),
    ]
    assert table.primary_key == ("order_id",)
    assert table.columns[0].comment == "Order id."
    assert table.comment == "Orders."


def test_readers_are_reader_domains_and_consumer_pipelines() -> None:
    prod = product(outputPorts=PORTS, access={"readers": {"domains": ["finance"]}})
    table = plan(prod, [Consumer("marketing", "campaigns")]).tables[0]
    assert table.readers == {reader_role("finance"), "dmp_marketing__campaigns"}


def test_a_name_over_63_bytes_is_an_error_naming_it_never_truncated() -> None:
    long_port = [{"name": "p" * 53, "type": "table", "location": "x"}]
    with pytest.raises(WarehouseNameError, match=r"table of port 'orders__p{53}_v1' is 64 bytes"):
        plan(product(outputPorts=long_port))


def test_two_products_with_the_same_port_name_get_two_tables() -> None:
    """Ports are named per product (`warehouse` is common): the table names the product."""
    port = [{"name": "warehouse", "type": "table", "location": "x"}]
    first = plan(product("orders", outputPorts=port)).tables[0]
    second = plan(product("customers", outputPorts=port)).tables[0]
    assert (first.name, second.name) == ("orders__warehouse_v1", "customers__warehouse_v1")


def test_a_product_named_like_a_reader_role_gets_a_pipeline_role_of_its_own() -> None:
    assert plan(product("readers", outputPorts=[])).pipeline_role == "dmp_sales__readers"
    assert reader_role("sales") == "dmr_sales"
