#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and helm from their Go
# modules into the tool cache, reusing binaries that are already there.
#
# Usage: hack/build-control-plane.sh            (prints the bin folder on the last line)
# Env:   DATAMESH_CACHE  cache folder (default: <repo>/.cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

if ! command -v go >/dev/null 2>&1; then
  die "the Go toolchain is not on PATH; it is needed to build the control plane." \
      "Install Go ${GO_MIN} or newer (e.g. 'apt-get install golang' or from your distribution) and run again."
fi
go_version="$(go env GOVERSION | sed 's/^go//')"
if ! printf '%s\n%s\n' "$GO_MIN" "$go_version" | sort -V -C; then
  die "Go $go_version is too old; the Kubernetes $KUBE_VERSION modules need Go $GO_MIN or newer."
fi

mkdir -p "$BIN_DIR"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0

build() {
  # build <label> <module dir> <package> <binary> [extra ldflags]
  local label="$1" dir="$2" pkg="$3" out="$BIN_DIR/$4" extra="${5:-}"
  if [[ -x "$out" ]]; then
    log "$label: cached at $out"
    return
  fi
  log "$label: building $pkg (a cold build takes several minutes on 2 cores)"
  local start=$SECONDS tmp="$out.tmp.$$"
  if ! (cd "$dir" && go build -ldflags="-s -w$extra" -o "$tmp" "$pkg"); then
    rm -f "$tmp"
    die "building $label failed (see the Go errors above)." \
        "Check that the Go module proxy is reachable and that 'go env GOPROXY' is set."
  fi
  mv "$tmp" "$out"
  log "$label: built in $((SECONDS - start)) s"
}

total=$SECONDS
build "etcd ${ETCD_VERSION}" "$ROOT/hack/etcd" . etcd
build "kube-apiserver v${KUBE_VERSION}" "$ROOT/hack/kube" k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$KUBE_LDFLAGS"
build "kube-controller-manager v${KUBE_VERSION}" "$ROOT/hack/kube" k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "$KUBE_LDFLAGS"
build "kubectl v${KUBE_VERSION}" "$ROOT/hack/kube" k8s.io/kubernetes/cmd/kubectl kubectl "$KUBE_LDFLAGS"
build "helm ${HELM_VERSION}" "$ROOT/hack/helm" helm.sh/helm/v3/cmd/helm helm
log "control plane binaries ready in $BIN_DIR ($((SECONDS - total)) s)"
echo "$BIN_DIR"
