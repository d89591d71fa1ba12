#!/usr/bin/env bash
# Peers in the same run: wrk, courier-worker and Benthos (file input -> http_client output) on the
# same input, into the same sinks, side by side in each round (not a test: numbers, not pass/fail).
#
#   e2e/bench/peers.sh                        # full run: 3 rounds, ~10 min (Benthos at ~7k/s takes ~2.5 min a round; + ~1.5 min to build it once)
#   ROUNDS=1 DURATION=3s RECORDS=200000 LIMIT_SECONDS=5 e2e/bench/peers.sh   # smoke run, ~1-2 min
#   SKIP_BUILD=1 e2e/bench/peers.sh           # use the release binaries already built
#   BENTHOS_BIN=/path/to/benthos e2e/bench/peers.sh
#   e2e/bench/peers.sh build-benthos          # only build (and cache) Benthos
#
# 1. Unbounded throughput on one core: the client pinned to core 0, nginx `return 200` pinned to
#    core 1. wrk -t1 -c64 (POSTing ~256 B bodies for DURATION), courier-worker (64 in flight) and
#    Benthos (http_client's default 64 in flight) each deliver RECORDS JSON lines of ~256 B, one
#    POST per line. Rate in steady state (from each client's own metrics every 0.5 s) and CPU
#    seconds per 100k requests (/usr/bin/time).
# 2. At a strict partner: partner-sim --rate LIMIT --burst LIMIT/100 (one thread, core 1).
#    courier-worker with its Destination's rate limit LIMIT (burst LIMIT/100, the partner's) and
#    Benthos with a `local` rate_limit resource of count LIMIT per 1s each run for
#    LIMIT_SECONDS + 2 s and are then stopped. From the partner: the mean accepted per full second,
#    the busiest sliding second (arrivals log, GET /arrivals) and the 429s it answered.
# Prints tables, writes docs/data/peers.csv and the "Peers in the same run" section of
# docs/benchmarks.md. Leaves no process behind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COURIER_STATE=${COURIER_STATE:-/tmp/courier-e2e}
WORK="$COURIER_STATE/bench-peers"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
RECORDS=${RECORDS:-1000000}
LIMIT=${LIMIT:-10000}
LIMIT_SECONDS=${LIMIT_SECONDS:-10}
# No client's unbounded run may take longer than this (seconds): the script ends in bounded time.
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-900}
NGINX_PORT=${NGINX_PORT:-18097}
SIM_PORT=${SIM_PORT:-18098}
METRICS_PORT=${METRICS_PORT:-18099}
BENTHOS_PORT=${BENTHOS_PORT:-18100}
CLIENT_CPU=${CLIENT_CPU:-0}
SINK_CPU=${SINK_CPU:-1}
# The newest stable v4 the Go module proxy served on 2026-12-04 (its version list is not served
# here; v4.80.0 was the newest tag found).
BENTHOS_VERSION=${BENTHOS_VERSION:-v4.80.0}
BENTHOS_BIN=${BENTHOS_BIN:-$HOME/.cache/courier/benthos-$BENTHOS_VERSION/benthos}
REPORT="$ROOT/docs/benchmarks.md"
CSV="$ROOT/docs/data/peers.csv"
LUA="$ROOT/worker/bench/post256.lua"

# shellcheck source=e2e/bench/lib.sh
source "$ROOT/e2e/bench/lib.sh"

# Benthos from the Go module proxy, built once into $BENTHOS_BIN: the core module's own
# cmd/benthos main minus pure/extended (`go install ...@version` needs the proxy's version list,
# which is not served here). components/io has the `file` input and `http_client` output,
# components/pure the `local` rate limit.
build_benthos() {
  if [ -x "$BENTHOS_BIN" ]; then return 0; fi
  command -v go >/dev/null || { log "Go is needed to build Benthos (the module wants the Go of its go.mod)"; return 1; }
  local dir src start
  dir=$(dirname "$BENTHOS_BIN"); src="$dir/src"
  rm -rf "$src"; mkdir -p "$src"
  log "building Benthos $BENTHOS_VERSION into $BENTHOS_BIN (once)"
  start=$(date +%s)
  cat >"$src/main.go" <<'GO'
package main

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func main() {
	service.RunCLI(context.Background())
}
GO
  # A build cache of its own, removed afterwards: the recorded build time is a cold compile.
  (
    cd "$src"
    export GOCACHE="$src/gocache"
    go mod init courier-bench/benthos >/dev/null 2>&1
    go get "github.com/redpanda-data/benthos/v4@$BENTHOS_VERSION" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    go build -trimpath -o "$BENTHOS_BIN.new" .
  )
  mv "$BENTHOS_BIN.new" "$BENTHOS_BIN"
  rm -rf "$src/gocache"
  echo "built $(date -u +%Y-%m-%dT%H:%MZ) with $(go version | cut -d' ' -f3) in $(($(date +%s) - start)) s" >"$dir/build.txt"
  log "Benthos: $(cat "$dir/build.txt")"
}

