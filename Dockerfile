# The operator image: a wheel built in one stage, installed into a slim runtime.
# Untested here (these machines have no Docker engine); `make image` builds it where one
# exists, and the test suite lints this file with hadolint.
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir build==1.3.0 \
 && python -m build --wheel --outdir /dist

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="datamesh-operator" \
      org.opencontainers.image.description="Reconciles DataProducts against GovernancePolicies"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /dist/*.whl /tmp/
# The operator's dependency group: kopf, the Kubernetes client, Prometheus. The wheel
# is the one built above and pins every dependency itself.
# hadolint ignore=DL3013
RUN wheel="$(find /tmp -maxdepth 1 -name 'datamesh-*.whl')" \
 && pip install --no-cache-dir "${wheel}[operator]" \
 && rm -f /tmp/*.whl
# The restricted Pod Security Standard: a numeric non-root user.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["datamesh-operator"]
