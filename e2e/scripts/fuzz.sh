#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/, libFuzzer, nightly toolchain) for a bounded time each,
# starting from the seed corpus the bounded proptest run uses. A crash stops the script with
# the target's exit status; its input is under fuzz/artifacts/<target>/.
#   e2e/scripts/fuzz.sh            # 60 s per target
#   FUZZ_SECONDS=600 e2e/scripts/fuzz.sh http_response
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(http_response body_decoder records request_template)
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2; exit 2; }
cargo run -q -p courier-worker --example fuzz_seeds -- fuzz/corpus
for t in "${TARGETS[@]}"; do
  echo "== $t: ${SECONDS_EACH}s"
  (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048)
done
