"""Warehouse names: built from the mesh's names, and refused (never cut) over 63 bytes."""

from __future__ import annotations

import pytest

from datamesh.governance.warehouse_names import (
    WarehouseNameError,
    WarehouseNames,
    problems,
    reader_role,
)


def test_names_use_underscores_and_version_tables() -> None:
    names = WarehouseNames("product-analytics", "feature-usage")
    assert names.schema == "product_analytics"
    assert names.table("daily-usage", 3) == "feature_usage__daily_usage_v3"
    assert names.pipeline_role == "dmp_product_analytics__feature_usage"
    assert reader_role("finance") == "dmr_finance"


def test_a_double_hyphen_is_refused_as_it_would_read_as_a_separator() -> None:
    with pytest.raises(WarehouseNameError, match="'x--y' has '--'"):
        _ = WarehouseNames("sales", "x--y").pipeline_role


def test_63_bytes_is_the_limit() -> None:
    assert WarehouseNames("d", "p").table("x" * 57, 1) == "p__" + "x" * 57 + "_v1"
    with pytest.raises(WarehouseNameError, match="is 64 bytes; the warehouse keeps at most 63"):
        WarehouseNames("d", "p").table("x" * 58, 1)


def test_problems_name_the_field_of_each_name_too_long() -> None:
    found = problems("d" * 40, "p" * 20, 1, [(0, "fine"), (2, "t" * 62)], ["f", "r" * 60])
    assert [path for path, _ in found] == [
        ("metadata", "name"),
        ("spec", "outputPorts", 2, "name"),
        ("spec", "access", "readers", "domains", 1),
    ]
    assert "the pipeline role of product" in found[0][1]
    assert problems("sales", "orders", 1, [(0, "orders")], ["finance"]) == []
