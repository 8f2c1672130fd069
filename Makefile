# The entry point for every task: `make help` lists them.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
CACHE ?= $(or $(DATAMESH_CACHE),$(CURDIR)/.cache)
export DATAMESH_CACHE := $(CACHE)
PY := $(VENV)/bin/python
KUBECTL = $(shell bash hack/build-control-plane.sh 2>/dev/null | tail -1)/kubectl
CLUSTER ?= local
CLUSTER_DIR ?= $(CACHE)/cluster
# The local cluster's node: auto (where the machine allows it, else say why and stay
# nodeless), 1 (required) or 0 (control plane only).
NODE ?= auto
# The kind alternative, for machines with a Docker engine (not this one).
KIND_CLUSTER ?= datamesh
KIND_KUBECONFIG ?= $(CACHE)/kind/kubeconfig

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

.PHONY: demo
demo: venv images cluster-up ## Start the local control plane and run the data mesh on it.
	@PYTHONPATH=hack $(PY) hack/demo.py --kubeconfig $(CLUSTER_DIR)/kubeconfig

.PHONY: argocd-demo
argocd-demo: venv images argocd cluster-up ## The data mesh synced from a local git repository by a real ArgoCD.
	@PYTHONPATH=hack $(PY) hack/argocd_demo.py --dir $(CLUSTER_DIR)

##@ Operator

# The cluster `run` and `install` talk to: $KUBECONFIG when set, else the local one.
RUN_KUBECONFIG ?= $(or $(KUBECONFIG),$(CLUSTER_DIR)/kubeconfig)

.PHONY: install
install: venv tools ## Install the CRDs into the cluster of RUN_KUBECONFIG.
	$(KUBECTL) --kubeconfig $(RUN_KUBECONFIG) apply --server-side -f crds/

.PHONY: run
run: venv ## Run the operator in the foreground against RUN_KUBECONFIG.
	KUBECONFIG=$(RUN_KUBECONFIG) $(VENV)/bin/datamesh-operator

##@ Development

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv with pinned dependencies.

.PHONY: crds
crds: venv ## Generate crds/ from the pydantic models (the only source of truth).
	$(PY) hack/generate_crds.py

.PHONY: lint
lint: venv ## Run ruff and mypy.
	$(VENV)/bin/ruff check operator tests bench hack
	$(VENV)/bin/ruff format --check operator tests bench hack
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: venv ## Format the code with ruff.
	$(VENV)/bin/ruff format operator tests bench hack
	$(VENV)/bin/ruff check --fix operator tests bench hack

##@ Testing

.PHONY: test
test: venv tools images argocd datacontract-cli ## Run every test tier: unit, integration, e2e.
	$(PY) -m pytest tests

.PHONY: test-unit
test-unit: venv tools datacontract-cli ## Unit tests only (no cluster; helm renders the chart).
	$(PY) -m pytest tests/unit

.PHONY: test-integration
test-integration: venv tools datacontract-cli ## Integration tests against the local control plane (and the warehouse).
	$(PY) -m pytest tests/integration

.PHONY: test-e2e
test-e2e: venv tools images argocd ## End-to-end tests: the node, ArgoCD, the catalog in Chromium, operator faults.
	$(PY) -m pytest tests/e2e

.PHONY: test-argocd
test-argocd: venv tools images argocd ## The GitOps loop: a real ArgoCD syncing a local git repository.
	$(PY) -m pytest tests/e2e/test_argocd.py

.PHONY: datacontract-cli
datacontract-cli: ## Install the pinned datacontract-cli (the ODCS client the export is tested with) into the cache.
	@bash hack/install-datacontract-cli.sh >/dev/null

MESHCTL_VENV ?= $(CACHE)/meshctl-venv

.PHONY: test-meshctl-install
test-meshctl-install: ## Install datamesh[meshctl] alone in a clean virtualenv and validate this repo.
	rm -rf $(MESHCTL_VENV) build
	$(PYTHON) -m venv $(MESHCTL_VENV)
	$(MESHCTL_VENV)/bin/pip install --quiet '.[meshctl]'
	rm -rf build
	@$(MESHCTL_VENV)/bin/python -c 'import importlib.util as u, sys; \
	  present = [m for m in ("kopf", "kubernetes", "prometheus_client") if u.find_spec(m)]; \
	  sys.exit(f"datamesh[meshctl] installed {present}" if present else 0)'
	$(MESHCTL_VENV)/bin/meshctl validate
	rm -rf $(MESHCTL_VENV)

.PHONY: bench
bench: venv ## Run the benchmarks under bench/ (never part of `make test`).
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b; done

##@ Release

IMAGE ?= images.example.com/datamesh/operator:0.1.0

.PHONY: image
image: ## Build the operator image (needs a Docker engine).
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || \
	  { echo "make image needs a running Docker engine; none is available here" >&2; exit 1; }
	docker build -t $(IMAGE) .

##@ Local control plane

.PHONY: tools
tools: ## Build the control plane and the node's binaries into the cache.
	@bash hack/build-control-plane.sh >/dev/null
	@bash hack/build-node.sh >/dev/null

.PHONY: argocd
argocd: ## Build ArgoCD's repo server and controllers into the cache (Redis comes from Debian).
	@bash hack/build-argocd.sh >/dev/null

.PHONY: images
images: ## Build the sandbox, operator and pipeline images with buildah (root; no registry needed).
	@bash hack/images.sh >/dev/null

.PHONY: cluster-up
cluster-up: venv ## Start the control plane and a node (NODE=auto|1|0; CLUSTER=kind where Docker works).
ifeq ($(CLUSTER),kind)
	@mkdir -p $(dir $(KIND_KUBECONFIG))
	kind create cluster --name $(KIND_CLUSTER) --kubeconfig $(KIND_KUBECONFIG)
	@echo "export KUBECONFIG=$(KIND_KUBECONFIG)"
else
	@PYTHONPATH=hack $(PY) -m localcluster up --dir $(CLUSTER_DIR) --node $(NODE)
endif

.PHONY: cluster-down
cluster-down: ## Stop the control plane (safe to run twice).
ifeq ($(CLUSTER),kind)
	kind delete cluster --name $(KIND_CLUSTER)
else
	@PYTHONPATH=hack $(PYTHON) -m localcluster down --dir $(CLUSTER_DIR)
endif

.PHONY: cluster-status
cluster-status: ## Show whether each control plane component is running and healthy.
ifeq ($(CLUSTER),kind)
	kubectl --kubeconfig $(KIND_KUBECONFIG) get --raw /readyz
else
	@PYTHONPATH=hack $(PYTHON) -m localcluster status --dir $(CLUSTER_DIR)
endif

##@ Cleanup

.PHONY: clean
clean: cluster-down ## Stop the cluster and remove the virtualenv and Python caches (keeps built binaries).
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache operator/*.egg-info

.PHONY: distclean
distclean: clean ## Also remove the tool cache with the built binaries.
	rm -rf $(CACHE)
