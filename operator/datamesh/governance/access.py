"""Access along lineage: a product may read only upstream products that grant it read.

Reading is declared twice, on purpose: the consumer's ``inputPorts`` say what it reads,
the producer's ``access.readers`` say who may. A consumer is granted when the upstream's
readers name its domain, its domain's group, or its pipeline's service account; anything
else is a blocking violation of a built-in rule, fixed in the upstream's pull request
(its owners approve who reads their data). Pure."""

from __future__ import annotations

from collections.abc import Callable

from datamesh.api.constants import DOMAIN_GROUP, PIPELINE_ACCOUNT
from datamesh.api.models import DataProduct, Enforcement, Severity, Violation
from datamesh.governance.lineage import upstream_refs

BUILTIN_ACCESS_POLICY = "builtin/access-along-lineage"


def pipeline_account(product: DataProduct) -> str:
    """The consumer's pipeline identity, as ``namespace/name`` (``readers`` spelling)."""
    account = PIPELINE_ACCOUNT.format(product=product.metadata.name)
    return f"{product.metadata.namespace}/{account}"


def grants(upstream: DataProduct, consumer: DataProduct) -> bool:
    readers = upstream.spec.access.readers
    domain = consumer.spec.domain
    return (
        domain in readers.domains
        or DOMAIN_GROUP.format(domain=domain) in readers.groups
        or pipeline_account(consumer) in readers.service_accounts
    )


def violations(
    product: DataProduct, upstream_of: Callable[[str], DataProduct | None]
) -> list[Violation]:
    """One blocking violation per upstream that exists and does not grant this product
    read (a missing upstream is lineage's to report)."""
    out = []
    for ref in upstream_refs(product):
        upstream = upstream_of(ref)
        if upstream is None or upstream.ref == product.ref or grants(upstream, product):
            continue
        out.append(
            Violation(
                policy=BUILTIN_ACCESS_POLICY,
                rule="upstream-grants-read",
                enforcement=Enforcement.BLOCK,
                severity=Severity.ERROR,
                message=(
                    f"{product.ref} reads {ref}, whose spec.access.readers do not include "
                    f"domain {product.spec.domain!r}, group "
                    f"{DOMAIN_GROUP.format(domain=product.spec.domain)!r} or service account "
                    f"{pipeline_account(product)!r}: add one of them to {ref}'s readers in a "
                    "pull request its owners approve"
                ),
            )
        )
    return out
