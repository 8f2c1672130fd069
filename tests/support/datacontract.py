"""The pinned datacontract-cli (installed by hack/install-datacontract-cli.sh into the
tool cache), the external reference the ODCS export and the quality checks are held to."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

INSTALLER = ROOT / "hack" / "install-datacontract-cli.sh"
_PINNED = re.search(r"^DATACONTRACT_CLI_VERSION=(\S+)$", INSTALLER.read_text(), re.MULTILINE)
assert _PINNED, f"{INSTALLER} sets no DATACONTRACT_CLI_VERSION"
VERSION = _PINNED.group(1)


@functools.cache
def cli() -> Path:
    """The pinned datacontract executable: $DATACONTRACT_CLI, else the tool cache's."""
    cache = Path(os.environ.get("DATAMESH_CACHE") or ROOT / ".cache")
    default = cache / f"datacontract-cli-{VERSION}" / "bin" / "datacontract"
    found_cli = Path(os.environ.get("DATACONTRACT_CLI") or default)
    how = (
        f"Install it with `bash hack/install-datacontract-cli.sh` (as `make test` does), "
        f"or point DATACONTRACT_CLI at a datacontract {VERSION} executable."
    )
    if not found_cli.is_file():
        pytest.fail(
            f"datacontract-cli {VERSION} is not installed at {found_cli}. {how}", pytrace=False
        )
    found = subprocess.run(
        [str(found_cli), "--version"], capture_output=True, text=True, timeout=120, check=False
    ).stdout.strip()
    if found != VERSION:
        pytest.fail(
            f"{found_cli} is datacontract-cli {found!r}, not {VERSION}. {how}", pytrace=False
        )
    return found_cli
