#!/usr/bin/env bash
# Many workers of one Destination in the local cluster (issue 18, items 1 and 2): throughput
# with 1-4 workers against a partner answering after 20 ms, one exact limit (1k-50k/s) shared
# by 1-4 workers at a strict partner, and a worker added, the limit lowered and a worker
# removed while the shares are sampled. See operator/examples/cluster_workers/main.rs.
#
#   e2e/bench/workers.sh               full run, writes docs/benchmarks-cluster-workers.md (~15 min once built)
#   QUICK=1 e2e/bench/workers.sh       a smoke run of fewer, shorter rows; writes nothing
#   BUILD_ONLY=1 e2e/bench/workers.sh   only the builds (then run it while nothing else does)
#
# Builds the images from release binaries (what a user runs), starts the local cluster and
# MiniDFS when they are not running (and stops what it started), and scales an installed demo
# operator to zero meanwhile (it would reconcile the bench's objects too), back afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=e2e/scripts/lib.sh
source "$ROOT/e2e/scripts/lib.sh"
cd "$ROOT"

ensure_toolchains
build_ground no-images
# Release images, and the same profile for start_ground's import into the node (with the
# default profile it would import the debug images `make test` built, under the same tags).
export COURIER_IMAGE_PROFILE=release
build_images
step "the bench (release)"
cargo build --release --locked -p courier-operator --example cluster_workers
[ -z "${BUILD_ONLY:-}" ] || exit 0

DEMO_REPLICAS=0
finish() {
  if [ "$DEMO_REPLICAS" -gt 0 ]; then
    kubectl -n courier-system scale deploy/courier-operator --replicas="$DEMO_REPLICAS" >/dev/null 2>&1 || true
  fi
  stop_ground
}
trap finish EXIT
start_ground
if kubectl -n courier-system get deploy/courier-operator >/dev/null 2>&1; then
  DEMO_REPLICAS=$(kubectl -n courier-system get deploy/courier-operator -o jsonpath='{.spec.replicas}')
  kubectl -n courier-system scale deploy/courier-operator --replicas=0 >/dev/null
fi

step "runs"
if [ -n "${QUICK:-}" ]; then
  timeout 900 "$ROOT/target/release/examples/cluster_workers" --quick
else
  timeout 2400 "$ROOT/target/release/examples/cluster_workers" --out "$ROOT/docs/benchmarks-cluster-workers.md"
fi
