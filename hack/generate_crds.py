"""Writes crds/ from the pydantic models (`make crds`). The models are the only source."""

from __future__ import annotations

import sys
from pathlib import Path

from datamesh import crd

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    out = ROOT / "crds"
    out.mkdir(exist_ok=True)
    wanted = crd.all_crds()
    for stale in out.glob("*.yaml"):
        if stale.name not in wanted:
            stale.unlink()
    for name, obj in wanted.items():
        (out / name).write_text(crd.render(obj))
        print(f"wrote crds/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
