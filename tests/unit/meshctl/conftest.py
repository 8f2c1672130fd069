"""Fixtures for the meshctl tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of products/ and policies/ as the current directory."""
    for folder in ("products", "policies"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    return tmp_path
