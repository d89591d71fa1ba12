#!/usr/bin/env bash
# Builds (or finds in the cache) everything the local node runs, each keyed by
# its version under $COURIER_CACHE:
#
#   k8s-v1.34.4/bin/{kubelet,kube-proxy}     k8s.io/kubernetes (e2e/cluster/go.mod)
#   containerd-v2.4.2/bin/{containerd,containerd-shim-runc-v2,ctr}
#   cni-plugins-v1.10.0/bin/{bridge,host-local,loopback,portmap}
#   cri-tools-v1.34.0/bin/crictl
#   coredns-v1.12.1/bin/coredns               e2e/node/coredns (a short plugin list),
#   coredns-v1.12.1/coredns.oci.tar           ... alone in an image (courier.local/coredns)
#   pause-3.10.1/pause.oci.tar                build/pause/linux/pause.c of k8s.io/kubernetes, gcc -static
#                                             (courier.local/pause, containerd's sandbox image)
#
# runc, iptables and conntrack come from Debian's packages (apt-get when missing).
#
#   build.sh            build what is missing
#   build.sh paths      print NAME=PATH lines of the built things (for cluster.sh)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"

K8S_VERSION=v1.34.4
CONTAINERD_VERSION=v2.4.2
CNI_VERSION=v1.10.0
CRI_TOOLS_VERSION=v1.34.0
COREDNS_VERSION=v1.12.1
PAUSE_VERSION=3.10.1
PAUSE_IMAGE="courier.local/pause:$PAUSE_VERSION"
COREDNS_IMAGE="courier.local/coredns:$COREDNS_VERSION"

K8S_BIN="$COURIER_CACHE/k8s-$K8S_VERSION/bin"
CONTAINERD_BIN="$COURIER_CACHE/containerd-$CONTAINERD_VERSION/bin"
CNI_BIN="$COURIER_CACHE/cni-plugins-$CNI_VERSION/bin"
CRI_TOOLS_BIN="$COURIER_CACHE/cri-tools-$CRI_TOOLS_VERSION/bin"
COREDNS_BIN="$COURIER_CACHE/coredns-$COREDNS_VERSION/bin"
PAUSE_DIR="$COURIER_CACHE/pause-$PAUSE_VERSION"
CNI_PLUGINS=(bridge host-local loopback portmap)

log() { printf '[node-build] %s\n' "$*" >&2; }
die() { printf '[node-build] error: %s\n' "$*" >&2; exit 1; }

ensure_go() {
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null || die "go not found (the node is built from Go modules)"
}

# Debian packages the node uses as they are.
ensure_packages() {
  local missing=()
  command -v runc >/dev/null || missing+=(runc)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
  command -v buildah >/dev/null || missing+=(buildah)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# go_build OUT DIR PACKAGE [FLAGS...]: CGO-free build of PACKAGE (resolved in the
# module at DIR) into OUT, written atomically. go_install OUT PACKAGE@VERSION
# [FLAGS...] does the same with the upstream module's own go.mod.
go_build() {
  local out="$1" dir="$2" pkg="$3"
  shift 3
  [[ -x "$out" ]] && return 0
  ensure_go
  mkdir -p "$(dirname "$out")"
  log "building $(basename "$out") ($pkg) ..."
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath "$@" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  log "built $(basename "$out") in $((SECONDS - start))s"
}

go_install() {
  local out="$1" pkg="$2"
  shift 2
  [[ -x "$out" ]] && return 0
  ensure_go
  local tmp
  tmp="$(mktemp -d)"
  log "building $(basename "$out") ($pkg) ..."
  local start=$SECONDS
  (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp/bin" go install -trimpath "$@" "$pkg")
  mkdir -p "$(dirname "$out")"
  mv "$tmp/bin/$(basename "${pkg%@*}")" "$out"
  rm -rf "$tmp"
  log "built $(basename "$out") in $((SECONDS - start))s"
}

k8s_ldflags() {
  local date pkg flags=""
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=34"
    flags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$date"
  done
  printf '%s' "-s -w$flags"
}

# The directory of a module in the module cache (downloaded if missing).
module_dir() {
  local module="$1" version="$2"
  ensure_go
  (cd "$HERE" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}

build_kubelet() {
  local ldflags
  ldflags="$(k8s_ldflags)"
  go_build "$K8S_BIN/kubelet" "$ROOT/e2e/cluster" k8s.io/kubernetes/cmd/kubelet -ldflags "$ldflags"
  go_build "$K8S_BIN/kube-proxy" "$ROOT/e2e/cluster" k8s.io/kubernetes/cmd/kube-proxy -ldflags "$ldflags"
}

build_containerd() {
  local m=github.com/containerd/containerd/v2 v=$CONTAINERD_VERSION
  local flags="-s -w -X $m/version.Version=$CONTAINERD_VERSION"
  local tags="no_btrfs no_devmapper no_zfs urfave_cli_no_docs"
  go_install "$CONTAINERD_BIN/containerd" "$m/cmd/containerd@$v" -tags "$tags" -ldflags "$flags"
  go_install "$CONTAINERD_BIN/ctr" "$m/cmd/ctr@$v" -tags "$tags" -ldflags "$flags"
  go_install "$CONTAINERD_BIN/containerd-shim-runc-v2" "$m/cmd/containerd-shim-runc-v2@$v" \
    -tags "$tags no_grpc" -ldflags "$flags"
}

build_cni() {
  local m=github.com/containernetworking/plugins p kind
  for p in "${CNI_PLUGINS[@]}"; do
    case $p in host-local) kind=ipam ;; portmap) kind=meta ;; *) kind=main ;; esac
    go_install "$CNI_BIN/$p" "$m/plugins/$kind/$p@$CNI_VERSION" \
      -ldflags "-s -w -X $m/pkg/utils/buildversion.BuildVersion=$CNI_VERSION"
  done
}

