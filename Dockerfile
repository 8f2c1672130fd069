# The platform's images, from one wheel: `operator` (the default, last stage) and
# `pipeline` (the runner the products' CronJobs start).
#
# BASE is the official Python image for real users. `make images` passes a base made from
# Debian's packages instead (hack/images.sh), because no image registry is reachable there.
ARG BASE=python:3.11.14-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir build==1.3.0 \
 && python -m build --wheel --outdir /dist

FROM ${BASE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /dist/*.whl /tmp/

FROM runtime AS pipeline
LABEL org.opencontainers.image.title="datamesh-pipeline" \
      org.opencontainers.image.description="Runs a data product's pipeline against its contract"
# The pipeline's dependency group only; the wheel pins every dependency itself.
# hadolint ignore=DL3013
RUN wheel="$(find /tmp -maxdepth 1 -name 'datamesh-*.whl')" \
 && pip install --no-cache-dir "${wheel}[pipeline]" \
 && rm -f /tmp/*.whl
# The restricted Pod Security Standard: a numeric non-root user.
USER 65532:65532
ENTRYPOINT ["datamesh-pipeline"]

FROM runtime AS operator
LABEL org.opencontainers.image.title="datamesh-operator" \
      org.opencontainers.image.description="Reconciles DataProducts against GovernancePolicies"
# The operator's dependency group: kopf, the Kubernetes client, Prometheus.
# hadolint ignore=DL3013
RUN wheel="$(find /tmp -maxdepth 1 -name 'datamesh-*.whl')" \
 && pip install --no-cache-dir "${wheel}[operator]" \
 && rm -f /tmp/*.whl
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["datamesh-operator"]
