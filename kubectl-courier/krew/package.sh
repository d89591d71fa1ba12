#!/usr/bin/env bash
# Packages `kubectl courier` for krew: the archive (the binary and its licence) and the
# manifest rendered from courier.yaml.tmpl with the archive's address and SHA-256.
#
#   package.sh OUT_DIR [URI]
#
# BIN: the kubectl-courier binary to package (default: a release build, `cargo build --release`).
# VERSION: the version (default: the workspace's). URI: where the archive will be published
# (default: the release download address under the workspace's repository).
# Writes OUT_DIR/kubectl-courier_linux_amd64.tar.gz and OUT_DIR/courier.yaml.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
die() { printf 'package.sh: %s\n' "$*" >&2; exit 2; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: package.sh OUT_DIR [URI]"
OUT="$1"
field() { sed -n "s/^$1 *= *\"\(.*\)\"/\1/p" "$ROOT/Cargo.toml" | head -1; }
VERSION="${VERSION:-$(field version)}"
HOMEPAGE="$(field repository)"
ARCHIVE=kubectl-courier_linux_amd64.tar.gz
URI="${2:-$HOMEPAGE/releases/download/v$VERSION/$ARCHIVE}"
[[ -n "$VERSION" && -n "$HOMEPAGE" ]] || die "no version or repository in $ROOT/Cargo.toml"

if [[ -z "${BIN:-}" ]]; then
  cargo build --release --locked -p kubectl-courier --manifest-path "$ROOT/Cargo.toml" >&2
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kubectl-courier"
fi
[[ -x "$BIN" ]] || die "no executable at $BIN"
[[ -f "$ROOT/LICENSE" ]] || die "no LICENSE at $ROOT/LICENSE"

mkdir -p "$OUT"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp "$BIN" "$stage/kubectl-courier"
cp "$ROOT/LICENSE" "$stage/LICENSE"
# Reproducible: fixed order, owner and times.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -czf "$OUT/$ARCHIVE" kubectl-courier LICENSE
sha="$(sha256sum "$OUT/$ARCHIVE" | cut -d' ' -f1)"
sed -e "s|@VERSION@|$VERSION|g" -e "s|@HOMEPAGE@|$HOMEPAGE|g" -e "s|@URI@|$URI|g" -e "s|@SHA256@|$sha|g" \
  "$HERE/courier.yaml.tmpl" | grep -v '^#' >"$OUT/courier.yaml"
printf '%s\n%s\n' "$OUT/$ARCHIVE" "$OUT/courier.yaml"
