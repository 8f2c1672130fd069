"""Warehouse connections from the environment: listed names, their two variables, clear
errors that never show a secret, and derived pipeline passwords."""

from __future__ import annotations

import pytest

from datamesh.controller.settings import Settings, SettingsError
from datamesh.controller.warehouses import connections, variable

DSN = "host=10.0.0.5 port=6543 dbname=analytics user=admin password=s3cret-admin"
KEY = "k" * 32


def env(**extra: str) -> dict[str, str]:
    return {
        "DATAMESH_WAREHOUSES": "main,eu-archive",
        "DATAMESH_WAREHOUSE_MAIN_DSN": DSN,
        "DATAMESH_WAREHOUSE_MAIN_CREDENTIALS_KEY": KEY,
        "DATAMESH_WAREHOUSE_EU_ARCHIVE_DSN": "host=archive dbname=cold user=a password=b",
        "DATAMESH_WAREHOUSE_EU_ARCHIVE_CREDENTIALS_KEY": "x" * 16,
        **extra,
    }


def load(values: dict[str, str]):  # type: ignore[no-untyped-def]
    return connections(Settings.from_env(values), values)


def test_every_listed_warehouse_is_connected_in_order_the_first_the_default() -> None:
    found = load(env())
    assert list(found) == ["main", "eu-archive"]
    main = found["main"]
    assert (main.host, main.port, main.database) == ("10.0.0.5", "6543", "analytics")
    assert found["eu-archive"].port == "5432"
    assert variable("eu-archive", "DSN") == "DATAMESH_WAREHOUSE_EU_ARCHIVE_DSN"


def test_secrets_never_show_in_repr() -> None:
    text = repr(load(env()))
    assert "s3cret-admin" not in text and KEY not in text


def test_pipeline_passwords_are_derived_per_role_and_warehouse_and_key() -> None:
    found = load(env())
    main = found["main"]
    assert main.password("dmp_sales__orders") == main.password("dmp_sales__orders")
    assert main.password("dmp_sales__orders") != main.password("dmp_sales__customers")
    rotated = load(env(DATAMESH_WAREHOUSE_MAIN_CREDENTIALS_KEY="r" * 32))["main"]
    assert rotated.password("dmp_sales__orders") != main.password("dmp_sales__orders")
    settings = main.libpq_settings("dmp_sales__orders")
    assert settings == {
        "PGHOST": "10.0.0.5",
        "PGPORT": "6543",
        "PGDATABASE": "analytics",
        "PGUSER": "dmp_sales__orders",
        "PGPASSWORD": main.password("dmp_sales__orders"),
    }


def test_no_warehouse_listed_means_none() -> None:
    assert load({}) == {}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"DATAMESH_WAREHOUSE_MAIN_DSN": ""}, "DATAMESH_WAREHOUSE_MAIN_DSN is not set"),
        ({"DATAMESH_WAREHOUSE_MAIN_DSN": "host=x port"}, "not a PostgreSQL connection string"),
        ({"DATAMESH_WAREHOUSE_MAIN_DSN": "dbname=x"}, "must name a host and a dbname"),
        ({"DATAMESH_WAREHOUSE_MAIN_CREDENTIALS_KEY": "short"}, "at least 16 bytes"),
        ({"DATAMESH_WAREHOUSE_OLD_DSN": "host=a dbname=b"}, "not listed in DATAMESH_WAREHOUSES"),
        ({"DATAMESH_WAREHOUSES": "main,main"}, "names a warehouse twice"),
        ({"DATAMESH_WAREHOUSES": "Main"}, "DATAMESH_WAREHOUSES"),
    ],
)
def test_bad_warehouse_settings_name_the_variable_not_the_secret(
    change: dict[str, str], fragment: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load(env(**change))
    assert fragment in str(info.value)
    assert "s3cret-admin" not in str(info.value) and KEY not in str(info.value)