make_data() { # RECORDS -> sets DATA
  DATA="$WORK/data-$1.jsonl"
  json_lines "$DATA" "$1"
}

# manifests URL RPS: a Destination with the partner's limit (burst RPS/100) and 64 in flight.
manifests() {
  cat >"$WORK/destination.yaml" <<YAML
apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: {name: bench}
spec:
  endpoint: {url: "$1/ingest", httpVersion: Http1}
  rateLimit: {requestsPerSecond: $2, burst: $(($2 / 100 > 0 ? $2 / 100 : 1))}
  workers: {maxInFlightPerWorker: 64}
YAML
  plain_datum "$WORK/datum.yaml"
}

# benthos_config URL SOURCE [RATE]: file input (default lines scanner) -> http_client output.
# Knobs set: the URL, verb POST (its default), max_in_flight 64 (its default), the same two headers
# courier-worker sends, the HTTP server (metrics) on a loopback port instead of 0.0.0.0:4195,
# metrics json_api (default none) to read output_sent; with RATE a `local` rate_limit resource
# of count RATE per interval 1s. Everything else is Benthos's default (retries 3, backoff on 429,
# auto_replay_nacks, timeout 5s, logger INFO).
benthos_config() {
  local url=$1 source=$2 rate=${3:-}
  {
    cat <<YAML
http:
  address: 127.0.0.1:$BENTHOS_PORT
metrics:
  json_api: {}
input:
  file:
    paths: ["$source"]
output:
  http_client:
    url: "$url/ingest"
    verb: POST
    max_in_flight: 64
    headers:
      Content-Type: application/json
      Idempotency-Key: '\${! uuid_v4() }'
YAML
    if [ -n "$rate" ]; then
      cat <<YAML
    rate_limit: partner
rate_limit_resources:
  - label: partner
    local:
      count: $rate
      interval: 1s
YAML
    fi
  } >"$WORK/benthos.yaml"
}

# sample COMMAND...: runs COMMAND while a sampler (on the sink's core) appends "time count" of
# the client's delivered requests to $WORK/samples every 0.5 s; $SAMPLE_URL and $SAMPLE_AWK say
# where the count is read.
sample() {
  local sampler
  : >"$WORK/samples"
  (
    while sleep 0.5; do
      v=$(taskset -c "$SINK_CPU" curl -s --max-time 0.4 "$SAMPLE_URL" 2>/dev/null | awk "$SAMPLE_AWK")
      [ -n "$v" ] && echo "$(date +%s.%N) $v" >>"$WORK/samples"
    done
  ) &
  sampler=$!
  "$@" || true
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
}

# Requests/s between the second and the second-to-last sample of $WORK/samples; 0 when a run was
# too short for that (a smoke run's small RECORDS): then the whole run's rate stands in for it.
steady_rate() {
  awk 'NR > 1 { t[++n] = $1; v[n] = $2 }
       END { if (n < 3) { print 0; exit } printf "%.1f\n", (v[n-1] - v[1]) / (t[n-1] - t[1]) }' "$WORK/samples"
}

# CPU seconds (user + system from /usr/bin/time -f "%U %S") per 100k of N requests.
# (The last line: a client ended by a signal has one before it that says so.)
cpu_per_100k() { awk -v n="$1" '{u = $1; s = $2} END {printf "%.2f", (u + s) * 100000 / n}' "$WORK/time.log"; }

# Connections nginx has accepted so far (its stub_status), less the one asking.
nginx_accepts() { curl -s "http://127.0.0.1:$NGINX_PORT/nginx_status" | awk 'NR == 3 {print $1 + 0}'; }
connections() { sample_accepts; echo $((ACCEPTS_AFTER - ACCEPTS_BEFORE - 1)); }
sample_accepts() { ACCEPTS_AFTER=$(nginx_accepts); }

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", 100*a/b}'; }

