#!/usr/bin/env bash
# courier-worker reading from HDFS (not a test: numbers, not pass/fail).
#
#   worker/bench/hdfs.sh                      # full run (~5-6 min on a quiet machine)
#   ROUNDS=1 DURATION=3s RECORDS=200000 FORMAT_RECORDS=100000 PROFILE_RECORDS=0 worker/bench/hdfs.sh
#   REPORT=/tmp/h.md worker/bench/hdfs.sh     # leave docs/ alone
#   SKIP_BUILD=1 worker/bench/hdfs.sh         # use the release binaries already built
#
# A MiniDFS of this script's own (e2e/minidfs, `minidfs.sh classpath`; one NameNode and one
# DataNode on 127.0.0.1:$DFS_PORT, its own data dir under $WORK, pinned to the sink's core) —
# never the shared instance on 9000/9870. Its launcher reads stdin (Control.java): this script
# holds the write end of a FIFO, so the instance stops when the script ends, however it ends.
#
# 1. Plain JSON lines from HDFS vs wrk: courier-worker pinned to core 0 reads $RECORDS JSON lines
#    of ~256 B (the input of worker/bench/worker.sh) from hdfs:// and POSTs each into nginx
#    `return 200` on core 1; wrk -t1 -c64 into the same nginx is the yardstick, and the same
#    worker reading the same file from file:// is the reference. Goal: >= 85 % of wrk.
# 2. Per format: $FORMAT_RECORDS user records (courier-fixtures: the records of the e2e
#    fixtures) as JSON lines, gzip JSON lines, Parquet (Snappy) and Avro (Deflate, Snappy),
#    each read from HDFS and delivered into nginx. courier-worker has no read-only mode, so what
#    is measured is the whole worker: its CPU time (user+system, /usr/bin/time) per record, and
#    from it records/s and MB/s (of the file as stored) per second of one core.
# 3. A perf profile (/usr/bin/perf, 999 Hz, flat) of one plain JSON lines run from HDFS:
#    where the worker's core goes (PROFILE_RECORDS=0 leaves it out). It runs before 1 and 2,
#    so that the DataNode's JVM has served reads before the measured runs.
# Every run from HDFS also records the MiniDFS JVM's CPU share (DataNode and NameNode).
# Prints tables and writes docs/benchmarks-worker-hdfs.md. Leaves no process behind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COURIER_STATE=${COURIER_STATE:-/tmp/courier-e2e}
WORK="$COURIER_STATE/bench-hdfs"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
RECORDS=${RECORDS:-1000000}
FORMAT_RECORDS=${FORMAT_RECORDS:-1000000}
PROFILE_RECORDS=${PROFILE_RECORDS:-300000}
# Ports of this script's own (worker.sh uses 18090-18092; the shared MiniDFS 9000/9870).
NGINX_PORT=${NGINX_PORT:-18390}
SIM_PORT=${SIM_PORT:-18391}
METRICS_PORT=${METRICS_PORT:-18392}
DFS_PORT=${DFS_PORT:-19390}
DFS_HTTP_PORT=${DFS_HTTP_PORT:-19391}
DFS_HEAP=${DFS_HEAP:-768m}
DFS_START_TIMEOUT=${DFS_START_TIMEOUT:-150}
WORKER_CPU=${WORKER_CPU:-0}
SINK_CPU=${SINK_CPU:-1}
REPORT=${REPORT:-$ROOT/docs/benchmarks-worker-hdfs.md}

# shellcheck source=worker/bench/lib.sh
source "$ROOT/worker/bench/lib.sh"

# build_all: build (courier-worker, partner-sim) and courier-fixtures; sets FIXTURES_BIN.
build_all() {
  build
  FIXTURES_BIN="$(dirname "$WORKER_BIN")/courier-fixtures"
  if [ -n "${SKIP_BUILD:-}" ] && [ -x "$FIXTURES_BIN" ]; then return 0; fi
  (cd "$ROOT" && cargo build --release -q -p courier-e2e --bin courier-fixtures)
}

