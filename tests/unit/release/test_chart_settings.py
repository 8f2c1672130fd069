"""The chart's values schema and the operator's settings agree: every value the chart
passes to the operator accepts exactly what the setting accepts (type, bounds, choices),
so `helm install` refuses what the operator would refuse and allows what it allows."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from datamesh.controller.settings import PREFIX, Settings
from tests.support import ROOT

CHART = ROOT / "charts" / "datamesh-operator"

# chart value path -> setting
VALUES = {
    "platformNamespace": "platform_namespace",
    "admission.enabled": "admission",
    "operator.workers": "workers",
    "operator.resyncSeconds": "resync_seconds",
    "operator.logFormat": "log_format",
    "operator.logLevel": "log_level",
    "operator.metricsPort": "metrics_port",
    "operator.healthPort": "health_port",
    "operator.warehouseDriftSeconds": "warehouse_drift_seconds",
}
# Rendered from the `warehouses` list (test_chart_templates checks them): the names, and
# each warehouse's DATAMESH_WAREHOUSE_<NAME>_DSN and _CREDENTIALS_KEY from its Secret.
LIST_SETTINGS = {"WAREHOUSES", "WAREHOUSE_"}


def chart_schema(path: str) -> dict[str, Any]:
    node: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    for part in path.split("."):
        node = node["properties"][part]
    return node


def setting_schema(name: str) -> dict[str, Any]:
    prop: dict[str, Any] = Settings.model_json_schema()["properties"][name]
    return prop


@pytest.mark.parametrize(("value", "setting"), sorted(VALUES.items()))
def test_a_chart_value_accepts_what_its_setting_accepts(value: str, setting: str) -> None:
    chart, settings = chart_schema(value), setting_schema(setting)
    if "enum" in settings:
        assert chart.get("enum") == settings["enum"]
        return
    assert chart["type"] == settings["type"]
    for bound in ("minimum", "maximum", "pattern"):
        assert chart.get(bound) == settings.get(bound), f"{value} {bound}"


def test_the_deployment_passes_every_charted_setting() -> None:
    deployment = (CHART / "templates" / "deployment.yaml").read_text()
    passed = set(re.findall(rf"name: {PREFIX}([A-Z_]+)", deployment))
    assert passed - LIST_SETTINGS == {s.upper() for s in VALUES.values()}
    assert passed - {"WAREHOUSE_"} <= {f.upper() for f in Settings.model_fields}
