#!/usr/bin/env bash
# courier-worker throughput, limit accuracy and memory (not a test: numbers, not pass/fail).
#
#   worker/bench/worker.sh                    # full run (~5 min)
#   ROUNDS=1 DURATION=5s RECORDS=500000 worker/bench/worker.sh
#   SKIP_BUILD=1 worker/bench/worker.sh       # use the release binaries already built
#   BASELINE_BIN=/path/to/older/courier-worker worker/bench/worker.sh
#                                             # also measure an older build in the same rounds
#                                             # (BASELINE_LABEL names it in the table)
#
# 1. Throughput on one core: courier-worker pinned to core 0, the sink (nginx `return 200`,
#    then partner-sim --threads 1) pinned to core 1. wrk -t1 -c64 (on core 0, POSTing ~256 B
#    bodies) against the same sink is the yardstick. Goal: courier-worker >= 85% of wrk.
# 2. Limit accuracy at 1k, 10k and 50k requests/s, read from partner-sim's per-second series:
#    achieved rate within +-2%, per-second coefficient of variation < 5%.
# 3. Peak RSS (/usr/bin/time -v) at 256 requests in flight. Goal <= 64 MiB.
# Prints tables and writes docs/benchmarks-worker.md. Leaves no process behind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COURIER_STATE=${COURIER_STATE:-/tmp/courier-e2e}
WORK="$COURIER_STATE/bench-worker"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
RECORDS=${RECORDS:-1000000}
LIMIT_SECONDS=${LIMIT_SECONDS:-10}
LIMITS=${LIMITS:-"1000 10000 50000"}
NGINX_PORT=${NGINX_PORT:-18090}
SIM_PORT=${SIM_PORT:-18091}
METRICS_PORT=${METRICS_PORT:-18092}
WORKER_CPU=${WORKER_CPU:-0}
SINK_CPU=${SINK_CPU:-1}
REPORT="$ROOT/docs/benchmarks-worker.md"
# The measurements behind the report's tables (CSV) and its plots (PNG, e2e/bench/plot.py).
DATA_DIR="$ROOT/docs/data"
IMG_DIR="$ROOT/docs/img"
PLOT_PYTHON=${PLOT_PYTHON:-/usr/bin/python3}
LUA="$ROOT/worker/bench/post256.lua"

# shellcheck source=e2e/bench/lib.sh
source "$ROOT/e2e/bench/lib.sh"

build() {
  WORKER_BIN="$ROOT/target/release/courier-worker"
  SIM_BIN="$ROOT/target/release/partner-sim"
  if [ -n "${SKIP_BUILD:-}" ] && [ -x "$WORKER_BIN" ] && [ -x "$SIM_BIN" ]; then return 0; fi
  log "building courier-worker and partner-sim (release)"
  (cd "$ROOT" && cargo build --release -q -p courier-worker --bin courier-worker -p courier-e2e --bin partner-sim)
}

make_data() {
  DATA="$WORK/data-$RECORDS.jsonl"
  [ -s "$DATA" ] && return 0
  log "writing $RECORDS JSON lines of ~256 B"
  python3 - "$DATA" "$RECORDS" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
pad = "x" * 190
with open(path, "w") as f:
    for i in range(n):
        f.write('{"id":%d,"email":"user%d@example.com","segment":"gold","pad":"%s"}\n' % (i, i, pad[: 190 - len(str(i)) * 2]))
PY
}

manifests() { # URL MAX_IN_FLIGHT RPS
  cat >"$WORK/destination.yaml" <<YAML
apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: {name: bench}
spec:
  endpoint: {url: "$1/ingest", httpVersion: Http1}
  rateLimit: {requestsPerSecond: $3}
  workers: {maxInFlightPerWorker: $2}
YAML
  cat >"$WORK/datum.yaml" <<YAML
apiVersion: courier.dev/v1alpha1
kind: Datum
metadata: {name: bench}
spec:
  format: {type: JsonLines}
YAML
}

# run_worker URL IN_FLIGHT SOURCE [extra flags] -> JSON summary on stdout; /usr/bin/time in $WORK/time.log
run_worker() {
  local url=$1 inflight=$2 source=$3; shift 3
  manifests "$url" "$inflight" 1000000
  rm -rf "$WORK/dead"
  taskset -c "$WORKER_CPU" /usr/bin/time -v -o "$WORK/time.log" "${BIN:-$WORKER_BIN}" run \
    --destination "$WORK/destination.yaml" --datum "$WORK/datum.yaml" --source "file://$source" \
    --dead-letter "file://$WORK/dead" --json-summary --progress never --package "bench-$RANDOM$RANDOM" "$@" \
    2>>"$WORK/worker.log" | tail -1
}

