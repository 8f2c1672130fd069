#!/usr/bin/env bash
# Builds the node's binaries into the tool cache, reusing those already there: kubelet,
# kube-scheduler and kube-proxy (the Kubernetes wrapper module, same version as the
# control plane), containerd with its runc shim and ctr, local-path-provisioner, and the
# pod sandbox program. runc and the CNI plugins come from Debian's packages.
#
# Usage: hack/build-node.sh            (prints the bin folder on the last line)
# Env:   DATAMESH_CACHE  cache folder (default: <repo>/.cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

command -v go >/dev/null 2>&1 || die "the Go toolchain is not on PATH; it is needed to build the node." \
  "Install Go ${GO_MIN} or newer and run again."

mkdir -p "$NODE_BIN_DIR"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0


fail() {
  die "building $1 failed (see the Go errors above)." \
      "Check that the Go module proxy is reachable and that 'go env GOPROXY' is set."
}

build() {
  # build <label> <module dir> <package> <binary> [extra ldflags]
  local label="$1" dir="$2" pkg="$3" out="$NODE_BIN_DIR/$4" extra="${5:-}"
  if [[ -x "$out" ]]; then log "$label: cached"; return; fi
  log "$label: building $pkg"
  local start=$SECONDS tmp="$out.tmp.$$"
  (cd "$dir" && go build -ldflags="-s -w$extra" -o "$tmp" "$pkg") || { rm -f "$tmp"; fail "$label"; }
  mv "$tmp" "$out"
  log "$label: built in $((SECONDS - start)) s"
}

install_pinned() {
  # install_pinned <label> <package@version> <binary>...: go install into a scratch GOBIN,
  # then move the named binaries into the cache (all or nothing).
  local label="$1" pkgs="$2"; shift 2
  local missing=0 bin
  for bin in "$@"; do [[ -x "$NODE_BIN_DIR/$bin" ]] || missing=1; done
  if ((missing == 0)); then log "$label: cached"; return; fi
  log "$label: building (a cold build takes about 2 minutes on 2 cores)"
  local start=$SECONDS scratch
  scratch="$(mktemp -d "$NODE_BIN_DIR/.gobin.XXXXXX")"
  # shellcheck disable=SC2086
  (cd "$scratch" && GOBIN="$scratch" go install -ldflags="-s -w" $pkgs) || { rm -rf "$scratch"; fail "$label"; }
  for bin in "$@"; do mv "$scratch/$bin" "$NODE_BIN_DIR/$bin"; done
  rm -rf "$scratch"
  log "$label: built in $((SECONDS - start)) s"
}

total=$SECONDS
build "kubelet v${KUBE_VERSION}" "$ROOT/hack/kube" k8s.io/kubernetes/cmd/kubelet kubelet "$KUBE_LDFLAGS"
build "kube-scheduler v${KUBE_VERSION}" "$ROOT/hack/kube" k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler "$KUBE_LDFLAGS"
build "kube-proxy v${KUBE_VERSION}" "$ROOT/hack/kube" k8s.io/kubernetes/cmd/kube-proxy kube-proxy "$KUBE_LDFLAGS"
build "pod sandbox (pause)" "$ROOT/hack/pause" . pause
cd_mod=github.com/containerd/containerd/v2/cmd
install_pinned "containerd ${CONTAINERD_VERSION}" \
  "$cd_mod/containerd@$CONTAINERD_VERSION $cd_mod/containerd-shim-runc-v2@$CONTAINERD_VERSION $cd_mod/ctr@$CONTAINERD_VERSION" \
  containerd containerd-shim-runc-v2 ctr
install_pinned "local-path-provisioner ${LOCAL_PATH_PROVISIONER_VERSION}" \
  "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION" local-path-provisioner
log "node binaries ready in $NODE_BIN_DIR ($((SECONDS - total)) s)"
echo "$NODE_BIN_DIR"
