"""datamesh: the control plane of a data mesh (models, governance engine, operator, CLI)."""

from __future__ import annotations

__version__ = "0.1.0"
