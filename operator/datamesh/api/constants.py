"""Names the API, the operator and the CLI must agree on: one home for each."""

from __future__ import annotations

GROUP = "datamesh.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A namespace is a domain's when it carries this label, naming the domain (see
# ``namespace_domain``); products live only in such namespaces.
DOMAIN_LABEL = f"{GROUP}/domain"
# The label the operator puts on every object it creates, and the Events' source.
MANAGED_BY = "datamesh-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
# Members of a domain, as reader RoleBindings name them (mapped by your identity provider
# or authenticating proxy); the access-along-lineage rule accepts it too.
DOMAIN_GROUP = "datamesh:domain:{domain}"
# The service account a product's pipeline runs as, in the product's namespace.
PIPELINE_ACCOUNT = "{product}-pipeline"
# Where global policies live unless the operator is told otherwise.
DEFAULT_PLATFORM_NAMESPACE = "datamesh-system"


# The platform's generic pipeline runner (the Dockerfile's `pipeline` target, built by
# `make images`): what `meshctl new` scaffolds and the live products run.
PIPELINE_IMAGE = "localhost/datamesh/pipeline:0.1.0"


def namespace_domain(labels: dict[str, str] | None) -> str | None:
    """The domain a namespace is declared for by its ``datamesh.io/domain`` label, or None
    when it is no domain's namespace. The operator's index, the engine's domain-isolation
    rule, the generated admission policy and ``meshctl`` all use this one rule."""
    return (labels or {}).get(DOMAIN_LABEL) or None