run_courier() { # URL RPS SOURCE [extra flags]
  local url=$1 rps=$2 source=$3; shift 3
  manifests "$url" "$rps"
  rm -rf "$WORK/dead"
  taskset -c "$CLIENT_CPU" /usr/bin/time -f "%U %S" -o "$WORK/time.log" timeout -s KILL "$CLIENT_TIMEOUT" "$WORKER_BIN" run \
    --destination "$WORK/destination.yaml" --datum "$WORK/datum.yaml" --source "file://$source" \
    --dead-letter "file://$WORK/dead" --json-summary --progress never --package "peers-$RANDOM$RANDOM" "$@" \
    2>>"$WORK/worker.log" | tail -1 >"$WORK/summary.json"
}

run_benthos() {
  taskset -c "$CLIENT_CPU" /usr/bin/time -f "%U %S" -o "$WORK/time.log" \
    timeout -s KILL "$CLIENT_TIMEOUT" "$BENTHOS_BIN" run "$WORK/benthos.yaml" >>"$WORK/benthos.log" 2>&1
}

# wrk_round -> "rate cpu_per_100k connections"
wrk_round() {
  local out
  ACCEPTS_BEFORE=$(nginx_accepts)
  out=$(taskset -c "$CLIENT_CPU" /usr/bin/time -f "%U %S" -o "$WORK/time.log" \
    wrk -t1 -c64 "-d$DURATION" -s "$LUA" "http://127.0.0.1:$NGINX_PORT/ingest")
  echo "$out" >>"$WORK/wrk.log"
  echo "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out") $(cpu_per_100k "$(awk '/requests in/ {print $1}' <<<"$out")") $(connections)"
}

# courier_round -> "steady whole cpu_per_100k connections"
courier_round() {
  ACCEPTS_BEFORE=$(nginx_accepts)
  SAMPLE_URL="http://127.0.0.1:$METRICS_PORT/metrics"
  # shellcheck disable=SC2016 # an awk program
  SAMPLE_AWK='/^courier_worker_records_total\{.*outcome="sent"/ {print $2}'
  sample run_courier "http://127.0.0.1:$NGINX_PORT" 1000000 "$DATA" --metrics-addr "127.0.0.1:$METRICS_PORT"
  local summary sent
  summary=$(cat "$WORK/summary.json")
  sent=$(field "$summary" recordsSent)
  [ "$sent" = "$RECORDS" ] || log "warning: courier-worker sent $sent of $RECORDS"
  local steady whole
  steady=$(steady_rate); whole=$(field "$summary" ratePerSecond)
  if [ "$steady" = 0 ]; then log "courier-worker's run was too short for a steady rate: its whole-run rate stands in"; steady=$whole; fi
  echo "$steady $whole $(cpu_per_100k "$sent") $(connections)"
}

# benthos_round -> "steady whole cpu_per_100k connections"
benthos_round() {
  ACCEPTS_BEFORE=$(nginx_accepts)
  benthos_config "http://127.0.0.1:$NGINX_PORT" "$DATA"
  SAMPLE_URL="http://127.0.0.1:$BENTHOS_PORT/metrics"
  # json_api's keys carry labels: "output_sent{label=\"\",path=\"root.output\"}":N
  # shellcheck disable=SC2016 # an awk program
  SAMPLE_AWK='{ if (match($0, /"output_sent[^:]*:[0-9]+/)) { s = substr($0, RSTART, RLENGTH); sub(/.*:/, "", s); print s } }'
  local start end sent
  start=$(date +%s.%N)
  sample run_benthos
  end=$(date +%s.%N)
  sent=$(tail -1 "$WORK/samples" | cut -d' ' -f2)
  # The last sample can miss the final requests; the whole-run rate counts RECORDS (Benthos
  # exits once its input is done and every message is acknowledged).
  [ -n "$sent" ] || log "warning: no Benthos metrics sample"
  local steady whole
  steady=$(steady_rate); whole=$(awk -v n="$RECORDS" -v a="$start" -v b="$end" 'BEGIN{printf "%.0f", n/(b-a)}')
  if [ "$steady" = 0 ]; then log "Benthos's run was too short for a steady rate: its whole-run rate stands in"; steady=$whole; fi
  echo "$steady $whole $(cpu_per_100k "$RECORDS") $(connections)"
}

