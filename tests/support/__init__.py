"""Helpers shared by the test tiers and the benchmarks: object factories, the policy
cases, the test cluster and the operator as a process, waiting, reading objects with
kubectl, applying the live repository, and rendering the Helm chart.

Test modules import from here, never from each other; conftest files hold fixtures only.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