# throughput_run URL -> "whole-run-rate steady-rate peak-rss-mib": a run at 64 in flight whose
# /metrics is sampled every 0.5 s (from the sink's core), so that the steady rate can leave out
# start-up and the drain at the end, as wrk's rate does.
throughput_run() {
  local url=$1 summary sampler
  : >"$WORK/samples"
  (
    while sleep 0.5; do
      v=$(taskset -c "$SINK_CPU" curl -s --max-time 0.4 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null |
        awk '/^courier_worker_records_total\{.*outcome="sent"/ {print $2}')
      [ -n "$v" ] && echo "$(date +%s.%N) $v" >>"$WORK/samples"
    done
  ) &
  sampler=$!
  summary=$(run_worker "$url" 64 "$DATA" --metrics-addr "127.0.0.1:$METRICS_PORT")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  echo "$(field "$summary" ratePerSecond) $(steady_rate) $(peak_rss_mib)"
}

# Records/s between the second and the second-to-last sample of $WORK/samples.
steady_rate() {
  awk 'NR > 1 { t[++n] = $1; v[n] = $2 }
       END { if (n < 3) { print 0; exit } printf "%.1f\n", (v[n-1] - v[1]) / (t[n-1] - t[1]) }' "$WORK/samples"
}

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
peak_rss_mib() { awk -F': ' '/Maximum resident/ {printf "%.1f", $2 / 1024}' "$WORK/time.log"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# ratios YARDSTICK MEASURED: per round, 100 x MEASURED / YARDSTICK (names of arrays in main).
ratios() {
  local -n base=$1 got=$2
  local i
  for i in "${!base[@]}"; do awk -v a="${got[$i]}" -v b="${base[$i]}" 'BEGIN{printf "%.1f\n", 100*a/b}'; done
}

wrk_rate() { # PORT
  local out
  out=$(taskset -c "$WORKER_CPU" wrk -t1 -c64 "-d$DURATION" -s "$LUA" "http://127.0.0.1:$1/ingest")
  echo "$out" >>"$WORK/wrk.log"
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}

# limit_run RATE -> "achieved cv_percent seconds"
limit_run() {
  local rate=$1 n src summary
  n=$((rate * LIMIT_SECONDS))
  src="$WORK/limit-$n.jsonl"
  head -n "$n" "$DATA" >"$src"
  curl -s -X POST "http://127.0.0.1:$SIM_PORT/reset" >/dev/null
  summary=$(run_worker "http://127.0.0.1:$SIM_PORT" 256 "$src" --rate-override "$rate")
  echo "$summary" >>"$WORK/limit.log"
  curl -s "http://127.0.0.1:$SIM_PORT/stats" | python3 -c '
import json, statistics, sys
rate, csv_path = int(sys.argv[1]), sys.argv[2]
s = json.load(sys.stdin)["series"]["accepted"]
busy = [i for i, v in enumerate(s) if v > 0]
full = s[busy[0] + 1 : busy[-1]]  # drop the partial first and last seconds
with open(csv_path, "a") as f:
    for second, accepted in enumerate(full, start=1):
        f.write("%d,%d,%d\n" % (rate, second, accepted))
mean = statistics.mean(full)
cv = 100 * statistics.pstdev(full) / mean
print("%.0f %.2f %d" % (mean, cv, len(full)))' "$rate" "$WORK/rate.csv"
}

# throughput_csv: one row per round and client, for the plot.
throughput_csv() {
  local i
  echo "sink,client,round,requests_per_second"
  for i in "${!W[@]}"; do
    echo "nginx return 200,wrk -t1 -c64,$((i + 1)),${W[$i]}"
    echo "nginx return 200,courier-worker,$((i + 1)),${N[$i]}"
    echo "partner-sim --threads 1,wrk -t1 -c64,$((i + 1)),${WS[$i]}"
    echo "partner-sim --threads 1,courier-worker,$((i + 1)),${S[$i]}"
    if [ ${#BN[@]} -gt 0 ]; then
      echo "nginx return 200,${BASELINE_LABEL:-baseline},$((i + 1)),${BN[$i]}"
      echo "partner-sim --threads 1,${BASELINE_LABEL:-baseline},$((i + 1)),${BS[$i]}"
    fi
  done
}

# plots: the CSVs into docs/data, the PNGs into docs/img.
plots() {
  mkdir -p "$DATA_DIR" "$IMG_DIR"
  throughput_csv >"$DATA_DIR/worker-throughput.csv"
  cp "$WORK/rate.csv" "$DATA_DIR/worker-rate.csv"
  "$PLOT_PYTHON" "$ROOT/e2e/bench/plot.py" throughput "$DATA_DIR/worker-throughput.csv" "$IMG_DIR/worker-throughput.png"
  "$PLOT_PYTHON" "$ROOT/e2e/bench/plot.py" rate "$DATA_DIR/worker-rate.csv" "$IMG_DIR/worker-rate.png"
  log "wrote $IMG_DIR/worker-throughput.png and $IMG_DIR/worker-rate.png"
}

main() {
  install_tools with-time
  build
  rm -rf "$WORK/nginx" "$WORK"/*.log; mkdir -p "$WORK"
  make_data
  start_nginx "$SINK_CPU"
  start_sim "$SINK_CPU"
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  taskset -c "$WORKER_CPU" wrk -t1 -c64 -d1s -s "$LUA" "http://127.0.0.1:$NGINX_PORT/ingest" >/dev/null

  W=() WS=() N=() NW=() S=() SW=() NR=() SR=() BN=() BS=()
  for round in $(seq "$ROUNDS"); do
    W+=("$(wrk_rate "$NGINX_PORT")")
    WS+=("$(wrk_rate "$SIM_PORT")")
    local whole steady rss
    read -r whole steady rss < <(throughput_run "http://127.0.0.1:$NGINX_PORT")
    NW+=("$whole"); N+=("$steady"); NR+=("$rss")
    read -r whole steady rss < <(throughput_run "http://127.0.0.1:$SIM_PORT")
    SW+=("$whole"); S+=("$steady"); SR+=("$rss")
    log "round $round: wrk ${W[-1]}/s into nginx, ${WS[-1]}/s into partner-sim; courier-worker ${N[-1]}/s (whole run ${NW[-1]}/s) into nginx, ${S[-1]}/s (whole run ${SW[-1]}/s) into partner-sim"
    if [ -n "${BASELINE_BIN:-}" ]; then
      read -r whole steady rss < <(BIN=$BASELINE_BIN throughput_run "http://127.0.0.1:$NGINX_PORT")
      BN+=("$steady")
      read -r whole steady rss < <(BIN=$BASELINE_BIN throughput_run "http://127.0.0.1:$SIM_PORT")
      BS+=("$steady")
      log "round $round: baseline ${BN[-1]}/s into nginx, ${BS[-1]}/s into partner-sim"
    fi
  done
  local w ws n s nw sw rn rs
  w=$(printf '%s\n' "${W[@]}" | median); ws=$(printf '%s\n' "${WS[@]}" | median)
  n=$(printf '%s\n' "${N[@]}" | median); s=$(printf '%s\n' "${S[@]}" | median)
  nw=$(printf '%s\n' "${NW[@]}" | median); sw=$(printf '%s\n' "${SW[@]}" | median)
  # Each round measures wrk and courier-worker back to back, so their ratio is what is least
  # moved by the load of the machine; the median of the rounds' ratios is the result.
  rn=$(ratios W N | median); rs=$(ratios WS S | median)
  local throughput="| client (core $WORKER_CPU) | sink (core $SINK_CPU) | req/s (median) | of wrk into the same sink (median of the rounds' ratios) | runs | whole run req/s (median) | peak RSS MiB |
|---|---|---|---|---|---|---|
| wrk -t1 -c64 | nginx return 200 | $w | 100% | ${W[*]} | | |
| courier-worker run, 64 in flight | nginx return 200 | $n | $rn% ($(ratios W N | tr '\n' ' ')) | ${N[*]} | $nw (${NW[*]}) | ${NR[*]} |
| wrk -t1 -c64 | partner-sim --threads 1 | $ws | 100% | ${WS[*]} | | |
| courier-worker run, 64 in flight | partner-sim --threads 1 | $s | $rs% ($(ratios WS S | tr '\n' ' ')) | ${S[*]} | $sw (${SW[*]}) | ${SR[*]} |"
  if [ ${#BN[@]} -gt 0 ]; then
    throughput+="
| ${BASELINE_LABEL:-baseline}, 64 in flight | nginx return 200 | $(printf '%s\n' "${BN[@]}" | median) | $(ratios W BN | median)% ($(ratios W BN | tr '\n' ' ')) | ${BN[*]} | | |
| ${BASELINE_LABEL:-baseline}, 64 in flight | partner-sim --threads 1 | $(printf '%s\n' "${BS[@]}" | median) | $(ratios WS BS | median)% ($(ratios WS BS | tr '\n' ' ')) | ${BS[*]} | | |"
  fi
  echo "$throughput"

  echo "limit,second,accepted" >"$WORK/rate.csv"
  local limits="| limit req/s | achieved req/s (mean of full seconds) | error | per-second CV | full seconds |
|---|---|---|---|---|"
  for rate in $LIMITS; do
    read -r achieved cv secs < <(limit_run "$rate")
    log "limit $rate: $achieved/s, CV $cv% over $secs s"
    limits+="
| $rate | $achieved | $(awk -v a="$achieved" -v r="$rate" 'BEGIN{printf "%+.2f%%", 100*(a-r)/r}') | $cv% | $secs |"
  done
  echo "$limits"

  local rss_summary rss
  rss_summary=$(run_worker "http://127.0.0.1:$NGINX_PORT" 256 "$DATA")
  rss=$(peak_rss_mib)
  local memory="| in flight | records | req/s | peak RSS |
|---|---|---|---|
| 256 | $(field "$rss_summary" recordsSent) | $(field "$rss_summary" ratePerSecond) | $rss MiB |"
  echo "$memory"
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

  plots
  local cpu
  cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
  mkdir -p "$(dirname "$REPORT")"
  {
    echo "# courier-worker benchmarks"
    echo
    echo "Produced by \`worker/bench/worker.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) (ROUNDS=$ROUNDS, DURATION=$DURATION, RECORDS=$RECORDS)."
    echo
    echo "Machine: $(nproc) cores ($cpu), $(uname -sr). Load average before: $LOAD_BEFORE, after: $LOAD_AFTER"
    echo "(other engineers' builds and tests share both cores, so absolute numbers move between runs)."
    echo
    echo "## Throughput on one core"
    echo
    echo "courier-worker (or wrk) pinned to core $WORKER_CPU, the sink pinned to core $SINK_CPU. Input: $RECORDS JSON lines"
    echo "of ~256 B in a local file; each becomes one POST with an Idempotency-Key. wrk posts a body of the same size"
    echo "(\`worker/bench/post256.lua\`) for $DURATION. courier-worker's rate is records acknowledged per second in steady"
    echo "state, read from its own /metrics every 0.5 s (start-up and the drain of the last requests left out, as wrk's"
    echo "rate leaves out connecting); its rate over the whole run is in the next-to-last column."
    echo
    echo "$throughput"
    echo
    echo "![Requests per second of wrk and courier-worker into each sink, by round](img/worker-throughput.png)"
    echo
    echo "## Rate-limit accuracy"
    echo
    echo "courier-worker --rate-override R on core $WORKER_CPU, 256 in flight, R x $LIMIT_SECONDS records, into partner-sim"
    echo "(no limit of its own) on core $SINK_CPU. Achieved rate and coefficient of variation over the simulator's"
    echo "per-second accepted counts, first and last (partial) seconds dropped. Goal: within +-2%, CV < 5%."
    echo
    echo "$limits"
    echo
    echo "![Per-second accepted requests as a percentage of each limit](img/worker-rate.png)"
    echo
    echo "The measurements behind both plots: \`docs/data/worker-throughput.csv\`, \`docs/data/worker-rate.csv\`."
    echo
    echo "## Memory"
    echo
    echo "Peak resident set (/usr/bin/time -v) of a full run at 256 requests in flight into nginx. Goal <= 64 MiB."
    echo
    echo "$memory"
  } >"$REPORT.new"
  if [ -f "$REPORT" ] && grep -q '^## Analysis' "$REPORT"; then
    sed -n '/^## Analysis/,$p' "$REPORT" >>"$REPORT.new"
  fi
  mv "$REPORT.new" "$REPORT"
  log "wrote $REPORT"
}

main "$@"
