#!/usr/bin/env bash
# Builds the part of ArgoCD the local platform runs (repo server, application controller,
# ApplicationSet controller: one binary, named by symlinks) into the tool cache, and copies
# what ArgoCD needs beside it from the same module: its CRDs, its base ConfigMaps and
# Secret, and the git signature wrapper scripts the repo server calls. Cached: a second
# run only prints the folder.
#
# Usage: hack/build-argocd.sh          (prints the ArgoCD folder on the last line)
# Env:   DATAMESH_CACHE  cache folder (default: <repo>/.cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

command -v go >/dev/null 2>&1 || die "the Go toolchain is not on PATH; it is needed to build ArgoCD." \
  "Install Go ${GO_MIN} or newer (it fetches ${ARGOCD_GOTOOLCHAIN} itself) and run again."

components=(argocd-repo-server argocd-application-controller argocd-applicationset-controller)
done_marker="$ARGOCD_DIR/.complete"
if [[ -f "$done_marker" ]]; then
  log "ArgoCD ${ARGOCD_VERSION}: cached"
  echo "$ARGOCD_DIR"
  exit 0
fi

export GOTOOLCHAIN="$ARGOCD_GOTOOLCHAIN"
export GOFLAGS="${GOFLAGS:--buildvcs=false} -trimpath"
export CGO_ENABLED=0
start=$SECONDS
mkdir -p "${ARGOCD_DIR%/*}"
staging="$(mktemp -d "${ARGOCD_DIR%/*}/.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/bin" "$staging/crds" "$staging/config"

log "ArgoCD ${ARGOCD_VERSION}: building with ${ARGOCD_GOTOOLCHAIN} (a cold build takes about 8 minutes and 2.5 GB on 2 cores)"
(cd "$ROOT/hack/argocd" && go build -ldflags="-s -w -X github.com/argoproj/argo-cd/v3/common.version=${ARGOCD_VERSION#v}" \
  -o "$staging/bin/argocd" .) ||
  die "building ArgoCD failed (see the Go errors above)." \
      "Check that the Go module proxy is reachable: the ${ARGOCD_GOTOOLCHAIN} toolchain and ArgoCD's modules are fetched from it."
for component in "${components[@]}"; do ln -s argocd "$staging/bin/$component"; done
log "ArgoCD ${ARGOCD_VERSION}: built in $((SECONDS - start)) s"

module="$(cd "$ROOT/hack/argocd" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)"
cp "$module"/manifests/crds/application-crd.yaml "$module"/manifests/crds/applicationset-crd.yaml \
  "$module"/manifests/crds/appproject-crd.yaml "$staging/crds/"
for config in argocd-cm argocd-cmd-params-cm argocd-gpg-keys-cm argocd-rbac-cm argocd-secret \
    argocd-ssh-known-hosts-cm argocd-tls-certs-cm; do
  cp "$module/manifests/base/config/$config.yaml" "$staging/config/"
done
install -m 0755 "$module/hack/git-verify-wrapper.sh" "$module/hack/gpg-wrapper.sh" "$staging/bin/"
chmod -R u+w "$staging"

rm -rf "$ARGOCD_DIR"
mv "$staging" "$ARGOCD_DIR"
trap - EXIT
touch "$done_marker"
log "ArgoCD ${ARGOCD_VERSION} ready in $ARGOCD_DIR"
echo "$ARGOCD_DIR"
