# Shared settings for the hack/ scripts. Sourced, never run.
# shellcheck shell=bash

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
CACHE_DIR="${DATAMESH_CACHE:-$ROOT/.cache}"

# The versions come from the wrapper modules, so there is one place to bump them.
KUBE_VERSION="$(grep -oE '^\s*(require )?k8s.io/kubernetes v[0-9.]+' "$ROOT/hack/kube/go.mod" | grep -oE '[0-9]+\.[0-9]+\.[0-9]+')"
ETCD_VERSION="$(grep -oE '^\s*(require )?go.etcd.io/etcd/server/v3 v[0-9.]+' "$ROOT/hack/etcd/go.mod" | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+')"
GO_MIN="1.26"

# Binaries built from modules report version v0.0.0 unless told their version; helm's
# kubeVersion checks, `kubectl version` and the node's reported version need the real one.
KUBE_MINOR="$(cut -d. -f2 <<<"$KUBE_VERSION")"
KUBE_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  KUBE_LDFLAGS+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=1"
  KUBE_LDFLAGS+=" -X $pkg.gitMinor=$KUBE_MINOR -X $pkg.gitTreeState=clean"
done

# Bump when the way binaries are built changes, so that caches are rebuilt.
BUILD_REVISION=2
BIN_DIR="$CACHE_DIR/k8s/v${KUBE_VERSION}-etcd${ETCD_VERSION}-r${BUILD_REVISION}/bin"

log() { printf '[hack] %s\n' "$*" >&2; }

die() {
  printf '[hack] error: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '[hack]        %s\n' "$line" >&2; done
  exit 1
}

# The node: a container runtime and a dynamic volume provisioner, built from their Go
# modules (go install of a pinned version checks the module's own go.sum); kubelet,
# kube-scheduler and kube-proxy come from the Kubernetes wrapper module above.
CONTAINERD_VERSION="v2.4.2"
LOCAL_PATH_PROVISIONER_VERSION="v0.0.30"
NODE_BUILD_REVISION=1
NODE_BIN_DIR="$CACHE_DIR/node/k8s-v${KUBE_VERSION}-containerd${CONTAINERD_VERSION}-lpp${LOCAL_PATH_PROVISIONER_VERSION}-r${NODE_BUILD_REVISION}/bin"

HELM_VERSION="$(grep -oE '^\s*(require )?helm.sh/helm/v3 v[0-9.]+' "$ROOT/hack/helm/go.mod" | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+')"

# ArgoCD: its repo server and controllers from the wrapper module hack/argocd (main.go
# there says which parts). Its go.mod asks for a newer Go than the rest of the platform.
ARGOCD_VERSION="$(grep -oE '^\s*(require )?github.com/argoproj/argo-cd/v3 v[0-9.]+' "$ROOT/hack/argocd/go.mod" | grep -oE 'v[0-9]+\.[0-9]+\.[0-9]+')"
ARGOCD_GOTOOLCHAIN="go1.27.3"
# The cached build is keyed by what it is built from: our main.go and the module files.
ARGOCD_SOURCE_HASH="$(cat "$ROOT"/hack/argocd/main.go "$ROOT"/hack/argocd/go.mod "$ROOT"/hack/argocd/go.sum | sha256sum | cut -c1-12)"
ARGOCD_DIR="$CACHE_DIR/argocd/${ARGOCD_VERSION}-${ARGOCD_SOURCE_HASH}"
