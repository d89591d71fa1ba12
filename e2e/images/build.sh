#!/usr/bin/env bash
# Courier's images for the local node, built daemonlessly with buildah from the
# repository's Dockerfiles (the same runtime stages users build; see docs/images.md).
#
#   build.sh base      the runtime base image (glibc, libgcc, CA certificates, user
#                      65532) from Debian bookworm's packages, cached as an OCI archive
#                      under $COURIER_CACHE/base-cc-debian12-<key>/
#   build.sh build     base + `cargo build` of the binaries + one image per target, each
#                      cached as $COURIER_CACHE/images/<name>-<content key>.oci.tar
#
# COURIER_IMAGES_USE_BUILT=1 takes the binaries already in the target directory (make test
# builds the whole workspace first; a second build of three binaries alone would unify other
# features and compile much of the workspace again).
# COURIER_IMAGE_PROFILE picks the binaries: `dev` (default; the debug build the tests
# compile anyway, so images cost no second build of the workspace) or `release` (what a
# user's `docker build` produces, for benchmarks and releases).
#   build.sh import    imports the current archives into the node's containerd (k8s.io)
#   build.sh list      NAME IMAGE ARCHIVE SIZE of each image built for this checkout
#
# The Rust build stage of the Dockerfile is replaced by binaries built on this
# host (BINARIES=prebuilt): no registry is reachable here to pull a Rust image.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"
COURIER_STATE="${COURIER_STATE:-/tmp/courier-e2e}"
IMAGES_CACHE="$COURIER_CACHE/images"
# Version of the images' recipe: the base's package set and layout. Bump when
# base_rootfs changes.
BASE_RECIPE=1
BASE_PACKAGES=(libc6 libgcc-s1 ca-certificates)
TAG=dev
PROFILE="${COURIER_IMAGE_PROFILE:-dev}"
case "$PROFILE" in
  dev) PROFILE_DIR=debug; PROFILE_ARGS=() ;;
  release) PROFILE_DIR=release; PROFILE_ARGS=(--release) ;;
  *) printf '[images] error: COURIER_IMAGE_PROFILE must be dev or release, not %s\n' "$PROFILE" >&2; exit 2 ;;
esac
# Where cargo puts the binaries (CARGO_TARGET_DIR is honoured, as cargo does).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# What `build` built for this checkout: NAME IMAGE ARCHIVE per line. `list` and `import` read
# it rather than recomputing the archives' keys from the binaries, which a later `cargo build
# --workspace` relinks (other features unified) after the images were made.
MANIFEST="$TARGET_DIR/courier-images-$PROFILE.list"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"

# name|Dockerfile|target|binaries (cargo package:bin ...)
IMAGES=(
  "operator|Dockerfile|operator|courier-operator:courier-operator"
  "worker|Dockerfile|worker|courier-worker:courier-worker"
  "partner-sim|e2e/Dockerfile|partner-sim|courier-e2e:partner-sim"
)

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

buildah_() {
  buildah --root "$COURIER_CACHE/buildah/storage" --runroot "$COURIER_STATE/buildah/run" \
    --storage-driver vfs "$@"
}

ensure_tools() {
  command -v buildah >/dev/null && return 0
  log "installing buildah with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
}

# --- the base image ------------------------------------------------------------

