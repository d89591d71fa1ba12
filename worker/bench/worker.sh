#!/usr/bin/env bash
# courier-worker throughput, limit accuracy and memory (not a test: numbers, not pass/fail).
#
#   worker/bench/worker.sh                    # full run (~4-5 min on a quiet machine)
#   ROUNDS=1 DURATION=5s RECORDS=500000 worker/bench/worker.sh
#   REPORT=/tmp/w.md DATA_DIR=/tmp/d IMG_DIR=/tmp/d worker/bench/worker.sh   # leave docs/ alone
#   SKIP_BUILD=1 worker/bench/worker.sh       # use the release binaries already built
#   BASELINE_BIN=/path/to/older/courier-worker worker/bench/worker.sh
#                                             # also measure an older build in the same rounds
#                                             # (BASELINE_LABEL names it in the table; with
#                                             # BASELINE_DATUM=sample it runs the sample Datum)
#
# 1. Throughput on one core: courier-worker pinned to core 0, the sink (nginx `return 200`,
#    then partner-sim --threads 1) pinned to core 1. wrk -t1 -c64 (on core 0, POSTing ~256 B
#    bodies) against the same sink is the yardstick. Goal: courier-worker >= 85% of wrk.
#    courier-worker runs with a Datum without templates and with the sample Datum (path
#    template /v1/users/{{ id }} and one header template), each against wrk in the same round.
#    Every row shows the sink's CPU share over the measured interval (/proc/PID/stat): above
#    90 % of its core the row is marked sink-bound (the ratio then says little), and the
#    client's CPU time per request. HTTPS and HTTP/2: worker/bench/protocols.sh.
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
REPORT=${REPORT:-$ROOT/docs/benchmarks-worker.md}
# The measurements behind the report's tables (CSV) and its plots (PNG, e2e/bench/plot.py).
DATA_DIR=${DATA_DIR:-$ROOT/docs/data}
IMG_DIR=${IMG_DIR:-$ROOT/docs/img}
PLOT_PYTHON=${PLOT_PYTHON:-/usr/bin/python3}

