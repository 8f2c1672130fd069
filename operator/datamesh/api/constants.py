"""Names the API, the operator and the CLI must agree on: one home for each."""

from __future__ import annotations

GROUP = "datamesh.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A namespace's domain: this label, else the namespace's own name (see ``domain_of``).
DOMAIN_LABEL = f"{GROUP}/domain"
# The label the operator puts on every object it creates, and the Events' source.
MANAGED_BY = "datamesh-operator"
# Where global policies live unless the operator is told otherwise.
DEFAULT_PLATFORM_NAMESPACE = "datamesh-system"


def namespace_domain(namespace: str, labels: dict[str, str] | None) -> str:
    """The domain a namespace belongs to: its ``datamesh.io/domain`` label, or its own
    name. The operator's index, the admission policies and ``meshctl`` all use this."""
    return (labels or {}).get(DOMAIN_LABEL, namespace)
