"""Settings are read once from the environment, with errors that name the variable."""

from __future__ import annotations

import pytest

from datamesh.controller.settings import Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.platform_namespace, s.metrics_port, s.workers) == ("datamesh-system", 9090, 8)


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {
            "DATAMESH_WORKERS": "3",
            "DATAMESH_RESYNC_SECONDS": "0",
            "DATAMESH_PLATFORM_NAMESPACE": "platform",
        }
    )
    assert (s.workers, s.resync_seconds, s.platform_namespace) == (3, 0, "platform")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DATAMESH_WORKERS": "many"}, "DATAMESH_WORKERS='many'"),
        ({"DATAMESH_METRICS_PORT": "70000"}, "DATAMESH_METRICS_PORT"),
        ({"DATAMESH_PLATFORM_NAMESPACE": "Not_A_Namespace"}, "DNS label"),
        ({"DATAMESH_LOG_FORMAT": "xml"}, "DATAMESH_LOG_FORMAT"),
        ({"DATAMESH_WORKRES": "3"}, "unknown setting(s) DATAMESH_WORKRES"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=None) as info:
        Settings.from_env(env)
    assert fragment in str(info.value)