# shellcheck source=worker/bench/lib.sh
source "$ROOT/worker/bench/lib.sh"

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
  local i r
  echo "sink,client,round,requests_per_second"
  for i in "${!W[@]}"; do
    r=$((i + 1))
    echo "nginx return 200,wrk -t1 -c64,$r,${W[$i]}"
    echo "nginx return 200,courier-worker,$r,${N[$i]}"
    echo "nginx return 200,courier-worker (sample Datum),$r,${T[$i]}"
    echo "partner-sim --threads 1,wrk -t1 -c64,$r,${WS[$i]}"
    echo "partner-sim --threads 1,courier-worker,$r,${S[$i]}"
    echo "partner-sim --threads 1,courier-worker (sample Datum),$r,${TS[$i]}"
    if [ ${#BN[@]} -gt 0 ]; then
      echo "nginx return 200,${BASELINE_LABEL:-baseline},$r,${BN[$i]}"
      echo "partner-sim --threads 1,${BASELINE_LABEL:-baseline},$r,${BS[$i]}"
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
  local nginx="http://127.0.0.1:$NGINX_PORT" sim="http://127.0.0.1:$SIM_PORT"
  DURATION=1s wrk_rate "$nginx" "$NGINX_PID" >/dev/null

  # Per round: wrk into each sink, then courier-worker with the plain Datum and with the sample
  # Datum into each, back to back. Arrays: rate, sink CPU % (…C), client CPU us/request (…U),
  # whole-run rate (…W), peak RSS (…R).
  W=() WC=() WB=() WU=() WS=() WSC=() WSB=() WSU=() BN=() BS=() BNC=() BNB=() BSC=() BSB=() BNU=() BSU=()
  N=() NC=() NB=() NU=() NW=() NR=() T=() TC=() TB=() TU=() TW=() TR=()
  S=() SC=() SB=() SU=() SW=() SR=() TS=() TSC=() TSB=() TSU=() TSW=() TSR=()
  local rate share busy cpu whole steady rss
  for round in $(seq "$ROUNDS"); do
    read -r rate share busy cpu < <(wrk_rate "$nginx" "$NGINX_PID"); W+=("$rate"); WC+=("$share"); WB+=("$busy"); WU+=("$cpu")
    read -r rate share busy cpu < <(wrk_rate "$sim" "$SIM_PID"); WS+=("$rate"); WSC+=("$share"); WSB+=("$busy"); WSU+=("$cpu")
    read -r whole steady rss share busy cpu < <(throughput_run "$nginx" "$NGINX_PID")
    NW+=("$whole"); N+=("$steady"); NR+=("$rss"); NC+=("$share"); NB+=("$busy"); NU+=("$cpu")
    read -r whole steady rss share busy cpu < <(DATUM=sample throughput_run "$nginx" "$NGINX_PID")
    TW+=("$whole"); T+=("$steady"); TR+=("$rss"); TC+=("$share"); TB+=("$busy"); TU+=("$cpu")
    read -r whole steady rss share busy cpu < <(throughput_run "$sim" "$SIM_PID")
    SW+=("$whole"); S+=("$steady"); SR+=("$rss"); SC+=("$share"); SB+=("$busy"); SU+=("$cpu")
    read -r whole steady rss share busy cpu < <(DATUM=sample throughput_run "$sim" "$SIM_PID")
    TSW+=("$whole"); TS+=("$steady"); TSR+=("$rss"); TSC+=("$share"); TSB+=("$busy"); TSU+=("$cpu")
    log "round $round: into nginx: wrk ${W[-1]}/s (nginx CPU ${WC[-1]}%), courier-worker ${N[-1]}/s (${NC[-1]}%), with the sample Datum ${T[-1]}/s (${TC[-1]}%)"
    log "round $round: into partner-sim: wrk ${WS[-1]}/s (sim CPU ${WSC[-1]}%), courier-worker ${S[-1]}/s (${SC[-1]}%), with the sample Datum ${TS[-1]}/s (${TSC[-1]}%)"
    if [ -n "${BASELINE_BIN:-}" ]; then
      read -r whole steady rss share busy cpu < <(DATUM=${BASELINE_DATUM:-plain} BIN=$BASELINE_BIN throughput_run "$nginx" "$NGINX_PID")
      BN+=("$steady"); BNC+=("$share"); BNB+=("$busy"); BNU+=("$cpu")
      read -r whole steady rss share busy cpu < <(DATUM=${BASELINE_DATUM:-plain} BIN=$BASELINE_BIN throughput_run "$sim" "$SIM_PID")
      BS+=("$steady"); BSC+=("$share"); BSB+=("$busy"); BSU+=("$cpu")
      log "round $round: baseline ${BN[-1]}/s into nginx, ${BS[-1]}/s into partner-sim"
    fi
  done
  # Each round measures wrk and courier-worker back to back, so their ratio is what is least
  # moved by the load of the machine; the median of the rounds' ratios is the result.
  local wk="wrk -t1 -c64" cw="courier-worker run, 64 in flight" ng="nginx return 200" ps="partner-sim --threads 1"
  local throughput
  throughput="| client (core $WORKER_CPU) | sink (core $SINK_CPU) | req/s (median) | of wrk into the same sink (median of the rounds' ratios) | runs | sink CPU % of its core (runs) | cores busy %, client/sink (runs) | client CPU us/request (median) | whole run req/s (median) | peak RSS MiB |
|---|---|---|---|---|---|---|---|---|---|
$(row "$wk" "$ng" W W WC WB WU)
$(row "$cw, plain Datum" "$ng" N W NC NB NU NW NR)
$(row "$cw, sample Datum" "$ng" T W TC TB TU TW TR)
$(row "$wk" "$ps" WS WS WSC WSB WSU)
$(row "$cw, plain Datum" "$ps" S WS SC SB SU SW SR)
$(row "$cw, sample Datum" "$ps" TS WS TSC TSB TSU TSW TSR)"
  if [ ${#BN[@]} -gt 0 ]; then
    throughput+="
$(row "${BASELINE_LABEL:-baseline}, 64 in flight" "$ng" BN W BNC BNB BNU)
$(row "${BASELINE_LABEL:-baseline}, 64 in flight" "$ps" BS WS BSC BSB BSU)"
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
  local memory
  memory="| in flight | records | req/s | peak RSS |
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
    echo "rate leaves out connecting); its rate over the whole run is in the next-to-last column. \"plain\" is a Datum"
    echo "without templates (the JSON line is the body as-is); \"sample Datum\" is config/samples/datum.yaml's \`users\`"
    echo "(path template \`/v1/users/{{ id }}\`, header \`X-Segment: \"{{ segment }}\"\`, contentType)."
    echo
    echo "nginx: one process pinned to its core, access log off, \`keepalive_requests 10000000\`, \`reuseport\`,"
    echo "\`client_body_buffer_size 16k\` (e2e/bench/lib.sh). Sink CPU: the sink process's utime+stime over the measured"
    echo "interval (wrk's run; courier-worker's steady window) as % of one core; a row whose sink used more than 90 %"
    echo "is marked **sink-bound**: its ratio to wrk measures the sink, not the client. Cores busy: how much of the"
    echo "client's and the sink's core anything used over the same interval (/proc/stat); well above the sink's own"
    echo "share (or above the client's CPU per request x its rate), other work took that core. Client CPU: user+system"
    echo "time of the whole run (/usr/bin/time) per request, in microseconds."
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
    echo "HTTPS and HTTP/2 (wrk over TLS, h2load over h2 and h2c): [benchmarks-worker-protocols.md](benchmarks-worker-protocols.md)."
    echo
    echo "## Memory"
    echo
    echo "Peak resident set (/usr/bin/time -v) of a full run at 256 requests in flight into nginx. Goal <= 64 MiB."
    echo
    echo "$memory"
  } >"$REPORT.new"
  finish_report "$REPORT"
}

main "$@"
