# shellcheck shell=bash
# Shared by worker/bench/worker.sh, protocols.sh and hdfs.sh: the build, the input, the
# manifests, one courier-worker run and the load generators (wrk, h2load), each measured with
# the sink's CPU share (its process's utime+stime over the measured interval, in % of one core),
# how busy both cores were (everything on them, /proc/stat: "client core/sink core" %; a core
# busier than its benchmark process shows other work on it) and the client's CPU time per
# request (user+system of the whole run / requests).
# Expects ROOT, WORK, RECORDS, DURATION, WORKER_CPU, SINK_CPU and METRICS_PORT to be set.

# shellcheck source=e2e/bench/lib.sh
source "$ROOT/e2e/bench/lib.sh"

# make_data: $RECORDS JSON lines of ~256 B with the fields the sample Datum's templates use
# (`id` for the path, `segment` for a header); sets DATA.
make_data() {
  DATA="$WORK/data-$RECORDS.jsonl"
  json_lines "$DATA" "$RECORDS"
}

# manifests URL MAX_IN_FLIGHT RPS: $WORK/destination.yaml and $WORK/datum.yaml.
# HTTP_VERSION (Http1, Http2 or Auto; default Http1) goes into the Destination; an https:// URL
# trusts make_certs' CA through tls.caSecretRef (the Secret in $WORK/ca-secret.yaml, given to
# the worker with --secret). DATUM=sample gives the Datum of config/samples/datum.yaml's `users`
# (path template /v1/users/{{ id }}, header X-Segment: "{{ segment }}", contentType); otherwise
# a Datum without templates (each JSON line is the body as-is) of format DATUM_FORMAT (JsonLines,
# Parquet or Avro; default JsonLines).
manifests() {
  local tls=""
  if [[ $1 == https://* ]]; then
    tls=", tls: {caSecretRef: {name: bench-ca, key: ca.crt}}"
    { printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: bench-ca}\nstringData:\n  ca.crt: |\n'
      sed 's/^/    /' "$WORK/tls/ca.crt"; } >"$WORK/ca-secret.yaml"
  fi
  cat >"$WORK/destination.yaml" <<YAML
apiVersion: courier.dev/v1alpha1
kind: Destination
metadata: {name: bench}
spec:
  endpoint: {url: "$1/ingest", httpVersion: ${HTTP_VERSION:-Http1}$tls}
  rateLimit: {requestsPerSecond: $3}
  workers: {maxInFlightPerWorker: $2}
YAML
  if [ "${DATUM:-plain}" = sample ]; then
    cat >"$WORK/datum.yaml" <<YAML
apiVersion: courier.dev/v1alpha1
kind: Datum
metadata: {name: bench-users}
spec:
  format: {type: JsonLines}
  request:
    pathTemplate: /v1/users/{{ id }}
    headers:
      X-Segment: "{{ segment }}"
    contentType: application/json
YAML
  else
    plain_datum "$WORK/datum.yaml" "${DATUM_FORMAT:-JsonLines}"
  fi
}

# run_worker URL IN_FLIGHT SOURCE [extra flags] -> JSON summary on stdout; /usr/bin/time in $WORK/time.log.
# SOURCE is a local path (read as file://) or a source URL (hdfs://host:port/glob).
# A run that has not finished after WORKER_TIMEOUT seconds (default 300) is stopped (SIGTERM: it
# still prints its summary), e.g. when it cannot reach the sink and keeps retrying.
run_worker() {
  local url=$1 inflight=$2 source=$3 secret=(); shift 3
  [[ $source == *://* ]] || source="file://$source"
  manifests "$url" "$inflight" 1000000
  [[ $url != https://* ]] || secret=(--secret "$WORK/ca-secret.yaml")
  rm -rf "$WORK/dead"
  taskset -c "$WORKER_CPU" /usr/bin/time -v -o "$WORK/time.log" timeout --foreground "${WORKER_TIMEOUT:-300}" "${BIN:-$WORKER_BIN}" run \
    --destination "$WORK/destination.yaml" --datum "$WORK/datum.yaml" --source "$source" \
    --dead-letter "file://$WORK/dead" --json-summary --progress never --package "bench-$RANDOM$RANDOM" \
    "${secret[@]}" "$@" 2>>"$WORK/worker.log" | tail -1
}

# throughput_run URL SINK_PID -> "whole-run-rate steady-rate peak-rss-mib sink-cpu-% cores-busy-% cpu-us-per-record":
# a run at 64 in flight whose /metrics (and the sink's CPU time) is sampled every 0.5 s (from
# the sink's core), so that the steady rate and the sink's share leave out start-up and the
# drain at the end, as wrk's rate does. The worker's CPU per record is over the whole run.
# It reads $DATA, or SOURCE (a path or URL, e.g. hdfs://…) holding EXPECTED records when set.
throughput_run() {
  local url=$1 sink=$2 source=${SOURCE:-$DATA} expected=${EXPECTED:-} summary sampler sent
  : >"$WORK/samples"
  (
    while sleep 0.5; do
      v=$(taskset -c "$SINK_CPU" curl -s --max-time 0.4 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null |
        awk '/^courier_worker_records_total\{.*outcome="sent"/ {print $2}')
      [ -n "$v" ] && echo "$(now) $v $(cpu_ticks "$sink") $(core_ticks "$WORKER_CPU") $(core_ticks "$SINK_CPU")" >>"$WORK/samples"
    done
  ) &
  sampler=$!
  summary=$(run_worker "$url" 64 "$source" --metrics-addr "127.0.0.1:$METRICS_PORT")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sent=$(field "$summary" recordsSent)
  [ "$sent" = "${expected:-$(wc -l <"$DATA")}" ] || { log "courier-worker sent $sent records to $url: $summary"; tail -3 "$WORK/worker.log" >&2; }
  echo "$(field "$summary" ratePerSecond) $(steady_rate) $(peak_rss_mib) $(steady_shares) $(time_cpu_us "$sent")"
}

# Records/s between the second and the second-to-last sample of $WORK/samples.
steady_rate() {
  awk 'NR > 1 { t[++n] = $1; v[n] = $2 }
       END { if (n < 3) { print 0; exit } printf "%.1f\n", (v[n-1] - v[1]) / (t[n-1] - t[1]) }' "$WORK/samples"
}
# The sink's CPU share and both cores' busy shares (as cores_busy) over the same samples.
steady_shares() {
  local t0 t1 c0 c1 a0 a1 b0 b1
  read -r t0 c0 a0 b0 t1 c1 a1 b1 < <(awk 'NR > 1 { t[++n] = $1; c[n] = $3; a[n] = $4; b[n] = $5 }
       END { if (n < 3) print 0, 0, 0, 0, 0, 0, 0, 0; else print t[1], c[1], a[1], b[1], t[n-1], c[n-1], a[n-1], b[n-1] }' "$WORK/samples")
  echo "$(cpu_share "$c0" "$c1" "$t0" "$t1") $(cpu_share "$a0" "$a1" "$t0" "$t1" | cut -d. -f1)/$(cpu_share "$b0" "$b1" "$t0" "$t1" | cut -d. -f1)"
}

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
peak_rss_mib() { awk -F': ' '/Maximum resident/ {printf "%.1f", $2 / 1024}' "$WORK/time.log"; }
# time_cpu_us N: user+system seconds in $WORK/time.log (/usr/bin/time -v) per N, in microseconds.
time_cpu_us() {
  awk -F': ' -v n="$1" '/User time|System time/ { s += $2 }
    END { if (n > 0) printf "%.2f\n", 1e6 * s / n; else print "?" }' "$WORK/time.log"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# ratios YARDSTICK MEASURED: per round, 100 x MEASURED / YARDSTICK (names of arrays in main).
ratios() {
  local -n base=$1 got=$2
  local i
  for i in "${!base[@]}"; do awk -v a="${got[$i]}" -v b="${base[$i]}" 'BEGIN{printf "%.1f\n", 100*a/b}'; done
}
# med NAME: the median of the array NAME; all NAME: its values on one line.
med() { local -n a=$1; printf '%s\n' "${a[@]}" | median; }
all() { local -n a=$1; echo "${a[*]}"; }
# marks NAME: " sink-bound" when any of the shares in array NAME is above 90 %.
marks() { local -n a=$1; sink_mark "$(printf '%s\n' "${a[@]}" | sort -g | tail -1)"; }

# row CLIENT SINK RATES YARDSTICK SHARES BUSY CPUS [WHOLE RSS]: one table row from arrays (by
# name) of the rounds' rates, the yardstick's rates (the same array for the yardstick's own row),
# the sink's CPU shares, both cores' busy shares, the client's CPU per request, whole-run rates
# and peak RSS.
row() {
  local rates=$3 base=$4 shares=$5 busy=$6 cpus=$7 whole=${8:-} rss=${9:-} ratio="100%" w=""
  [ "$rates" = "$base" ] || ratio="$(ratios "$base" "$rates" | median)% ($(ratios "$base" "$rates" | tr '\n' ' '))"
  [ -z "$whole" ] || w="$(med "$whole") ($(all "$whole"))"
  echo "| $1 | $2 | $(med "$rates") | $ratio | $(all "$rates") | $(all "$shares")$(marks "$shares") | $(all "$busy") | $(med "$cpus") | $w | ${rss:+$(all "$rss")} |"
}

# load_run SINK_PID COMMAND...: COMMAND on the client's core under /usr/bin/time (its output in
# $WORK/load.out, appended to $WORK/load.log) -> "sink-cpu-% cores-busy-% client-cpu-seconds".
load_run() {
  local sink=$1 c0 c1 t0 t1 a0 a1 b0 b1; shift
  c0=$(cpu_ticks "$sink"); a0=$(core_ticks "$WORKER_CPU"); b0=$(core_ticks "$SINK_CPU"); t0=$(now)
  taskset -c "$WORKER_CPU" /usr/bin/time -v -o "$WORK/time.log" "$@" >"$WORK/load.out" 2>&1 || true
  c1=$(cpu_ticks "$sink"); a1=$(core_ticks "$WORKER_CPU"); b1=$(core_ticks "$SINK_CPU"); t1=$(now)
  cat "$WORK/load.out" >>"$WORK/load.log"
  echo "$(cpu_share "$c0" "$c1" "$t0" "$t1") $(cpu_share "$a0" "$a1" "$t0" "$t1" | cut -d. -f1)/$(cpu_share "$b0" "$b1" "$t0" "$t1" | cut -d. -f1) $(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$WORK/time.log")"
}

# wrk_rate URL SINK_PID -> "req/s sink-cpu-% cores-busy-% cpu-us-per-request": wrk -t1 -c64 for $DURATION,
# POSTing post256.lua's ~256 B bodies (http:// or https://; HTTP/1.1 either way).
wrk_rate() {
  local share busy cpu
  read -r share busy cpu < <(load_run "$2" wrk -t1 -c64 "-d$DURATION" -s "$ROOT/worker/bench/post256.lua" "$1/ingest")
  awk -v share="$share" -v busy="$busy" -v cpu="$cpu" '/^Requests\/sec:/ { rate = $2 } / requests in / { n = $1 }
    END { printf "%.1f %s %s %.2f\n", rate, share, busy, (n > 0 ? 1e6 * cpu / n : 0) }' "$WORK/load.out"
}

# h2load_rate URL SINK_PID -> as wrk_rate: h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS (HTTP/2:
# ALPN h2 for https://, prior knowledge for http://) for $DURATION, POSTing one ~256 B body.
h2load_rate() {
  local share busy cpu secs=${DURATION%s}
  [ -s "$WORK/body.json" ] || head -1 "$DATA" >"$WORK/body.json"
  read -r share busy cpu < <(load_run "$2" h2load -t1 "-c${H2_CONNECTIONS:-1}" "-m${H2_STREAMS:-64}" -D "$secs" \
    -d "$WORK/body.json" -H 'content-type: application/json' -H 'idempotency-key: 0123456789abcdef0123456789abcdef' "$1/ingest")
  awk -v share="$share" -v busy="$busy" -v cpu="$cpu" '/^finished in/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /^req\/s/) rate = $i }
    /^requests:/ { n = $8 }
    END { printf "%.1f %s %s %.2f\n", rate, share, busy, (n > 0 ? 1e6 * cpu / n : 0) }' "$WORK/load.out"
}
