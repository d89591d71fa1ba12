#!/usr/bin/env bash
# courier-worker over HTTPS and HTTP/2 at line rate, next to wrk and h2load into the same sink
# (issue #18, item 4; not a test: numbers, not pass/fail).
#
#   worker/bench/protocols.sh                  # full run (~4-5 min on a quiet machine)
#   ROUNDS=1 DURATION=3s RECORDS=200000 REPORT=/tmp/p.md worker/bench/protocols.sh
#   SKIP_BUILD=1 worker/bench/protocols.sh     # use the release binaries already built
#
# One sink: nginx `return 200` (e2e/bench/lib.sh's, one process pinned to core 1) listening
# three ways: HTTPS ($NGINX_TLS_PORT; a self-signed CA and server certificate made by openssl
# under the work dir; ALPN h2 and http/1.1), h2c ($NGINX_H2C_PORT; HTTP/2 with prior knowledge in
# plain text) and plain HTTP/1.1 ($NGINX_PORT, only for the warm-up). The clients, pinned to
# core 0, each back to back in every round:
#   HTTPS   wrk -t1 -c64 over TLS (HTTP/1.1)              | courier-worker, httpVersion Http1, https://
#   h2      h2load -t1 -c1 -m64 over TLS (ALPN h2)         | courier-worker, httpVersion Http2, https://
#   h2c     h2load -t1 -c1 -m64, prior knowledge           | courier-worker, httpVersion Http2, http://
# 64 requests in flight for every client: courier-worker's HTTP/2 client (hyper-util) multiplexes
# its 64 in flight over one connection (checked with ss: 1 connection; 64 with Http1 over TLS), so h2load gets one connection with 64 streams
# (H2_CONNECTIONS, H2_STREAMS change it). courier-worker trusts the CA through the Destination's
# tls.caSecretRef and a Secret manifest given with --secret (the same as in a cluster).
# Goals: HTTPS >= 85 % of wrk's HTTPS rate, HTTP/2 >= 85 % of h2load's. Every row shows the
# sink's CPU share (above 90 % of its core: sink-bound) and the client's CPU time per request.
# Prints the table and writes docs/benchmarks-worker-protocols.md. Leaves no process behind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COURIER_STATE=${COURIER_STATE:-/tmp/courier-e2e}
WORK="$COURIER_STATE/bench-protocols"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
RECORDS=${RECORDS:-1000000}
NGINX_PORT=${NGINX_PORT:-18093}
NGINX_TLS_PORT=${NGINX_TLS_PORT:-18094}
NGINX_H2C_PORT=${NGINX_H2C_PORT:-18095}
METRICS_PORT=${METRICS_PORT:-18096}
WORKER_CPU=${WORKER_CPU:-0}
SINK_CPU=${SINK_CPU:-1}
H2_CONNECTIONS=${H2_CONNECTIONS:-1}
H2_STREAMS=${H2_STREAMS:-64}
REPORT=${REPORT:-$ROOT/docs/benchmarks-worker-protocols.md}
export NGINX_TLS_PORT NGINX_H2C_PORT H2_CONNECTIONS H2_STREAMS

# shellcheck source=worker/bench/lib.sh
source "$ROOT/worker/bench/lib.sh"

