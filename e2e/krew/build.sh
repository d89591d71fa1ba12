#!/usr/bin/env bash
# krew (the kubectl plugin manager) and its manifest validator, built from their Go module like
# helm and the Kubernetes binaries, cached under $COURIER_CACHE keyed by version:
#
#   $COURIER_CACHE/krew-v0.4.3/bin/{krew,validate-krew-manifest}   sigs.k8s.io/krew@v0.4.3
#
# Used by kubectl-courier/tests/krew.rs to validate the plugin's manifest and install the
# plugin from it as a user would (`kubectl krew install --manifest --archive`).
#
#   build.sh build    build them unless they are there (idempotent)
#   build.sh bin      print the directory holding them
set -euo pipefail

KREW_VERSION=v0.4.3
COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"
KREW_BIN="$COURIER_CACHE/krew-$KREW_VERSION/bin"

log() { printf '[krew-build] %s\n' "$*" >&2; }
die() { printf '[krew-build] error: %s\n' "$*" >&2; exit 1; }

cmd_build() {
  if [[ -x "$KREW_BIN/krew" && -x "$KREW_BIN/validate-krew-manifest" ]]; then
    return 0
  fi
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null || die "go not found (krew is built from its Go module)"
  local tmp start=$SECONDS
  tmp="$(mktemp -d)"
  log "building krew $KREW_VERSION and validate-krew-manifest ..."
  (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp/bin" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION" "sigs.k8s.io/krew/cmd/validate-krew-manifest@$KREW_VERSION")
  mkdir -p "$KREW_BIN"
  for b in krew validate-krew-manifest; do
    mv "$tmp/bin/$b" "$KREW_BIN/$b.tmp"
    mv "$KREW_BIN/$b.tmp" "$KREW_BIN/$b"
  done
  rm -rf "$tmp"
  log "built krew $KREW_VERSION in $((SECONDS - start))s"
}

case "${1:-build}" in
  build) cmd_build ;;
  bin) printf '%s\n' "$KREW_BIN" ;;
  *) die "usage: $0 build|bin" ;;
esac
