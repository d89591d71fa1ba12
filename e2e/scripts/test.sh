#!/usr/bin/env bash
# Runs every test of Courier against real parts: builds (or reuses from ~/.cache/courier) the
# local Kubernetes cluster (control plane and a real node), MiniDFS and Courier's images,
# starts them, then runs clippy and the whole workspace's tests, including those marked
# #[ignore = "needs the local cluster (make test)"]. Services this script started are stopped
# at the end (COURIER_KEEP_SERVICES=1 keeps them).
set -euo pipefail
# shellcheck source=e2e/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export CARGO_INCREMENTAL=0 # CI builds once; incremental state only costs disk
ensure_toolchains
ensure_test_tools
build_ground no-images

step "building the workspace"
cargo build --workspace --all-targets --locked
# The images take the binaries just built (one build of the workspace, not two).
COURIER_IMAGES_USE_BUILT=1 build_images

trap stop_ground EXIT
start_ground
# The demo's operator watches every namespace: it would compete with the operators the tests
# start for their own namespaces, so it is scaled to zero while the tests run (`make demo`
# scales it back).
if kubectl -n courier-system get deploy/courier-operator >/dev/null 2>&1; then
  step "scaling the demo's operator to zero for the tests"
  kubectl -n courier-system scale deploy/courier-operator --replicas=0
fi

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
set +e
# Tests not run, each named here with its reason (none today); the summary line counts them.
NOT_RUN=()
for t in "${NOT_RUN[@]}"; do echo "not run: $t"; done
skips=()
for t in "${NOT_RUN[@]}"; do skips+=(--skip "$t"); done
cargo test --workspace --locked --no-fail-fast -- --include-ignored "${skips[@]}" 2>&1 | tee "$COURIER_STATE/logs/cargo-test.log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: .*' "$COURIER_STATE/logs/cargo-test.log" | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
read -r p f <<<"$passed"
echo
echo "total: $p passed, $f failed, ${#NOT_RUN[@]} not run (listed above)"
exit "$status"