# start_dfs: the MiniDFS launcher on 127.0.0.1:$DFS_PORT (web $DFS_HTTP_PORT), a fresh data dir
# under $WORK/dfs, pinned to the sink's core, its stdin a FIFO this shell holds open; waits for
# its READY line. Sets DFS_URL, DFS_PID and DFS_CLASSPATH (for FsShell).
start_dfs() {
  local classpath started=$SECONDS
  if (exec 3<>"/dev/tcp/127.0.0.1/$DFS_PORT") 2>/dev/null; then
    log "127.0.0.1:$DFS_PORT is taken; set DFS_PORT"; return 1
  fi
  classpath=$("$ROOT/e2e/minidfs/minidfs.sh" classpath)
  # FsShell insists on a core-site.xml on its classpath; an empty one keeps Hadoop's defaults.
  mkdir -p "$WORK/hadoop-conf"
  echo '<configuration/>' >"$WORK/hadoop-conf/core-site.xml"
  DFS_CLASSPATH="$WORK/hadoop-conf:$classpath"
  rm -rf "$WORK/dfs"; mkdir -p "$WORK/dfs"
  mkfifo "$WORK/dfs/control"
  taskset -c "$SINK_CPU" java -Xmx"$DFS_HEAP" -Djava.net.preferIPv4Stack=true -cp "$classpath" dev.courier.minidfs.Main \
    --data-dir "$WORK/dfs/data" --host 127.0.0.1 --port "$DFS_PORT" --http-port "$DFS_HTTP_PORT" \
    <"$WORK/dfs/control" >"$WORK/dfs/out" 2>"$WORK/dfs/log" &
  DFS_PID=$!
  PIDS+=("$DFS_PID")
  # The launcher stops when its stdin ends: when this shell exits, or when stop_dfs closes it.
  exec {DFS_CONTROL}>"$WORK/dfs/control"
  until grep -q '^MINIDFS READY ' "$WORK/dfs/out"; do
    if ! kill -0 "$DFS_PID" 2>/dev/null || ((SECONDS - started > DFS_START_TIMEOUT)); then
      tail -20 "$WORK/dfs/log" >&2; log "MiniDFS did not start (log: $WORK/dfs/log)"; return 1
    fi
    sleep 0.5
  done
  DFS_URL="hdfs://127.0.0.1:$DFS_PORT"
  log "own MiniDFS ready at $DFS_URL after $((SECONDS - started)) s"
}

# stop_dfs: closes the launcher's stdin (Control.java: EOF shuts it down) and waits for it.
stop_dfs() {
  exec {DFS_CONTROL}>&-
  for _ in $(seq 60); do kill -0 "$DFS_PID" 2>/dev/null || return 0; sleep 0.5; done
  log "MiniDFS still running 30 s after its stdin closed; SIGTERM"; kill "$DFS_PID" 2>/dev/null || true
}

# dfs_run VAR COMMAND...: runs COMMAND (in this shell, its stdout as is) and appends the
# MiniDFS JVM's CPU share over it (% of one core, all its threads) to the array VAR.
dfs_run() {
  local -n shares=$1; shift
  local c0 c1 t0 t1
  c0=$(cpu_ticks "$DFS_PID"); t0=$(now)
  "$@"
  c1=$(cpu_ticks "$DFS_PID"); t1=$(now)
  shares+=("$(cpu_share "$c0" "$c1" "$t0" "$t1")")
}

# dfs_shell ARGS...: Hadoop's FsShell (`hadoop fs`) against the own MiniDFS.
dfs_shell() {
  java -cp "$DFS_CLASSPATH" org.apache.hadoop.fs.FsShell -fs "$DFS_URL" "$@" 2>>"$WORK/dfs/shell.log"
}

# FORMATS: label|directory under /bench/users|Datum format|courier-fixtures flags
FORMATS=(
  "JSON lines|jsonl|JsonLines|"
  "JSON lines, gzip|gzip|JsonLines|--gzip"
  "Parquet, Snappy|parquet|Parquet|--format parquet"
  "Avro, Deflate|avro-deflate|Avro|--format avro --avro-codec deflate"
  "Avro, Snappy|avro-snappy|Avro|--format avro --avro-codec snappy"
)