build_crictl() {
  go_install "$CRI_TOOLS_BIN/crictl" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION" \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
}

build_coredns() {
  go_build "$COREDNS_BIN/coredns" "$HERE/coredns" . -ldflags "-s -w"
  [[ -f "$COREDNS_BIN/../coredns.oci.tar" ]] && return 0
  single_binary_image "$COREDNS_BIN/../coredns.oci.tar" "$COREDNS_IMAGE" "$COREDNS_BIN/coredns" 65532:65532 \
    "org.opencontainers.image.source=https://github.com/coredns/coredns" \
    "org.opencontainers.image.version=$COREDNS_VERSION"
}

buildah_() {
  buildah --root "$COURIER_CACHE/buildah/storage" --runroot "${COURIER_STATE:-/tmp/courier-e2e}/buildah/run" \
    --storage-driver vfs "$@"
}

# single_binary_image ARCHIVE IMAGE BINARY USER LABELS...: an image holding only
# BINARY (static) as its entrypoint, written as an OCI archive for `ctr images import`.
single_binary_image() {
  local archive="$1" image="$2" binary="$3" user="$4"
  shift 4
  local ctr name
  name="$(basename "$binary")"
  ctr="$(buildah_ from scratch)"
  buildah_ copy "$ctr" "$binary" "/$name" >/dev/null
  local labels=() l
  for l in "$@"; do labels+=(--label "$l"); done
  buildah_ config --entrypoint "[\"/$name\"]" --user "$user" "${labels[@]}" "$ctr"
  buildah_ commit -q --format oci --rm "$ctr" "$image" >/dev/null
  buildah_ push -q "$image" "oci-archive:$archive.tmp:$image"
  mv "$archive.tmp" "$archive"
  log "image $image: $(du -h "$archive" | cut -f1) ($archive)"
}

# The pause image: Kubernetes' pause.c linked statically, alone in an image.
build_pause() {
  [[ -f "$PAUSE_DIR/pause.oci.tar" ]] && return 0
  local dir src
  dir="$(module_dir k8s.io/kubernetes "$K8S_VERSION")"
  src="$dir/build/pause/linux/pause.c"
  [[ -f "$src" ]] || die "$src not found in the k8s.io/kubernetes module"
  mkdir -p "$PAUSE_DIR"
  log "compiling pause $PAUSE_VERSION from $src"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-courier" -o "$PAUSE_DIR/pause" "$src"
  strip "$PAUSE_DIR/pause"
  single_binary_image "$PAUSE_DIR/pause.oci.tar" "$PAUSE_IMAGE" "$PAUSE_DIR/pause" 65535:65535 \
    "org.opencontainers.image.source=https://github.com/kubernetes/kubernetes/tree/$K8S_VERSION/build/pause" \
    "org.opencontainers.image.version=$PAUSE_VERSION"
}

cmd_build() {
  ensure_packages
  build_kubelet
  build_containerd
  build_cni
  build_crictl
  build_coredns
  build_pause
}

cmd_paths() {
  cat <<EOF
K8S_BIN=$K8S_BIN
CONTAINERD_BIN=$CONTAINERD_BIN
CNI_BIN=$CNI_BIN
CRI_TOOLS_BIN=$CRI_TOOLS_BIN
COREDNS_BIN=$COREDNS_BIN
PAUSE_ARCHIVE=$PAUSE_DIR/pause.oci.tar
PAUSE_IMAGE=$PAUSE_IMAGE
COREDNS_ARCHIVE=$COURIER_CACHE/coredns-$COREDNS_VERSION/coredns.oci.tar
COREDNS_IMAGE=$COREDNS_IMAGE
EOF
}

case "${1:-build}" in
  build) cmd_build ;;
  paths) cmd_paths ;;
  *) die "usage: build.sh [build|paths]" ;;
esac