# limit_run CLIENT -> "achieved full_seconds busiest_all busiest_accepted 429_full_seconds 429_total"
# The client runs for LIMIT_SECONDS + 2 s and is then killed (SIGKILL: Benthos would go on sending
# for up to its shutdown_timeout of 20 s after a SIGTERM), so both runs last as long.
limit_run() {
  local client=$1 secs=$((LIMIT_SECONDS + 2)) src
  src="$WORK/limit.jsonl"
  head -n "$((LIMIT * (LIMIT_SECONDS + 5)))" "$LIMIT_DATA" >"$src"
  curl -s -X POST "http://127.0.0.1:$SIM_PORT/reset" >/dev/null
  case $client in
    courier)
      manifests "http://127.0.0.1:$SIM_PORT" "$LIMIT"
      rm -rf "$WORK/dead"
      taskset -c "$CLIENT_CPU" timeout -s KILL "$secs" "$WORKER_BIN" run \
        --destination "$WORK/destination.yaml" --datum "$WORK/datum.yaml" --source "file://$src" \
        --dead-letter "file://$WORK/dead" --json-summary --progress never --package "peers-$RANDOM$RANDOM" \
        >>"$WORK/worker.log" 2>&1 || true
      ;;
    benthos)
      benthos_config "http://127.0.0.1:$SIM_PORT" "$src" "$LIMIT"
      taskset -c "$CLIENT_CPU" timeout -s KILL "$secs" "$BENTHOS_BIN" run "$WORK/benthos.yaml" >>"$WORK/benthos.log" 2>&1 || true
      ;;
  esac
  sleep 1.2 # let the last second close in the partner's series
  local stats arrivals
  stats=$(curl -s "http://127.0.0.1:$SIM_PORT/stats")
  arrivals=$(curl -s "http://127.0.0.1:$SIM_PORT/arrivals")
  python3 - "$client" "$ROUND" "$WORK/limit.csv" "$stats" "$arrivals" "$LIMIT_SECONDS" <<'PY'
import json, sys
client, rnd, csv_path = sys.argv[1], sys.argv[2], sys.argv[3]
stats, arrivals = json.loads(sys.argv[4]), json.loads(sys.argv[5])
acc = stats["series"]["accepted"]
lim = stats["series"]["too_many_requests"]
busy = [i for i, (a, l) in enumerate(zip(acc, lim)) if a + l > 0]
# LIMIT_SECONDS full seconds from the first after the partial first one (fewer if the run was short)
first = busy[0] + 1
last = min(busy[-1], first + int(sys.argv[6]))
full = acc[first:last]
with open(csv_path, "a") as f:
    for second, (a, l) in enumerate(zip(acc[busy[0] : busy[-1] + 1], lim[busy[0] : busy[-1] + 1])):
        f.write("%s,%s,%d,%d,%d\n" % (client, rnd, second, a, l))
b = arrivals["busiest_second"]
print("%.0f %d %d %d %d %d" % (sum(full) / max(len(full), 1), len(full), b["all"], b["accepted"],
                                sum(lim[first:last]), sum(lim)))
PY
}

start_strict_sim() {
  taskset -c "$SINK_CPU" "$SIM_BIN" --listen "127.0.0.1:$SIM_PORT" --threads 1 \
    --rate "$LIMIT" --burst "$((LIMIT / 100))" >"$WORK/sim.log" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_port "$SIM_PORT"
}

