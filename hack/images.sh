#!/usr/bin/env bash
# Builds every image the local platform runs, from the project's own Dockerfile, with
# buildah (no Docker engine, no image registry): the base (Debian packages, made with
# mmdebstrap), the pod sandbox, the operator and the pipeline runner. Each image is also
# written as an OCI archive that the node's container runtime imports.
#
# Usage: hack/images.sh              (prints the archive folder on the last line)
# Env:   DATAMESH_CACHE  cache folder (default: <repo>/.cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib.sh
source "$ROOT/hack/lib.sh"

for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed; it builds the local images." \
    "Install it with: apt-get install buildah mmdebstrap"
done
[[ $(id -u) == 0 ]] || die "building images here needs root (buildah's chroot isolation)."

NODE_BIN="$(bash "$ROOT/hack/build-node.sh" | tail -n1)"
VERSION="$(grep -m1 -oE '^version = "[^"]+"' "$ROOT/pyproject.toml" | cut -d'"' -f2)"
IMAGES="$CACHE_DIR/images"
ARCHIVES="$IMAGES/archives"
mkdir -p "$ARCHIVES"
# overlay: a layer is a diff, not a copy of the whole tree (vfs took 5 minutes where
# overlay takes one). buildah unmounts what it mounted; the trap makes sure of it.
B=(buildah --root "$IMAGES/overlay-storage" --runroot "$IMAGES/run" --storage-driver overlay)
unmount_all() {
  "${B[@]}" rm --all >/dev/null 2>&1 || true
  "${B[@]}" unmount --all >/dev/null 2>&1 || true
  local m
  for m in $(awk -v p="$IMAGES/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}
trap unmount_all EXIT

# The base: Debian bookworm's python3 (the same 3.11 as the official slim image) from
# this machine's own apt sources. It trusts what this machine trusts (its CA bundle),
# so that pip inside a build reaches the package index through the same network path.
BASE_PACKAGES="python3,python3-pip,ca-certificates"
BASE_TAG="bookworm-$(printf '%s' "$BASE_PACKAGES" | sha256sum | cut -c1-12)"
BASE="localhost/datamesh/base:$BASE_TAG"
if "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  log "base image: cached ($BASE)"
else
  log "base image: mmdebstrap $BASE_PACKAGES (about a minute)"
  start=$SECONDS
  sources=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -s $f ]] && sources+=("$f")
  done
  ((${#sources[@]})) || die "no apt sources found in /etc/apt; mmdebstrap needs a Debian mirror."
  rootfs="$IMAGES/base-rootfs.tar"
  mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "${sources[@]}" \
    || die "mmdebstrap failed (see above)." "It needs this machine's Debian apt sources to be reachable."
  c="$("${B[@]}" from scratch)"
  "${B[@]}" add "$c" "$rootfs" / >/dev/null
  "${B[@]}" copy "$c" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt >/dev/null
  # An image is its own environment: pip may install into the system Python there.
  "${B[@]}" run --isolation chroot "$c" -- sh -c \
    'rm -f /usr/lib/python3*/EXTERNALLY-MANAGED && ln -sf python3 /usr/bin/python && rm -rf /var/lib/apt/lists/*'
  "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd python3 "$c"
  "${B[@]}" commit --quiet "$c" "$BASE" >/dev/null
  "${B[@]}" rm "$c" >/dev/null
  rm -f "$rootfs"
  log "base image: built in $((SECONDS - start)) s"
fi

export_archive() {
  # export_archive <image> <file>: an OCI archive, rewritten only when the image changed.
  local image="$1" file="$ARCHIVES/$2.tar" id
  id="$("${B[@]}" inspect --type image --format '{{.FromImageID}}' "$image")"
  if [[ -f "$file" && "$(cat "$file.id" 2>/dev/null)" == "$id" ]]; then return; fi
  rm -f "$file"
  "${B[@]}" push --quiet "$image" "oci-archive:$file:$image" >/dev/null
  echo "$id" >"$file.id"
  log "$image: written to $file"
}

# The pod sandbox: one static program in an empty image.
PAUSE="localhost/datamesh/pause:$VERSION"
c="$("${B[@]}" from scratch)"
"${B[@]}" copy "$c" "$NODE_BIN/pause" /pause >/dev/null
"${B[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
# A fixed creation time: the same program gives the same image id, so the node keeps
# its image store.
"${B[@]}" commit --quiet --timestamp 0 "$c" "$PAUSE" >/dev/null
"${B[@]}" rm "$c" >/dev/null
export_archive "$PAUSE" pause

# What the Dockerfile copies, hashed: an unchanged source is not rebuilt (buildah's layer
# cache alone does not survive the prune below).
source_hash="$(
  cd "$ROOT" && {
    printf '%s\n' "$BASE"
    find Dockerfile .dockerignore pyproject.toml README.md operator -type f \
      -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info*' -print0 |
      sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)"

for target in pipeline operator; do
  image="localhost/datamesh/$target:$VERSION"
  if [[ -f "$ARCHIVES/$target.tar" && "$(cat "$ARCHIVES/$target.tar.source" 2>/dev/null)" == "$source_hash" ]] &&
    "${B[@]}" inspect --type image "$image" >/dev/null 2>&1; then
    log "$image: cached (source $source_hash)"
    continue
  fi
  log "$image: building (Dockerfile target $target)"
  start=$SECONDS
  "${B[@]}" bud --quiet --layers --isolation chroot --network host \
    --build-arg "BASE=$BASE" --target "$target" -t "$image" "$ROOT" >/dev/null \
    || die "building $image failed (see the build output above)."
  log "$image: built in $((SECONDS - start)) s"
  export_archive "$image" "$target"
  echo "$source_hash" >"$ARCHIVES/$target.tar.source"
done
# Intermediate containers and dangling layers of earlier builds.
"${B[@]}" rm --all >/dev/null 2>&1 || true
"${B[@]}" rmi --prune >/dev/null 2>&1 || true
echo "$ARCHIVES"
