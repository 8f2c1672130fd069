"""Cron schedules are refused where Kubernetes' CronJob API would refuse them, before
they reach the cluster: in the CRD's pattern and offline (the same pattern)."""

from __future__ import annotations

import re

import pytest

from datamesh.api.models import CRON

ACCEPTED = [
    "0 * * * *",
    "*/15 * * * *",
    "0 0 1 1 *",
    "5 4 * * sun",
    "0 22 * * 1-5",
    "0 0,12 1 */2 *",
    "0-59/5 0-23 1-31 1-12 0-6",
    "0 9 * JAN-MAR mon-fri",
    "30 23 31 12 6",
    "5/15 * * * *",
    "0 0 ? * MON",
    "@hourly",
    "@Daily",
    "@annually",
    "@midnight",
]
REFUSED = [
    "0 24 * * *",
    "60 * * * *",
    "* * 0 * *",
    "* * 32 * *",
    "* * * 13 *",
    "* * * * 7",
    "*/0 * * * *",
    "0 * * * * *",
    "* * * *",
    "every hour",
    "@every 5m",
    "@reboot",
    "TZ=UTC 0 * * * *",
    "0 * * jan-feb-mar *",
    "1,,2 * * * *",
]


@pytest.mark.parametrize("schedule", ACCEPTED)
def test_kubernetes_schedules_are_accepted(schedule: str) -> None:
    assert re.match(CRON, schedule)


@pytest.mark.parametrize("schedule", REFUSED)
def test_schedules_kubernetes_refuses_are_refused(schedule: str) -> None:
    assert not re.match(CRON, schedule)
