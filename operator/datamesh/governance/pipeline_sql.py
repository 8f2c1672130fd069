"""The rules a product's ``spec.pipeline.sql`` obeys, checked offline by ``meshctl
validate`` and again by the SQL runner when it runs: the query fills the product's one
table, and it names its inputs by input port (``{{ orders }}``, ``{{ sales/orders }}``),
never by table, so the query survives an upstream's new major version."""

from __future__ import annotations

import re

from datamesh.api.models import DataProduct, PortType

PLACEHOLDER = re.compile(r"\{\{\s*([a-z0-9-]+(?:/[a-z0-9-]+)?)\s*\}\}")

Path = tuple[str | int, ...]


def placeholders(query: str) -> list[str]:
    return PLACEHOLDER.findall(query)


def problems(product: DataProduct) -> list[tuple[Path, str]]:
    """(field path, message) for each rule ``product``'s pipeline query breaks."""
    job = product.spec.pipeline
    if job is None or job.sql is None:
        return []
    here: Path = ("spec", "pipeline", "sql")
    out: list[tuple[Path, str]] = []
    tables = [p for p in product.spec.output_ports if p.type == PortType.TABLE]
    if len(tables) != 1:
        out.append(
            (here, f"the SQL runner fills one table output port; the product has {len(tables)}")
        )
    names = placeholders(job.sql)
    if job.source_secret is not None and names:
        out.append(
            (here, "a query run in the source database (sourceSecret) cannot name input ports")
        )
        return out
    known: dict[str, set[str]] = {}
    for port in product.spec.input_ports:
        ref = f"{port.domain or product.spec.domain}/{port.product}"
        known.setdefault(ref, set()).add(ref)
        known.setdefault(port.product, set()).add(ref)
    for name in dict.fromkeys(names):
        refs = known.get(name)
        if not refs:
            inputs = sorted(k for k in known if "/" in k)
            out.append(
                (
                    here,
                    f"{{{{ {name} }}}} names no input port of the product "
                    f"(inputs: {', '.join(inputs) or 'none'})",
                )
            )
        elif len(refs) > 1:
            out.append((here, f"{{{{ {name} }}}} is ambiguous: write one of {sorted(refs)}"))
    return out