# The key of the base: the recipe version and the exact package versions apt
# would download now.
base_key() {
  local versions
  versions="$(apt-cache policy "${BASE_PACKAGES[@]}" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p $2}')"
  if [[ -z "$versions" || "$versions" == *"(none)"* ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    versions="$(apt-cache policy "${BASE_PACKAGES[@]}" | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p $2}')"
  fi
  printf '%s\n%s\n' "$BASE_RECIPE" "$versions" | sha256sum | cut -c1-12
}

# base_rootfs DIR: Debian's libc6, libgcc-s1 and ca-certificates unpacked
# (no maintainer scripts), without documentation, locales and charset
# converters, plus the files a distroless-style base carries.
base_rootfs() {
  local dir="$1" debs
  debs="$(mktemp -d)"
  (cd "$debs" && apt-get download "${BASE_PACKAGES[@]}" >/dev/null 2>&1) \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; (cd "$debs" && apt-get download "${BASE_PACKAGES[@]}" >/dev/null); }
  local deb
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir"; done
  printf '%s\n' "$debs"/*.deb | xargs -n1 basename >"$dir/.packages"
  rm -rf "$debs"
  # Keep each package's copyright file; drop the rest of the docs.
  find "$dir/usr/share/doc" -type f ! -name copyright -delete
  find "$dir/usr/share/doc" -type d -empty -delete
  rm -rf "$dir/usr/share/lintian" "$dir/usr/share/locale" "$dir/usr/lib/x86_64-linux-gnu/gconv" \
    "$dir/usr/sbin"
  mkdir -p "$dir/etc/ssl/certs" "$dir/tmp" "$dir/home/nonroot" "$dir/root"
  cat "$dir"/usr/share/ca-certificates/mozilla/*.crt >"$dir/etc/ssl/certs/ca-certificates.crt"
  chmod 1777 "$dir/tmp"
  chmod 700 "$dir/root"
  chown 65532:65532 "$dir/home/nonroot"
  cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$dir/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dir/etc/nsswitch.conf"
  mv "$dir/.packages" "$dir/usr/share/doc/packages.txt"
}

BASE_IMAGE=""
BASE_ARCHIVE=""

ensure_base() {
  local key
  key="$(base_key)"
  BASE_IMAGE="courier.local/cc-debian12:$key"
  BASE_ARCHIVE="$COURIER_CACHE/base-cc-debian12-$key/base.oci.tar"
  if [[ ! -f "$BASE_ARCHIVE" ]]; then
    log "making the base image $BASE_IMAGE from Debian packages (${BASE_PACKAGES[*]})"
    local rootfs ctr
    rootfs="$(mktemp -d)"
    base_rootfs "$rootfs"
    mkdir -p "$(dirname "$BASE_ARCHIVE")"
    tar -C "$rootfs" --numeric-owner -cf "$(dirname "$BASE_ARCHIVE")/rootfs.tar" .
    rm -rf "$rootfs"
    ctr="$(buildah_ from scratch)"
    buildah_ add "$ctr" "$(dirname "$BASE_ARCHIVE")/rootfs.tar" / >/dev/null
    buildah_ config --user 65532:65532 --workingdir /home/nonroot \
      --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
      --env PATH=/usr/local/bin:/usr/bin:/bin \
      --label org.opencontainers.image.description="glibc, libgcc and CA certificates from Debian bookworm; user 65532" \
      "$ctr"
    buildah_ commit -q --format oci --rm "$ctr" "$BASE_IMAGE" >/dev/null
    rm -f "$(dirname "$BASE_ARCHIVE")/rootfs.tar"
    buildah_ push -q "$BASE_IMAGE" "oci-archive:$BASE_ARCHIVE.tmp:$BASE_IMAGE"
    mv "$BASE_ARCHIVE.tmp" "$BASE_ARCHIVE"
  elif ! buildah_ inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    log "loading the base image $BASE_IMAGE from $BASE_ARCHIVE"
    buildah_ pull -q "oci-archive:$BASE_ARCHIVE" >/dev/null
    buildah_ tag "$(buildah_ images -q --filter reference="$BASE_IMAGE" | head -n1)" "$BASE_IMAGE" 2>/dev/null || true
  fi
  buildah_ inspect --type image "$BASE_IMAGE" >/dev/null 2>&1 || die "base image $BASE_IMAGE is not in buildah's storage"
}

# --- Courier's images ------------------------------------------------------------

# cargo_build: one build (of $PROFILE) of every binary an image needs.
cargo_build() {
  local args=() spec pair bins
  for spec in "${IMAGES[@]}"; do
    IFS='|' read -r _ _ _ bins <<<"$spec"
    for pair in $bins; do
      [[ " ${args[*]} " == *" -p ${pair%%:*} "* ]] || args+=(-p "${pair%%:*}")
      args+=(--bin "${pair##*:}")
    done
  done
  if [[ "${COURIER_IMAGES_USE_BUILT:-0}" == 1 ]]; then
    # The caller built the workspace already (make test): its binaries go in as they are.
    for spec in "${IMAGES[@]}"; do
      IFS='|' read -r _ _ _ bins <<<"$spec"
      for pair in $bins; do
        [[ -x "$TARGET_DIR/$PROFILE_DIR/${pair##*:}" ]] || die "COURIER_IMAGES_USE_BUILT=1 but $TARGET_DIR/$PROFILE_DIR/${pair##*:} is not built"
      done
    done
    log "binaries as built in $TARGET_DIR/$PROFILE_DIR (COURIER_IMAGES_USE_BUILT=1)"
    return 0
  fi
  log "cargo build ${PROFILE_ARGS[*]} (${#IMAGES[@]} images, profile $PROFILE)"
  (cd "$ROOT" && cargo build "${PROFILE_ARGS[@]}" --locked "${args[@]}")
}

image_ref() { printf 'courier/%s:%s' "$1" "$TAG"; }

# content_key NAME: what the image is made of (binaries, Dockerfile, base).
content_key() {
  local spec="$1" name file target bins pair
  IFS='|' read -r name file target bins <<<"$spec"
  {
    printf '%s %s %s %s %s\n' "$name" "$target" "$BASE_IMAGE" "$VERSION" "$PROFILE"
    sha256sum "$ROOT/$file"
    for pair in $bins; do sha256sum "$TARGET_DIR/$PROFILE_DIR/${pair##*:}"; done
  } | sha256sum | cut -c1-16
}

archive_of() {
  local spec="$1" name
  IFS='|' read -r name _ <<<"$spec"
  printf '%s/%s-%s.oci.tar' "$IMAGES_CACHE" "$name" "$(content_key "$spec")"
}

build_image() {
  local spec="$1" name file target bins pair
  IFS='|' read -r name file target bins <<<"$spec"
  local archive ref
  archive="$(archive_of "$spec")"
  ref="$(image_ref "$name")"
  if [[ -f "$archive" ]]; then
    log "$ref: up to date ($archive)"
    return 0
  fi
  local context
  context="$(mktemp -d)"
  mkdir -p "$context/prebuilt"
  # As the Dockerfile's build stage does: symbols kept, line tables dropped.
  for pair in $bins; do strip --strip-debug -o "$context/prebuilt/${pair##*:}" "$TARGET_DIR/$PROFILE_DIR/${pair##*:}"; done
  log "$ref: buildah bud --target $target -f $file (BINARIES=prebuilt, BASE_IMAGE=$BASE_IMAGE)"
  local start=$SECONDS before
  before="$(buildah_ containers -q)"
  buildah_ bud -q --pull-never --layers=false --format oci --target "$target" \
    --build-arg BINARIES=prebuilt --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
    -f "$ROOT/$file" -t "$ref" "$context" >/dev/null
  rm -rf "$context"
  # buildah 1.28 leaves the working container of an instruction-less stage (`FROM ${BINARIES}
  # AS binaries`) behind: remove the ones this build made.
  local c
  for c in $(buildah_ containers -q); do
    grep -qx "$c" <<<"$before" || buildah_ rm "$c" >/dev/null 2>&1 || true
  done
  mkdir -p "$IMAGES_CACHE"
  # Other checkouts' archives of the last two days stay (their manifests name them).
  find "$IMAGES_CACHE" -maxdepth 1 -name "$name-*.oci.tar" -mtime +1 -delete
  buildah_ push -q "$ref" "oci-archive:$archive.tmp:docker.io/$ref"
  mv "$archive.tmp" "$archive"
  log "$ref: built in $((SECONDS - start))s, $(du -h "$archive" | cut -f1) ($archive)"
}

cmd_build() {
  ensure_tools
  ensure_base
  cargo_build
  local spec
  local name
  for spec in "${IMAGES[@]}"; do build_image "$spec"; done
  mkdir -p "$(dirname "$MANIFEST")"
  for spec in "${IMAGES[@]}"; do
    IFS='|' read -r name _ <<<"$spec"
    printf '%s %s %s\n' "$name" "$(image_ref "$name")" "$(archive_of "$spec")"
  done >"$MANIFEST.tmp"
  mv "$MANIFEST.tmp" "$MANIFEST"
  # Untagged leftovers (the prebuilt stages, earlier builds) only take space in vfs storage.
  buildah_ images -q --filter dangling=true | xargs -r buildah --root "$COURIER_CACHE/buildah/storage" \
    --runroot "$COURIER_STATE/buildah/run" --storage-driver vfs rmi >/dev/null 2>&1 || true
}

# list: the images `build` made for this checkout. Exit code 3 when it never ran here; an
# error when an archive it made is gone.
cmd_list() {
  if [[ ! -f "$MANIFEST" ]]; then
    printf '[images] not built for this checkout (%s): run build.sh build\n' "$MANIFEST" >&2
    exit 3
  fi
  local name ref archive
  while read -r name ref archive; do
    [[ -f "$archive" ]] || die "$ref: $archive is gone: run build.sh build"
    printf '%s %s %s %s\n' "$name" "$ref" "$archive" "$(stat -c %s "$archive")"
  done <"$MANIFEST"
}

# import: every current archive into containerd's k8s.io namespace, where the
# kubelet finds it (pods use imagePullPolicy IfNotPresent). A re-import of the
# same archive is a no-op for containerd and takes a fraction of a second.
cmd_import() {
  local ctr_bin="${CTR:-}" address="${CONTAINERD_ADDRESS:-}"
  [[ -n "$ctr_bin" && -n "$address" ]] || die "import needs CTR and CONTAINERD_ADDRESS (cluster.sh sets them)"
  local name ref archive _size listing
  listing="$(cmd_list)"
  while read -r name ref archive _size; do
    "$ctr_bin" --address "$address" -n k8s.io images import "$archive" >/dev/null
    log "imported $ref ($(basename "$archive"))"
  done <<<"$listing"
}

case "${1:-}" in
  base) ensure_tools && ensure_base && echo "$BASE_IMAGE" ;;
  build) cmd_build ;;
  import) cmd_import ;;
  list) cmd_list ;;
  *) die "usage: build.sh base|build|import|list" ;;
esac