# load_data: the ~256 B JSON lines (as worker.sh's) to /bench/plain with FsShell, each format's
# user records to /bench/users/<dir> with courier-fixtures; BYTES[dir]: each file's size.
load_data() {
  local spec label dir type flags started=$SECONDS
  dfs_shell -mkdir -p /bench/plain
  dfs_shell -put -f "$DATA" /bench/plain/data.jsonl
  for spec in "${FORMATS[@]}"; do
    IFS='|' read -r label dir type flags <<<"$spec"
    # shellcheck disable=SC2086 # flags are words
    "$FIXTURES_BIN" --namenode "$DFS_URL" --dir "/bench/users/$dir" --files 1 --records "$FORMAT_RECORDS" $flags >&2
  done
  declare -gA BYTES=()
  local size path
  while read -r size _ path; do BYTES[${path##*/}]=$size; done < <(dfs_shell -du /bench/users)
  BYTES[plain]=$(dfs_shell -du -s /bench/plain | awk '{print $1}')
  log "data in HDFS after $((SECONDS - started)) s: plain ${BYTES[plain]} B; $(for d in "${!BYTES[@]}"; do printf '%s %s B; ' "$d" "${BYTES[$d]}"; done)"
}

# hdfs_round SOURCE EXPECTED: throughput_run into nginx reading SOURCE (with DATUM_FORMAT).
hdfs_round() { SOURCE=$1 EXPECTED=$2 throughput_run "http://127.0.0.1:$NGINX_PORT" "$NGINX_PID"; }

# profile: one plain JSON lines run from HDFS ($PROFILE_RECORDS records) under perf record
# (999 Hz, no call graphs: release builds have no frame pointers); sets PROFILE_DSO and
# PROFILE_SYM (markdown table rows).
profile() {
  local n=$PROFILE_RECORDS
  head -n "$n" "$DATA" >"$WORK/profile.jsonl"
  dfs_shell -mkdir -p /bench/profile
  dfs_shell -put -f "$WORK/profile.jsonl" /bench/profile/data.jsonl
  printf '#!/bin/sh\nexec perf record -q -F 999 -o %s -- %s "$@"\n' "$WORK/perf.data" "$WORKER_BIN" >"$WORK/perf-worker"
  chmod +x "$WORK/perf-worker"
  BIN="$WORK/perf-worker" run_worker "http://127.0.0.1:$NGINX_PORT" 64 "$DFS_URL/bench/profile" >/dev/null
  # perf report -t '|': "overhead|dso|symbol" (--sort symbol prints "[.] name" or "[k] name").
  PROFILE_DSO=$(perf report -i "$WORK/perf.data" --stdio --no-children --sort dso -t '|' --percent-limit 1 2>/dev/null |
    awk -F'|' '!/^#/ && NF >= 2 { gsub(/^ +| +$/, "", $1); gsub(/^ +| +$/, "", $2); printf "| %s | %s |\n", $1, $2 }')
  PROFILE_SYM=$(perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,symbol -t '|' --percent-limit 0.7 2>/dev/null |
    awk -F'|' '!/^#/ && NF >= 3 { gsub(/^ +| +$/, "", $1); gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3)
      s = $3; if (length(s) > 110) s = substr(s, 1, 107) "..."; printf "| %s | %s | `%s` |\n", $1, $2, s }' | head -30)
  # The HDFS client's own code: hdfs-native, its protobuf (prost) and its checksums (crc).
  PROFILE_HDFS=$(perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol -t '|' 2>/dev/null |
    awk -F'|' '!/^#/ && $2 ~ /hdfs_native|prost|crc/ { sub(/%/, "", $1); s += $1 } END { printf "%.1f%%", s }')
}

main() {
  install_tools with-time
  command -v perf >/dev/null || [ "$PROFILE_RECORDS" = 0 ] || { log "perf is missing (PROFILE_RECORDS=0 skips the profile)"; exit 1; }
  build_all
  rm -rf "$WORK/nginx" "$WORK"/*.log; mkdir -p "$WORK"
  make_data
  # nginx first: a process started after start_dfs would inherit the FIFO's write end and keep
  # the launcher's stdin open after stop_dfs.
  start_nginx "$SINK_CPU"
  local t0=$SECONDS
  start_dfs
  load_data
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  local nginx="http://127.0.0.1:$NGINX_PORT" hdfs_plain="$DFS_URL/bench/plain"
  DURATION=1s wrk_rate "$nginx" "$NGINX_PID" >/dev/null
  # 3. Where the time goes, first: the profiled run also warms the DataNode's JVM up for the rounds.
  PROFILE_DSO="" PROFILE_SYM="" PROFILE_HDFS=""
  [ "$PROFILE_RECORDS" = 0 ] || profile

  # 1. Per round: wrk, courier-worker from HDFS, courier-worker from file://, back to back.
  # Arrays: rate, sink CPU % (…C), cores busy (…B), client CPU us/request (…U), whole-run rate
  # (…W), peak RSS (…R).
  W=() WC=() WB=() WU=() HD=() H=() HC=() HB=() HU=() HW=() HR=() F=() FC=() FB=() FU=() FW=() FR=()
  local rate share busy cpu whole steady rss round
  for round in $(seq "$ROUNDS"); do
    read -r rate share busy cpu < <(wrk_rate "$nginx" "$NGINX_PID"); W+=("$rate"); WC+=("$share"); WB+=("$busy"); WU+=("$cpu")
    dfs_run HD hdfs_round "$hdfs_plain" "$RECORDS" >"$WORK/run.out"
    read -r whole steady rss share busy cpu <"$WORK/run.out"
    HW+=("$whole"); H+=("$steady"); HR+=("$rss"); HC+=("$share"); HB+=("$busy"); HU+=("$cpu")
    read -r whole steady rss share busy cpu < <(throughput_run "$nginx" "$NGINX_PID")
    FW+=("$whole"); F+=("$steady"); FR+=("$rss"); FC+=("$share"); FB+=("$busy"); FU+=("$cpu")
    log "round $round: wrk ${W[-1]}/s (nginx CPU ${WC[-1]}%), courier-worker from HDFS ${H[-1]}/s (${HC[-1]}%, ${HU[-1]} us/record, MiniDFS CPU ${HD[-1]}%), from file ${F[-1]}/s (${FC[-1]}%, ${FU[-1]} us/record)"
  done
  local wk="wrk -t1 -c64" cw="courier-worker run, 64 in flight" ng="nginx return 200"
  local versus
  versus="| client (core $WORKER_CPU) | sink (core $SINK_CPU) | req/s (median) | of wrk (median of the rounds' ratios) | runs | sink CPU % of its core (runs) | cores busy %, client/sink (runs) | client CPU us/request (median) | whole run req/s (median) | peak RSS MiB |
|---|---|---|---|---|---|---|---|---|---|
$(row "$wk" "$ng" W W WC WB WU)
$(row "$cw, from HDFS (hdfs://, MiniDFS on core $SINK_CPU)" "$ng" H W HC HB HU HW HR)
$(row "$cw, from a local file (file://)" "$ng" F W FC FB FU FW FR)

MiniDFS JVM (DataNode and NameNode, core $SINK_CPU) CPU % of one core over each whole courier-worker run from HDFS: ${HD[*]}."
  echo "$versus"

  # 2. Per format, ROUNDS rounds of every format in turn.
  declare -A DFS=() CPU=() STEADY=() WHOLE=() RSS=() SHARE=()
  local spec label dir type flags
  for round in $(seq "$ROUNDS"); do
    for spec in "${FORMATS[@]}"; do
      IFS='|' read -r label dir type flags <<<"$spec"
      local dfs=()
      DATUM_FORMAT=$type dfs_run dfs hdfs_round "$DFS_URL/bench/users/$dir" "$FORMAT_RECORDS" >"$WORK/run.out"
      read -r whole steady rss share busy cpu <"$WORK/run.out"
      DFS[$dir]+="${dfs[0]} "; CPU[$dir]+="$cpu "; STEADY[$dir]+="$steady "; WHOLE[$dir]+="$whole "; RSS[$dir]+="$rss "; SHARE[$dir]+="$share "
      log "round $round: $label: $cpu us/record, $steady records/s (nginx CPU $share%)"
    done
  done
  local formats base
  base=$(echo "${CPU[jsonl]}" | tr ' ' '\n' | grep . | median)
  formats="| format (file in HDFS) | file MB | B/record | worker CPU us/record (median; runs) | records/s per core | MB/s per core (file bytes) | MB/s per core (as JSON lines) | CPU us/record above JSON lines | delivered records/s, steady (median) | nginx CPU % (runs) | MiniDFS CPU % (runs) | peak RSS MiB (runs) |
|---|---|---|---|---|---|---|---|---|---|---|---|"
  for spec in "${FORMATS[@]}"; do
    IFS='|' read -r label dir type flags <<<"$spec"
    local us bytes
    us=$(echo "${CPU[$dir]}" | tr ' ' '\n' | grep . | median)
    bytes=${BYTES[$dir]}
    formats+="
$(awk -v label="$label" -v us="$us" -v b="$bytes" -v j="${BYTES[jsonl]}" -v n="$FORMAT_RECORDS" -v base="$base" -v runs="${CPU[$dir]% }" \
      -v steady="$(echo "${STEADY[$dir]}" | tr ' ' '\n' | grep . | median)" -v share="${SHARE[$dir]% }" -v dfs="${DFS[$dir]% }" -v rss="${RSS[$dir]% }" \
      'BEGIN { printf "| %s | %.1f | %.1f | %.2f (%s) | %.0f | %.1f | %.1f | %+.2f | %s | %s | %s | %s |", label, b / 1e6, b / n, us, runs, 1e6 / us, b / n / us, j / n / us, us - base, steady, share, dfs, rss }')"
  done
  echo "$formats"

  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
  local elapsed=$((SECONDS - t0))
  stop_dfs

  local machine
  machine="$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(uname -sr)"
  mkdir -p "$(dirname "$REPORT")"
  {
    echo "# courier-worker reading from HDFS"
    echo
    echo "Produced by \`worker/bench/hdfs.sh\` on $(date -u +%Y-%m-%dT%H:%MZ) (ROUNDS=$ROUNDS, DURATION=$DURATION, RECORDS=$RECORDS,"
    echo "FORMAT_RECORDS=$FORMAT_RECORDS, PROFILE_RECORDS=$PROFILE_RECORDS); ${elapsed} s from MiniDFS start to the last run"
    echo "(the build and the input file before that are not counted)."
    echo
    echo "Machine: $machine. Load average before: $LOAD_BEFORE, after: $LOAD_AFTER"
    echo "(other engineers' builds and tests share both cores, so absolute numbers move between runs)."
    echo
    echo "Reproduce: \`flock -x /tmp/courier-cpu.lock worker/bench/hdfs.sh\` (or \`make bench\`, which runs every benchmark)."
    echo "It starts a MiniDFS of its own (\`e2e/minidfs\`, one NameNode and one DataNode on 127.0.0.1:$DFS_PORT, a fresh"
    echo "data dir under \`$WORK\`), never the shared one on 9000/9870; the DataNode and nginx share core $SINK_CPU,"
    echo "courier-worker has core $WORKER_CPU to itself. HDFS block size and checksums are Hadoop's defaults (128 MiB, CRC32C"
    echo "per 512 B, verified by the reader)."
    echo
    echo "## Plain JSON lines from HDFS vs wrk"
    echo
    echo "Input: $RECORDS JSON lines of ~256 B (${BYTES[plain]} B, the input of \`worker/bench/worker.sh\`), put into"
    echo "HDFS with Hadoop's FsShell. courier-worker (plain Datum: the line is the body) reads it from \`hdfs://\` and"
    echo "POSTs each line into nginx \`return 200\`; wrk -t1 -c64 POSTs bodies of the same size (\`worker/bench/post256.lua\`)"
    echo "for $DURATION into the same nginx; and in the same round courier-worker reads the same file from \`file://\`."
    echo "Columns as in [benchmarks-worker.md](benchmarks-worker.md): the steady rate from the worker's /metrics every"
    echo "0.5 s, the sink's CPU share over that window (above 90 % the row is **sink-bound**), how busy each core was"
    echo "(/proc/stat; core $SINK_CPU also runs the DataNode during courier-worker's rows), and the client's user+system time"
    echo "per request over its whole run (/usr/bin/time). Goal: courier-worker from HDFS >= 85 % of wrk."
    echo
    echo "$versus"
    echo
    echo "## Read throughput per format"
    echo
    echo "Input: $FORMAT_RECORDS user records (\`courier-fixtures\`, the records of the e2e fixtures: id, email, segment,"
    echo "score, ts), one file per format written into HDFS by \`courier-fixtures --format …\` (Parquet: row groups of"
    echo "10,000 rows, Snappy pages; Avro: blocks of 500 records). Each becomes one POST of its JSON object. courier-worker"
    echo "has no read-only mode, so each format is delivered end to end into nginx, and the table gives what reading it"
    echo "costs the worker's one core: its CPU time (user+system of the whole run) per record; records/s per core ="
    echo "1e6 / that; MB/s per core = the file's stored bytes, and the same records as JSON lines, per CPU second."
    echo "\"Above JSON lines\" is the difference to the plain JSON lines file of the same records: every format sends"
    echo "JSON objects of the same five fields, so sending costs about the same, and the difference is what decompressing"
    echo "and decoding cost beyond splitting lines. Median of $ROUNDS rounds; the delivered rate is wall-clock, with the"
    echo "DataNode on the other core (the MiniDFS JVM's CPU share over each whole run: its own column)."
    echo
    echo "$formats"
    if [ -n "$PROFILE_DSO" ]; then
      echo
      echo "## Where the worker's core goes (perf)"
      echo
      echo "\`perf record -F 999\` (flat, no call graphs; run before the rounds) of one courier-worker run reading $PROFILE_RECORDS of the ~256 B JSON"
      echo "lines from HDFS into nginx, all threads of the process; \`perf report --no-children\`. Symbols of the HDFS"
      echo "client itself (names matching hdfs_native, prost or crc: the protocol and the checksums) add up to $PROFILE_HDFS."
      echo
      echo "| share | shared object |"
      echo "|---|---|"
      echo "$PROFILE_DSO"
      echo
      echo "| share | shared object | symbol |"
      echo "|---|---|---|"
      echo "$PROFILE_SYM"
    fi
  } >"$REPORT.new"
  finish_report "$REPORT"
}

main "$@"
