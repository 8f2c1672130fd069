"""Warehouse names: built from the mesh's names, and refused (never cut) over 63 bytes."""

from __future__ import annotations

import pytest

from datamesh.governance.warehouse_names import (
    IdentifierTooLong,
    WarehouseNames,
    problems,
    reader_role,
)


def test_names_use_underscores_and_version_tables() -> None:
    names = WarehouseNames("product-analytics", "feature-usage")
    assert names.schema == "product_analytics"
    assert names.table("daily-usage", 3) == "daily_usage_v3"
    assert names.pipeline_role == "dm_product_analytics__feature_usage"
    assert reader_role("finance") == "dm_finance__readers"


def test_63_bytes_is_the_limit() -> None:
    assert WarehouseNames("d", "p").table("x" * 60, 1) == "x" * 60 + "_v1"
    with pytest.raises(IdentifierTooLong, match="is 64 bytes; the warehouse keeps at most 63"):
        WarehouseNames("d", "p").table("x" * 61, 1)


def test_problems_name_the_field_of_each_name_too_long() -> None:
    found = problems("d" * 40, "p" * 40, 1, [(0, "fine"), (2, "t" * 62)])
    assert [path for path, _ in found] == [("metadata", "name"), ("spec", "outputPorts", 2, "name")]
    assert "the pipeline role of product" in found[0][1]
    assert problems("sales", "orders", 1, [(0, "orders")]) == []
