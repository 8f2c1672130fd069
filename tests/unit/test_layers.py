"""The layers are the folders, and imports only point down:

    api  <-  governance  <-  controller, dataplane, meshctl

controller and meshctl never import each other; the layers below the operator never
import the operator's third-party stack, so ``pip install datamesh[meshctl]`` (without
kopf, the Kubernetes client or Prometheus) gives a working ``meshctl``."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "datamesh"

# What each layer may import from datamesh.
ALLOWED: dict[str, set[str]] = {
    "api": {"api"},
    "governance": {"api", "governance"},
    "dataplane": {"api", "governance", "dataplane"},
    "controller": {"api", "governance", "dataplane", "controller"},
    "meshctl": {"api", "governance", "dataplane", "meshctl"},
}
OPERATOR_ONLY = {"kopf", "kubernetes", "prometheus_client"}


def imports(source: str) -> list[tuple[int, str]]:
    """(line, module) for every import in ``source``; ``from datamesh import x`` counts
    as an import of ``datamesh.x``, and a relative import keeps its dots (refused)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module == "datamesh":
                found.extend((node.lineno, f"datamesh.{alias.name}") for alias in node.names)
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def wrong_arrows(layer: str, source: str) -> list[str]:
    """Every import in a module of ``layer`` that points up or sideways."""
    out = []
    for line, module in imports(source):
        parts = module.split(".")
        if module.startswith("."):
            out.append(f"line {line}: relative import {module}")
        elif parts[0] == "datamesh" and len(parts) > 1 and parts[1] in ALLOWED:
            if parts[1] not in ALLOWED[layer]:
                out.append(f"line {line}: {layer} imports {module}")
        elif parts[0] in OPERATOR_ONLY and layer != "controller":
            out.append(f"line {line}: {layer} imports {module} (an operator-only dependency)")
    return out


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_lives_in_a_layer() -> None:
    loose = [
        p.relative_to(PACKAGE) for p in modules() if p.parent == PACKAGE and p.name != "__init__.py"
    ]
    assert not loose, f"modules outside a layer folder: {loose}"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} <= set(
        ALLOWED
    )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_point_down(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) == 1:
        assert not [m for _, m in imports(path.read_text()) if m.startswith("datamesh.")]
        return
    assert wrong_arrows(relative.parts[0], path.read_text()) == []


@pytest.mark.parametrize(
    ("layer", "source", "wrong"),
    [
        ("meshctl", "from datamesh.controller import settings", True),
        ("meshctl", "from datamesh import controller", True),
        ("governance", "from datamesh.meshctl.loader import Document", True),
        ("api", "import datamesh.governance.policy", True),
        ("controller", "from datamesh.meshctl import checks", True),
        ("meshctl", "import kopf", True),
        ("governance", "from kubernetes import client", True),
        ("meshctl", "from . import loader", True),
        ("controller", "from datamesh.governance import policy\nimport kopf", False),
        ("meshctl", "from datamesh.api.models import DataProduct", False),
    ],
)
def test_the_check_fails_on_a_wrong_arrow(layer: str, source: str, wrong: bool) -> None:
    assert bool(wrong_arrows(layer, source)) is wrong


def test_meshctl_validates_without_the_operators_dependencies() -> None:
    """Run meshctl with kopf, the Kubernetes client and prometheus_client made
    unimportable: it must still validate the live repository."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {sorted(OPERATOR_ONLY)!r}:
                    raise ImportError(f"{{name}} is not installed with datamesh[meshctl]")
                return None

        sys.meta_path.insert(0, Refuse())
        from datamesh.meshctl.main import main
        code = main(["validate", "--format", "json"])
        assert not {{m.split(".")[0] for m in sys.modules}} & set({sorted(OPERATOR_ONLY)!r})
        sys.exit(code)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert '"products":' in proc.stdout
