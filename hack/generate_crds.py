"""Writes crds/ from the pydantic models (`make crds`). The models are the only source."""

from __future__ import annotations

import sys
from pathlib import Path

from datamesh.api import crd

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """crds/ for kubectl and ArgoCD, and the chart's crds/ for helm: the same files."""
    wanted = crd.all_crds()
    for out in (ROOT / "crds", ROOT / "charts" / "datamesh-operator" / "crds"):
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob("*.yaml"):
            if stale.name not in wanted:
                stale.unlink()
        for name, obj in wanted.items():
            (out / name).write_text(crd.render(obj))
            print(f"wrote {(out / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
