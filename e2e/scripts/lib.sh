# Shared by test.sh and demo.sh: paths, logging, and bringing up the real ground.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"
export COURIER_STATE="${COURIER_STATE:-/tmp/courier-e2e}"
CLUSTER="$ROOT/e2e/cluster/cluster.sh"
MINIDFS="$ROOT/e2e/minidfs/minidfs.sh"
IMAGES="$ROOT/e2e/images/build.sh"
NODE_IP="$("$ROOT/e2e/scripts/node-ip.sh" addr)"

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Rust, Go and Java come with this kind of machine; what is missing and packaged is installed.
ensure_toolchains() {
  command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || die "cargo not found: install Rust (rustup) first"
  export PATH="$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
  command -v go >/dev/null || die "go not found: install Go 1.26+ (the local cluster is built from Kubernetes' Go modules)"
  # Helm v4, how Courier is installed: built from its Go module, cached under $COURIER_CACHE.
  "$ROOT/e2e/helm/build.sh" build
  PATH="$("$ROOT/e2e/helm/build.sh" bin):$PATH"
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  if [ "${#missing[@]}" -gt 0 ]; then
    step "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Prometheus and promtool (built from their Go module, cached under $COURIER_CACHE) for the
# rules' and dashboard's tests (e2e/tests/integration/monitoring.rs, promtool on PATH) and the real
# Prometheus of operator/tests/e2e/monitoring.rs; krew for the plugin's manifest
# (kubectl-courier/tests/krew.rs); mdbook (crates.io) for the user guide's (e2e/tests/integration/guide.rs).
MDBOOK_VERSION=0.5.4
ensure_test_tools() {
  "$ROOT/e2e/prometheus/build.sh" build
  PATH="$("$ROOT/e2e/prometheus/build.sh" bin):$PATH"
  "$ROOT/e2e/krew/build.sh" build
  if ! command -v mdbook >/dev/null || ! mdbook --version | grep "v$MDBOOK_VERSION" >/dev/null; then
    step "installing mdbook $MDBOOK_VERSION (crates.io)"
    cargo install mdbook --locked --version "$MDBOOK_VERSION" --no-default-features
  fi
}

# Builds (or takes from the cache) the Kubernetes binaries, etcd, the node's binaries, the
# MiniDFS classpath, and Courier's images (release binaries in the Dockerfiles' runtime stages).
# `build_ground no-images` leaves the images to build_images.
build_ground() {
  step "local cluster and node binaries (cached under $COURIER_CACHE)"
  "$CLUSTER" build
  step "MiniDFS classpath (cached under $COURIER_CACHE)"
  "$MINIDFS" build
  [ "${1:-}" = no-images ] || build_images
}

build_images() {
  step "Courier's images (buildah; cached under $COURIER_CACHE/images)"
  "$IMAGES" build
}

STARTED=()

# Starts the cluster (control plane and node) and MiniDFS unless they already run; remembers
# what it started so stop_ground stops only that. Either way the images just built go into the
# node's containerd.
start_ground() {
  if "$CLUSTER" status >/dev/null 2>&1; then
    step "local cluster already running; importing the images"
    "$CLUSTER" up
  else
    step "starting the local cluster"
    "$CLUSTER" up
    STARTED+=(cluster)
  fi
  if "$MINIDFS" status >/dev/null 2>&1; then
    step "MiniDFS already running"
  else
    step "starting MiniDFS"
    "$MINIDFS" start
    STARTED+=(minidfs)
  fi
  export KUBECONFIG="$COURIER_STATE/cluster/admin.kubeconfig"
  export PATH="$COURIER_CACHE/k8s-v1.34.4/bin:$PATH"
  export COURIER_MINIDFS_URL="${COURIER_MINIDFS_URL:-hdfs://$NODE_IP:9000}"
}

stop_ground() {
  [ "${COURIER_KEEP_SERVICES:-0}" = 1 ] && return 0
  local s
  for s in "${STARTED[@]}"; do
    case $s in
      cluster) "$CLUSTER" down >/dev/null 2>&1 || true ;;
      minidfs) "$MINIDFS" stop >/dev/null 2>&1 || true ;;
    esac
  done
}
