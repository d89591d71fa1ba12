#!/usr/bin/env bash
# Where courier-worker's CPU goes on each send path: `perf record` on the worker's pid while it
# sends into protocols.sh's nginx sink at 64 in flight (issue #18, item 4; not a test).
#
#   worker/bench/profile.sh                       # h1 (HTTPS, lean HTTP/1.1), h2 (TLS, ALPN h2), h2c
#   PATHS="h2c" PERF_SECONDS=3 worker/bench/profile.sh
#   BIN=/path/to/courier-worker worker/bench/profile.sh
#
# Build the worker with symbols first (CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release
# -p courier-worker); this script builds nothing. Same pinning as protocols.sh: the worker on
# core $WORKER_CPU, nginx on core $SINK_CPU. perf samples the worker $PERF_SECONDS s after it has
# run $PERF_DELAY s (steady state), with DWARF call graphs (a release build has no frame
# pointers). With NO_REPORT set, only the data is recorded (the reports take longer than the
# runs; make them outside a CPU lock with `worker/bench/profile.sh report`). For each path it writes $WORK/perf-PATH.data and two reports next to it:
# PATH.children.txt (inclusive share per symbol) and PATH.self.txt (self share), plus the
# worker's JSON summary and /usr/bin/time output. Leaves no process behind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COURIER_STATE=${COURIER_STATE:-/tmp/courier-e2e}
WORK=${WORK:-$COURIER_STATE/bench-profile}
RECORDS=${RECORDS:-1000000}
PATHS=${PATHS:-h1 h2 h2c}
PERF_DELAY=${PERF_DELAY:-2}
PERF_SECONDS=${PERF_SECONDS:-4}
PERF_FREQ=${PERF_FREQ:-999}
NGINX_PORT=${NGINX_PORT:-18193}
NGINX_TLS_PORT=${NGINX_TLS_PORT:-18194}
NGINX_H2C_PORT=${NGINX_H2C_PORT:-18195}
METRICS_PORT=${METRICS_PORT:-18196}
WORKER_CPU=${WORKER_CPU:-0}
SINK_CPU=${SINK_CPU:-1}
export NGINX_TLS_PORT NGINX_H2C_PORT

# shellcheck source=worker/bench/lib.sh
source "$ROOT/worker/bench/lib.sh"

main() {
  H2LOAD=1 install_tools with-time
  WORKER_BIN=${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/courier-worker}
  [ -x "$WORKER_BIN" ] || { log "no $WORKER_BIN: build courier-worker (release, with debug symbols) first"; exit 1; }
  rm -rf "$WORK/nginx" "$WORK"/*.log; mkdir -p "$WORK"
  make_data
  start_nginx "$SINK_CPU"
  local path url version
  for path in $PATHS; do
    case $path in
      h1) url="https://127.0.0.1:$NGINX_TLS_PORT" version=Http1 ;;
      h2) url="https://127.0.0.1:$NGINX_TLS_PORT" version=Http2 ;;
      h2c) url="http://127.0.0.1:$NGINX_H2C_PORT" version=Http2 ;;
      *) log "unknown path $path (h1, h2 or h2c)"; exit 2 ;;
    esac
    profile_run "$path" "$url" "$version"
  done
}

# profile_run NAME URL HTTP_VERSION: one worker run at 64 in flight, perf attached to it.
profile_run() {
  local name=$1 url=$2 pid="" run
  HTTP_VERSION=$3 run_worker "$url" 64 "$DATA" --metrics-addr "127.0.0.1:$METRICS_PORT" >"$WORK/$name.summary.json" &
  run=$!
  PIDS+=("$run")
  for _ in $(seq 50); do
    pid=$(pgrep -n -f "^$WORKER_BIN run " || true)
    [ -z "$pid" ] || break
    sleep 0.1
  done
  [ -n "$pid" ] || { log "$name: the worker did not start"; wait "$run" || true; return 1; }
  sleep "$PERF_DELAY"
  perf record -q -F "$PERF_FREQ" --call-graph dwarf,16384 -p "$pid" -o "$WORK/perf-$name.data" -- sleep "$PERF_SECONDS" 2>>"$WORK/perf.log" || true
  wait "$run" || true
  cp "$WORK/time.log" "$WORK/$name.time.log"
  log "$name: $(cat "$WORK/$name.summary.json")"
  [ -z "${NO_REPORT:-}" ] || return 0
  reports "$name"
}

# reports NAME: the two reports of $WORK/perf-NAME.data (slow: DWARF unwinding).
reports() {
  local name=$1
  perf report -i "$WORK/perf-$name.data" --children --sort symbol -g none --percent-limit 1.5 --stdio 2>/dev/null \
    >"$WORK/$name.children.txt" || true
  perf report -i "$WORK/perf-$name.data" --no-children --sort dso,symbol -g none --percent-limit 0.3 --stdio 2>/dev/null \
    >"$WORK/$name.self.txt" || true
  log "$name: reports in $WORK/$name.children.txt and $WORK/$name.self.txt"
}

if [ "${1:-}" = report ]; then
  for path in $PATHS; do reports "$path"; done
else
  main "$@"
fi
