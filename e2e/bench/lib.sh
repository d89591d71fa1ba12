# shellcheck shell=bash
# Shared by the benchmark scripts (e2e/bench/simulator.sh, worker/bench/worker.sh): tools,
# process cleanup, and the two sinks — nginx `return 200` and partner-sim — on fixed loopback
# ports. Expects WORK, NGINX_PORT, SIM_PORT and (for start_sim) SIM_BIN to be set.

log() { printf '%s\n' "$*" >&2; }

# install_tools [with-time]: wrk, nginx and taskset (and /usr/bin/time) from apt when missing;
# with H2LOAD=1 also h2load (nghttp2-client) and openssl.
install_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  [ "${1:-}" != with-time ] || [ -x /usr/bin/time ] || missing+=(time)
  command -v taskset >/dev/null || missing+=(util-linux)
  [ -z "${H2LOAD:-}" ] || command -v h2load >/dev/null || missing+=(nghttp2-client)
  [ -z "${H2LOAD:-}" ] || command -v openssl >/dev/null || missing+=(openssl)
  # matplotlib for the plots (e2e/bench/plot.py), from Debian: the system python3 has it.
  /usr/bin/python3 -c "import matplotlib" 2>/dev/null || missing+=(python3-matplotlib)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} via apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Every process started here is stopped on exit, also on failure or Ctrl-C.
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_port() {
  local port=$1
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing listens on 127.0.0.1:$port"; return 1
}

# make_certs: a self-signed CA and a server certificate for 127.0.0.1 (EC P-256) under
# $WORK/tls (ca.crt, server.crt, server.key), made again when missing or expiring within a day.
make_certs() {
  local d="$WORK/tls"
  [ -s "$d/ca.crt" ] && openssl x509 -checkend 86400 -noout -in "$d/server.crt" >/dev/null 2>&1 && return 0
  mkdir -p "$d"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 30 \
    -subj "/CN=courier bench CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
}

# start_nginx CPU: nginx `return 200` on 127.0.0.1:$NGINX_PORT, one process (no master) pinned to
# CPU; sets NGINX_PID (the process that serves, for its CPU share). Tuned not to be the
# bottleneck of a one-core client (issue #18): no access log, a keep-alive connection is never
# closed for its number of requests, bodies up to 16 KiB stay in memory, reuseport.
# With NGINX_TLS_PORT set, also HTTPS there (make_certs' server certificate; ALPN h2 and
# http/1.1), and with NGINX_H2C_PORT set, HTTP/2 with prior knowledge (h2c) in plain text there.
# (`listen ... http2`: nginx 1.22, Debian 12's, has no `http2 on`; newer ones warn but accept it.)
start_nginx() {
  local cpu=$1 prefix="$WORK/nginx" extra=""
  mkdir -p "$prefix/logs"
  if [ -n "${NGINX_TLS_PORT:-}" ]; then
    make_certs
    extra+="
    listen 127.0.0.1:$NGINX_TLS_PORT ssl http2 reuseport;
    ssl_certificate $WORK/tls/server.crt;
    ssl_certificate_key $WORK/tls/server.key;"
  fi
  [ -z "${NGINX_H2C_PORT:-}" ] || extra+="
    listen 127.0.0.1:$NGINX_H2C_PORT http2 reuseport;"
  cat >"$prefix/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $prefix/body;
  proxy_temp_path $prefix/proxy;
  fastcgi_temp_path $prefix/fastcgi;
  uwsgi_temp_path $prefix/uwsgi;
  scgi_temp_path $prefix/scgi;
  keepalive_requests 10000000;
  client_body_buffer_size 16k;
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport;$extra
    default_type application/json;
    location / { return 200 '{"ok":true}'; }
    # Connections accepted so far (e2e/bench/peers.sh counts each client's).
    location = /nginx_status { stub_status; }
  }
}
CONF
  taskset -c "$cpu" nginx -p "$prefix" -c "$prefix/nginx.conf" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_port "$NGINX_PORT"
  [ -z "${NGINX_TLS_PORT:-}" ] || wait_port "$NGINX_TLS_PORT"
  [ -z "${NGINX_H2C_PORT:-}" ] || wait_port "$NGINX_H2C_PORT"
}

# cpu_ticks PID: the process's user + system time so far, in clock ticks (all its threads).
cpu_ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
# core_ticks CPU: clock ticks core CPU has been busy so far, whatever ran (/proc/stat).
core_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
now() { date +%s.%N; }
# cpu_share TICKS0 TICKS1 T0 T1: percent of one core used between the two readings.
cpu_share() {
  awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (t1 <= t0) { print "?"; exit } printf "%.1f\n", 100 * (b - a) / hz / (t1 - t0) }'
}
# sink_mark SHARE: " **sink-bound**" when the sink used more than 90 % of its core.
sink_mark() { awk -v s="$1" 'BEGIN { if (s != "?" && s + 0 > 90) print " **sink-bound**" }'; }

# start_sim CPU: partner-sim (one thread, no limit) on 127.0.0.1:$SIM_PORT pinned to CPU; sets SIM_PID.
start_sim() {
  local cpu=$1
  taskset -c "$cpu" "$SIM_BIN" --listen "127.0.0.1:$SIM_PORT" --threads 1 >"$WORK/sim.log" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_port "$SIM_PORT"
}

# json_lines PATH N: N JSON lines of ~256 B (an `id`, an `email`, a `segment` and padding) at
# PATH, unless it is there already — the input of every client benchmark.
json_lines() {
  [ -s "$1" ] && return 0
  log "writing $2 JSON lines of ~256 B"
  python3 - "$1" "$2" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
pad = "x" * 190
with open(path, "w") as f:
    for i in range(n):
        f.write('{"id":%d,"email":"user%d@example.com","segment":"gold","pad":"%s"}\n' % (i, i, pad[: 190 - len(str(i)) * 2]))
PY
}

# finish_report REPORT: puts $REPORT.new in place of REPORT, keeping REPORT's hand-written
# "## Analysis" section (from its heading to the end) under the new tables.
finish_report() {
  if [ -f "$1" ] && grep -q '^## Analysis' "$1"; then
    sed -n '/^## Analysis/,$p' "$1" >>"$1.new"
  fi
  mv "$1.new" "$1"
  log "wrote $1"
}

# build: the release courier-worker and partner-sim (under CARGO_TARGET_DIR or target/) into
# WORKER_BIN and SIM_BIN; with SKIP_BUILD set, those already built are used as they are.
build() {
  local target=${CARGO_TARGET_DIR:-$ROOT/target}
  WORKER_BIN="$target/release/courier-worker"
  SIM_BIN="$target/release/partner-sim"
  if [ -n "${SKIP_BUILD:-}" ] && [ -x "$WORKER_BIN" ] && [ -x "$SIM_BIN" ]; then return 0; fi
  log "building courier-worker and partner-sim (release)"
  (cd "$ROOT" && cargo build --release -q -p courier-worker --bin courier-worker -p courier-e2e --bin partner-sim)
}

# plain_datum PATH [FORMAT]: a Datum without templates (each JSON line is the request body as it
# is; a Parquet row or Avro record, as a JSON object). FORMAT: the Datum's format type, JsonLines
# (the default; compression from the file name, .gz → gzip), Parquet or Avro.
plain_datum() {
  cat >"$1" <<YAML
apiVersion: courier.dev/v1alpha1
kind: Datum
metadata: {name: bench}
spec:
  format: {type: ${2:-JsonLines}}
YAML
}
