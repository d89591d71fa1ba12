#!/usr/bin/env bash
# Prometheus and promtool, built from their Go module like the Kubernetes binaries and helm (no
# release download; Debian's prometheus 2.42 is built without the Kubernetes service discovery)
# and cached under $COURIER_CACHE, keyed by version:
#
#   $COURIER_CACHE/prometheus-v0.316.0/bin/{prometheus,promtool}
#       github.com/prometheus/prometheus/cmd/{prometheus,promtool}@v0.316.0 (Prometheus 3.16.0)
#
# Built with `remove_all_sd,enable_kubernetes_sd`: of the service discoveries only Kubernetes'
# (and the static/file ones, which are always in) is compiled, which keeps the cloud SDKs out of
# the build. No web UI assets (no `builtinassets`): the HTTP API is all the tests use.
#
#   build.sh build    build both unless they are there (idempotent)
#   build.sh bin      print the directory to put on PATH
set -euo pipefail

PROMETHEUS_VERSION=v0.316.0
PROMETHEUS_RELEASE=3.16.0
COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"
PROMETHEUS_BIN="$COURIER_CACHE/prometheus-$PROMETHEUS_VERSION/bin"

log() { printf '[prometheus-build] %s\n' "$*" >&2; }
die() { printf '[prometheus-build] error: %s\n' "$*" >&2; exit 1; }

cmd_build() {
  if [[ -x "$PROMETHEUS_BIN/prometheus" && -x "$PROMETHEUS_BIN/promtool" ]]; then
    log "prometheus $PROMETHEUS_RELEASE present in $PROMETHEUS_BIN"
    return 0
  fi
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null || die "go not found (prometheus is built from its Go module)"
  local m=github.com/prometheus/prometheus v=github.com/prometheus/common/version tmp start=$SECONDS
  tmp="$(mktemp -d)"
  # What Prometheus' promu sets for a release build (version shown by --version and build_info).
  local flags="-s -w -X $v.Version=$PROMETHEUS_RELEASE -X $v.Revision=$PROMETHEUS_VERSION -X $v.Branch=HEAD"
  flags+=" -X $v.BuildUser=courier-e2e -X $v.BuildDate=unknown"
  log "building prometheus $PROMETHEUS_RELEASE ($m/cmd/prometheus and cmd/promtool; a cold build takes minutes) ..."
  (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp/bin" go install -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "$flags" "$m/cmd/prometheus@$PROMETHEUS_VERSION" "$m/cmd/promtool@$PROMETHEUS_VERSION")
  mkdir -p "$PROMETHEUS_BIN"
  local b
  for b in promtool prometheus; do
    mv "$tmp/bin/$b" "$PROMETHEUS_BIN/$b.tmp"
    mv "$PROMETHEUS_BIN/$b.tmp" "$PROMETHEUS_BIN/$b"
  done
  rm -rf "$tmp"
  log "built prometheus $PROMETHEUS_RELEASE in $((SECONDS - start))s: $("$PROMETHEUS_BIN/prometheus" --version 2>&1 | head -1)"
}

case "${1:-build}" in
  build) cmd_build ;;
  bin) printf '%s\n' "$PROMETHEUS_BIN" ;;
  *) die "usage: $0 build|bin" ;;
esac
