"""Access along lineage: a consumer reads only upstream products that grant it read."""

from __future__ import annotations

import datetime as dt

import pytest

from datamesh.governance import access, policy
from tests.support.factories import product

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def upstream(**readers: list[str]):  # type: ignore[no-untyped-def]
    return product("orders", "sales", access={"readers": readers})


def consumer():  # type: ignore[no-untyped-def]
    return product(
        "revenue",
        "finance",
        domain="finance",
        inputPorts=[{"product": "orders", "domain": "sales"}],
    )


@pytest.mark.parametrize(
    ("readers", "granted"),
    [
        ({"domains": ["finance"]}, True),
        ({"groups": ["datamesh:domain:finance"]}, True),
        ({"serviceAccounts": ["finance/revenue-pipeline"]}, True),
        ({"domains": ["sales", "marketing"]}, False),
        ({"serviceAccounts": ["finance/other-pipeline"]}, False),
        ({"groups": ["finance"]}, False),
        ({}, False),
    ],
)
def test_an_upstream_grants_by_domain_group_or_pipeline_account(
    readers: dict[str, list[str]], granted: bool
) -> None:
    up = upstream(**readers)
    found = access.violations(consumer(), {up.ref: up}.get)
    assert (found == []) is granted
    if not granted:
        (violation,) = found
        assert violation.policy == access.BUILTIN_ACCESS_POLICY
        assert "finance/revenue reads sales/orders" in violation.message
        assert "add one of them to sales/orders's readers" in violation.message


def test_a_missing_upstream_is_left_to_lineage() -> None:
    assert access.violations(consumer(), lambda ref: None) == []


def test_a_refused_read_blocks_the_consumer() -> None:
    up = upstream(domains=["sales"])
    evaluation = policy.evaluate(
        consumer(), [], now=NOW, builtin=access.violations(consumer(), {up.ref: up}.get)
    )
    assert not evaluation.compliant
    assert evaluation.violations[0].rule == "upstream-grants-read"