main() {
  if [ "${1:-}" = build-benthos ]; then build_benthos; return; fi
  install_tools with-time
  build
  build_benthos
  rm -rf "$WORK/nginx" "$WORK"/*.log "$WORK"/*.csv; mkdir -p "$WORK"
  make_data "$RECORDS"
  local limit_records=$((LIMIT * (LIMIT_SECONDS + 5)))
  if [ "$limit_records" -gt "$RECORDS" ]; then
    local data=$DATA; make_data "$limit_records"; LIMIT_DATA=$DATA; DATA=$data
  else
    LIMIT_DATA=$DATA
  fi
  start_nginx "$SINK_CPU"
  start_strict_sim
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  taskset -c "$CLIENT_CPU" wrk -t1 -c64 -d1s -s "$LUA" "http://127.0.0.1:$NGINX_PORT/ingest" >/dev/null

  echo "client,round,the_partner_second,accepted,too_many_requests" >"$WORK/limit.csv"
  W=() WC=() WK=() N=() NW=() NC=() NK=() B=() BW=() BC=() BK=() L=()
  for ROUND in $(seq "$ROUNDS"); do
    local r w c k
    read -r r c k < <(wrk_round); W+=("$r"); WC+=("$c"); WK+=("$k")
    read -r r w c k < <(courier_round); N+=("$r"); NW+=("$w"); NC+=("$c"); NK+=("$k")
    read -r r w c k < <(benthos_round); B+=("$r"); BW+=("$w"); BC+=("$c"); BK+=("$k")
    log "round $ROUND into nginx: wrk ${W[-1]}/s (${WK[-1]} connections); courier-worker ${N[-1]}/s (whole run ${NW[-1]}/s, ${NK[-1]} connections); Benthos ${B[-1]}/s (whole run ${BW[-1]}/s, ${BK[-1]} connections)"
    for client in courier benthos; do
      L+=("$client $ROUND $(limit_run "$client")")
      # shellcheck disable=SC2086 # the fields of the row
      set -- ${L[-1]}
      log "round $ROUND at $LIMIT/s, $client: $3/s over $4 full seconds; busiest sliding second $5 requests ($6 accepted); 429s: $7 in those seconds, $8 in all"
    done
  done
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

  local w n b
  w=$(printf '%s\n' "${W[@]}" | median)
  n=$(printf '%s\n' "${N[@]}" | median)
  b=$(printf '%s\n' "${B[@]}" | median)
  # Ratios per round (each round measures the three back to back), then their median.
  local rn rb i
  rn=$(for i in "${!W[@]}"; do ratio "${N[$i]}" "${W[$i]}"; echo; done | median)
  rb=$(for i in "${!W[@]}"; do ratio "${B[$i]}" "${W[$i]}"; echo; done | median)
  THROUGHPUT="| client (core $CLIENT_CPU) into nginx \`return 200\` (core $SINK_CPU) | req/s (median) | of wrk (median of the rounds' ratios) | runs | whole run req/s (median) | CPU s per 100k requests (median) | TCP connections nginx accepted (median) |
|---|---|---|---|---|---|---|
| wrk -t1 -c64, $DURATION | $w | 100% | ${W[*]} | | $(printf '%s\n' "${WC[@]}" | median) | $(printf '%s\n' "${WK[@]}" | median) |
| courier-worker run, 64 in flight | $n | $rn% | ${N[*]} | $(printf '%s\n' "${NW[@]}" | median) | $(printf '%s\n' "${NC[@]}" | median) | $(printf '%s\n' "${NK[@]}" | median) |
| Benthos $BENTHOS_VERSION, file → http_client, 64 in flight | $b | $rb% | ${B[*]} | $(printf '%s\n' "${BW[@]}" | median) | $(printf '%s\n' "${BC[@]}" | median) | $(printf '%s\n' "${BK[@]}" | median) |"
  echo "$THROUGHPUT"

  LIMITS="| client at $LIMIT/s into partner-sim --rate $LIMIT --burst $((LIMIT / 100)) | achieved req/s (median of rounds; mean of full seconds) | of the limit | busiest sliding second, all requests (max of rounds) | busiest sliding second, accepted | 429s in the full seconds | 429s in the whole run | rounds: achieved / busiest all / 429s whole run |
|---|---|---|---|---|---|---|---|"
  local client label
  for client in courier benthos; do
    label="courier-worker, Destination rateLimit $LIMIT/s burst $((LIMIT / 100)), 64 in flight"
    [ "$client" = benthos ] && label="Benthos $BENTHOS_VERSION, \`local\` rate_limit count $LIMIT / 1s, 64 in flight"
    local rows
    rows=$(printf '%s\n' "${L[@]}" | awk -v c="$client" '$1 == c')
    local ach all acc l_full l_all runs
    ach=$(awk '{print $3}' <<<"$rows" | median)
    all=$(awk '{print $5}' <<<"$rows" | sort -g | tail -1)
    acc=$(awk '{print $6}' <<<"$rows" | sort -g | tail -1)
    l_full=$(awk '{print $7}' <<<"$rows" | median)
    l_all=$(awk '{print $8}' <<<"$rows" | median)
    runs=$(awk '{printf "%s%s / %s / %s", (NR > 1 ? "; " : ""), $3, $5, $8}' <<<"$rows")
    LIMITS+="
| $label | $ach | $(awk -v a="$ach" -v r="$LIMIT" 'BEGIN{printf "%.1f%%", 100*a/r}') | $all | $acc | $l_full | $l_all | $runs |"
  done
  echo "$LIMITS"

  write_csv
  write_report
}

# docs/data/peers.csv: one row per round, client and measure.
write_csv() {
  local i
  mkdir -p "$(dirname "$CSV")"
  {
    echo "test,client,round,measure,value"
    for i in "${!W[@]}"; do
      echo "throughput nginx,wrk -t1 -c64,$((i + 1)),requests_per_second,${W[$i]}"
      echo "throughput nginx,wrk -t1 -c64,$((i + 1)),cpu_seconds_per_100k,${WC[$i]}"
      echo "throughput nginx,wrk -t1 -c64,$((i + 1)),connections,${WK[$i]}"
      echo "throughput nginx,courier-worker,$((i + 1)),requests_per_second,${N[$i]}"
      echo "throughput nginx,courier-worker,$((i + 1)),whole_run_requests_per_second,${NW[$i]}"
      echo "throughput nginx,courier-worker,$((i + 1)),cpu_seconds_per_100k,${NC[$i]}"
      echo "throughput nginx,courier-worker,$((i + 1)),connections,${NK[$i]}"
      echo "throughput nginx,benthos $BENTHOS_VERSION,$((i + 1)),requests_per_second,${B[$i]}"
      echo "throughput nginx,benthos $BENTHOS_VERSION,$((i + 1)),whole_run_requests_per_second,${BW[$i]}"
      echo "throughput nginx,benthos $BENTHOS_VERSION,$((i + 1)),cpu_seconds_per_100k,${BC[$i]}"
      echo "throughput nginx,benthos $BENTHOS_VERSION,$((i + 1)),connections,${BK[$i]}"
    done
    printf '%s\n' "${L[@]}" | awk -v v="$BENTHOS_VERSION" -v lim="$LIMIT" '{
      c = ($1 == "courier") ? "courier-worker" : "benthos " v
      t = "limit " lim " strict partner"
      printf "%s,%s,%s,achieved_requests_per_second,%s\n", t, c, $2, $3
      printf "%s,%s,%s,full_seconds,%s\n", t, c, $2, $4
      printf "%s,%s,%s,busiest_sliding_second_all,%s\n", t, c, $2, $5
      printf "%s,%s,%s,busiest_sliding_second_accepted,%s\n", t, c, $2, $6
      printf "%s,%s,%s,429s_full_seconds,%s\n", t, c, $2, $7
      printf "%s,%s,%s,429s_whole_run,%s\n", t, c, $2, $8 }'
  } >"$CSV"
  cp "$WORK/limit.csv" "$(dirname "$CSV")/peers-limit-seconds.csv"
  log "wrote $CSV and $(dirname "$CSV")/peers-limit-seconds.csv"
}

# The section between the markers in docs/benchmarks.md (appended when they are missing).
write_report() {
  local cpu section
  cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
  section=$(
    cat <<DOC
<!-- peers.sh: begin (written by e2e/bench/peers.sh; edits between these markers are lost) -->
## Peers in the same run

Produced by \`e2e/bench/peers.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) (ROUNDS=$ROUNDS, DURATION=$DURATION, RECORDS=$RECORDS,
LIMIT=$LIMIT, LIMIT_SECONDS=$LIMIT_SECONDS). Machine: $(nproc) cores ($cpu), $(uname -sr).
Load average before: $LOAD_BEFORE, after: $LOAD_AFTER (other work shares both cores; compare within a run).
Versions: courier-worker $("$WORKER_BIN" --version 2>/dev/null | awk '{print $NF}') at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown),
Benthos $BENTHOS_VERSION ($(cat "$(dirname "$BENTHOS_BIN")/build.txt" 2>/dev/null || echo "prebuilt")),
wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), $(nginx -v 2>&1 | sed 's/.*: //'), partner-sim $("$SIM_BIN" --version 2>/dev/null | awk '{print $NF}').

Input: $RECORDS JSON lines of ~256 B in a local file, one POST per line. Each round runs wrk, courier-worker
and Benthos back to back, so their ratios are what the machine's load moves least.

**Unbounded, into nginx \`return 200\`.** Client pinned to core $CLIENT_CPU, nginx to core $SINK_CPU.
wrk posts ~256 B bodies with an Idempotency-Key (\`worker/bench/post256.lua\`) for $DURATION. courier-worker and
Benthos deliver the whole file; their req/s is in steady state, read from their own metrics every 0.5 s
(courier-worker's \`/metrics\`, Benthos's \`json_api\` \`output_sent\`), start-up and the drain left out as
wrk's rate leaves out connecting. CPU is user + system of the client process (\`/usr/bin/time\`) over its
whole run per 100k requests. The last column is how many TCP connections nginx accepted during the client's run
(its \`stub_status\`): Benthos's \`http_client\` uses Go's default transport, which keeps at most 2 idle connections
per host, so at 64 in flight most of its requests open a new connection — its default, which its config does
not expose; it is left as it is.

$THROUGHPUT

**At a strict partner, $LIMIT/s.** partner-sim \`--rate $LIMIT --burst $((LIMIT / 100)) --threads 1\` on core $SINK_CPU
(a token bucket: a request beyond it is answered 429), the client on core $CLIENT_CPU. Each client runs for
LIMIT_SECONDS + 2 s and is then killed. Achieved: the mean of the partner's accepted requests per second over
LIMIT_SECONDS full seconds, from the first after the partial first one. A client whose unbounded rate above is
below the limit shows its throughput here, not its limiter. Benthos's \`local\` rate limit is a fixed window
(\`count\` requests, then a wait for the next \`interval\`), and it answers a 429 by retrying that request
inside the output's send, holding one of its 64 in-flight slots, after a wait from a throttle that the whole
output shares (\`retry_period\` 1 s, doubled on each further 429 up to \`max_retry_backoff\` 300 s, reset by a
success): a few 429s can slow all of it. Busiest sliding second: the most requests the partner saw arrive in any 1 s window (its arrivals log,
\`GET /arrivals\`), whole run. 429s: what the partner answered, in the full seconds and in the whole run.
Per-second series: \`docs/data/peers-limit-seconds.csv\`.

$LIMITS

Knobs set. courier-worker: its Destination (\`rateLimit: {requestsPerSecond: $LIMIT, burst: $((LIMIT / 100))}\` — the
partner's limits — and \`maxInFlightPerWorker: 64\`; unbounded runs use requestsPerSecond 1000000). Benthos
(\`$WORK/benthos.yaml\`): the URL; \`verb: POST\` and \`max_in_flight: 64\`, both its defaults; the headers
\`Content-Type: application/json\` and \`Idempotency-Key: \${! uuid_v4() }\`, as courier-worker sends;
\`http.address\` on 127.0.0.1:$BENTHOS_PORT instead of 0.0.0.0:4195; \`metrics: json_api\` (default \`none\`) to read
its sent count; at the partner, a \`local\` rate_limit resource of \`count: $LIMIT\`, \`interval: 1s\` on the output —
Benthos's own knob for a rate limit. Everything else is its default: the \`lines\` scanner, batching off
(one message per request), \`retries: 3\` with \`backoff_on: [429]\` from \`retry_period: 1s\`, \`auto_replay_nacks\`
(a message whose retries are spent is read again), \`timeout: 5s\`, logger at INFO. Nothing is set below a default.

Benthos is built from the Go module proxy once and cached at \`~/.cache/courier/benthos-<version>/benthos\`
(a main that imports \`public/service\`, \`public/components/io\` and \`public/components/pure\`; the build time
is in \`build.txt\` next to it).

Reproduce: \`e2e/bench/peers.sh\` (about 10 minutes for 3 rounds on 2 cores — most of it Benthos delivering RECORDS —, plus 1–2 minutes for the first Benthos
build; needs Go ≥ the module's \`go\` line and the Go module proxy). Env: ROUNDS, DURATION, RECORDS, LIMIT,
LIMIT_SECONDS, CLIENT_TIMEOUT, CLIENT_CPU, SINK_CPU, the ports NGINX_PORT/SIM_PORT/METRICS_PORT/BENTHOS_PORT (18097–18100; worker/bench/protocols.sh has 18093–18096),
BENTHOS_VERSION, BENTHOS_BIN, SKIP_BUILD. Raw output: \`$WORK/\` (wrk.log, worker.log, benthos.log).
All rows: \`docs/data/peers.csv\`.
<!-- peers.sh: end -->
DOC
  )
  python3 - "$REPORT" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pattern = re.compile(r"<!-- peers\.sh: begin.*?<!-- peers\.sh: end -->", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
  log "wrote the peers section of $REPORT"
}

main "$@"