main() {
  H2LOAD=1 install_tools with-time
  build
  rm -rf "$WORK/nginx" "$WORK"/*.log; mkdir -p "$WORK"
  make_data
  start_nginx "$SINK_CPU"
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  local tls="https://127.0.0.1:$NGINX_TLS_PORT" h2c="http://127.0.0.1:$NGINX_H2C_PORT"
  DURATION=1s wrk_rate "$tls" "$NGINX_PID" >/dev/null
  DURATION=1s h2load_rate "$h2c" "$NGINX_PID" >/dev/null

  # Arrays: yardstick rate, sink CPU % (…C), client CPU us/request (…U); courier-worker's
  # steady rate, sink CPU, CPU per record, whole-run rate (…W), peak RSS (…R).
  HW=() HWC=() HWB=() HWU=() HN=() HNC=() HNB=() HNU=() HNW=() HNR=()
  TW=() TWC=() TWB=() TWU=() TN=() TNC=() TNB=() TNU=() TNW=() TNR=()
  CW=() CWC=() CWB=() CWU=() CN=() CNC=() CNB=() CNU=() CNW=() CNR=()
  local rate share busy cpu whole steady rss
  for round in $(seq "$ROUNDS"); do
    read -r rate share busy cpu < <(wrk_rate "$tls" "$NGINX_PID"); HW+=("$rate"); HWC+=("$share"); HWB+=("$busy"); HWU+=("$cpu")
    read -r whole steady rss share busy cpu < <(HTTP_VERSION=Http1 throughput_run "$tls" "$NGINX_PID")
    HNW+=("$whole"); HN+=("$steady"); HNR+=("$rss"); HNC+=("$share"); HNB+=("$busy"); HNU+=("$cpu")
    read -r rate share busy cpu < <(h2load_rate "$tls" "$NGINX_PID"); TW+=("$rate"); TWC+=("$share"); TWB+=("$busy"); TWU+=("$cpu")
    read -r whole steady rss share busy cpu < <(HTTP_VERSION=Http2 throughput_run "$tls" "$NGINX_PID")
    TNW+=("$whole"); TN+=("$steady"); TNR+=("$rss"); TNC+=("$share"); TNB+=("$busy"); TNU+=("$cpu")
    read -r rate share busy cpu < <(h2load_rate "$h2c" "$NGINX_PID"); CW+=("$rate"); CWC+=("$share"); CWB+=("$busy"); CWU+=("$cpu")
    read -r whole steady rss share busy cpu < <(HTTP_VERSION=Http2 throughput_run "$h2c" "$NGINX_PID")
    CNW+=("$whole"); CN+=("$steady"); CNR+=("$rss"); CNC+=("$share"); CNB+=("$busy"); CNU+=("$cpu")
    log "round $round: HTTPS: wrk ${HW[-1]}/s (nginx CPU ${HWC[-1]}%), courier-worker ${HN[-1]}/s (${HNC[-1]}%)"
    log "round $round: h2 over TLS: h2load ${TW[-1]}/s (${TWC[-1]}%), courier-worker ${TN[-1]}/s (${TNC[-1]}%)"
    log "round $round: h2c: h2load ${CW[-1]}/s (${CWC[-1]}%), courier-worker ${CN[-1]}/s (${CNC[-1]}%)"
  done
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

  local h2="h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS" cw="courier-worker run, 64 in flight"
  local table
  table="| client (core $WORKER_CPU) | protocol | req/s (median) | of the yardstick (median of the rounds' ratios) | runs | nginx CPU % of its core (runs) | cores busy %, client/sink (runs) | client CPU us/request (median) | whole run req/s (median) | peak RSS MiB |
|---|---|---|---|---|---|---|---|---|---|
$(row "wrk -t1 -c64" "HTTPS, HTTP/1.1" HW HW HWC HWB HWU)
$(row "$cw, Http1" "HTTPS, HTTP/1.1" HN HW HNC HNB HNU HNW HNR)
$(row "$h2" "HTTP/2 over TLS (ALPN h2)" TW TW TWC TWB TWU)
$(row "$cw, Http2" "HTTP/2 over TLS (ALPN h2)" TN TW TNC TNB TNU TNW TNR)
$(row "$h2" "h2c (prior knowledge)" CW CW CWC CWB CWU)
$(row "$cw, Http2" "h2c (prior knowledge)" CN CW CNC CNB CNU CNW CNR)"
  echo "$table"

  local model
  model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
  mkdir -p "$(dirname "$REPORT")"
  {
    echo "# courier-worker over HTTPS and HTTP/2"
    echo
    echo "Produced by \`worker/bench/protocols.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) (ROUNDS=$ROUNDS, DURATION=$DURATION, RECORDS=$RECORDS)."
    echo
    echo "Machine: $(nproc) cores ($model), $(uname -sr), $(nginx -v 2>&1 | sed 's/.*: //'), $(h2load --version | head -1)."
    echo "Load average before: $LOAD_BEFORE, after: $LOAD_AFTER (other engineers' work may share both cores)."
    echo
    echo "The client pinned to core $WORKER_CPU, nginx \`return 200\` (one process; access log off, keepalive_requests"
    echo "10000000, reuseport, client_body_buffer_size 16k) pinned to core $SINK_CPU, listening with TLS (a self-signed"
    echo "CA and an EC P-256 server certificate made by openssl; ALPN h2 and http/1.1) and in plain text with"
    echo "HTTP/2 prior knowledge (h2c). Every client keeps 64 requests in flight: wrk over 64 keep-alive TLS"
    echo "connections; h2load and courier-worker's HTTP/2 client (hyper-util) over one connection with 64 streams."
    echo "courier-worker trusts the CA through the Destination's \`tls.caSecretRef\` (Secret manifest given with"
    echo "\`--secret\`). Its input: $RECORDS JSON lines of ~256 B, each one POST with an Idempotency-Key; wrk and h2load"
    echo "POST a body of the same size for $DURATION (h2load the same body and Idempotency-Key every time: it cannot vary"
    echo "them; nginx reads neither). courier-worker's rate is its steady rate from its /metrics (every"
    echo "0.5 s); nginx's CPU share is its utime+stime over the measured interval (above 90 %: **sink-bound**);"
    echo "cores busy: how much of the client's and the sink's core anything used over that interval (/proc/stat;"
    echo "well above the processes' own use, other work shared the core); client CPU is user+system time of the"
    echo "whole run per request."
    echo
    echo "Goals: HTTPS >= 85 % of wrk's HTTPS rate; HTTP/2 >= 85 % of h2load's."
    echo
    echo "$table"
  } >"$REPORT.new"
  finish_report "$REPORT"
}

main "$@"
