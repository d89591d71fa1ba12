#!/usr/bin/env bash
# Helm v4, the install path of Courier's chart, built from its Go module like the Kubernetes
# binaries (no release download) and cached under $COURIER_CACHE, keyed by version:
#
#   $COURIER_CACHE/helm-v4.3.2/bin/helm      helm.sh/helm/v4/cmd/helm@v4.3.2 (its own go.mod)
#
#   build.sh build    build it unless it is there (idempotent)
#   build.sh path     print the binary's path
#   build.sh bin      print the directory to put on PATH
set -euo pipefail

HELM_VERSION=v4.3.2
COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"
HELM_BIN="$COURIER_CACHE/helm-$HELM_VERSION/bin"

log() { printf '[helm-build] %s\n' "$*" >&2; }
die() { printf '[helm-build] error: %s\n' "$*" >&2; exit 1; }

cmd_build() {
  if [[ -x "$HELM_BIN/helm" ]]; then
    log "helm $HELM_VERSION present in $HELM_BIN"
    return 0
  fi
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null || die "go not found (helm is built from its Go module)"
  local m=helm.sh/helm/v4 tmp start=$SECONDS
  tmp="$(mktemp -d)"
  # What helm's own Makefile sets for a tagged release build.
  local flags="-s -w -X $m/internal/version.version=$HELM_VERSION -X $m/internal/version.metadata="
  flags+=" -X $m/internal/version.gitTreeState=clean"
  log "building helm $HELM_VERSION ($m/cmd/helm; a cold build takes minutes) ..."
  (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp/bin" go install -trimpath -ldflags "$flags" "$m/cmd/helm@$HELM_VERSION")
  mkdir -p "$HELM_BIN"
  mv "$tmp/bin/helm" "$HELM_BIN/helm.tmp"
  mv "$HELM_BIN/helm.tmp" "$HELM_BIN/helm"
  rm -rf "$tmp"
  log "built helm $HELM_VERSION in $((SECONDS - start))s: $("$HELM_BIN/helm" version --short)"
}

case "${1:-build}" in
  build) cmd_build ;;
  path) printf '%s\n' "$HELM_BIN/helm" ;;
  bin) printf '%s\n' "$HELM_BIN" ;;
  *) die "usage: $0 build|path|bin" ;;
esac
