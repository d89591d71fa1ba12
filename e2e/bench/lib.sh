# Shared by the benchmark scripts (e2e/bench/simulator.sh, worker/bench/worker.sh): tools,
# process cleanup, and the two sinks — nginx `return 200` and partner-sim — on fixed loopback
# ports. Expects WORK, NGINX_PORT, SIM_PORT and (for start_sim) SIM_BIN to be set.

log() { printf '%s\n' "$*" >&2; }

# install_tools [with-time]: wrk, nginx and taskset (and /usr/bin/time) from apt when missing.
install_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  [ "${1:-}" != with-time ] || [ -x /usr/bin/time ] || missing+=(time)
  command -v taskset >/dev/null || missing+=(util-linux)
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

# start_nginx CPU: nginx `return 200` on 127.0.0.1:$NGINX_PORT pinned to CPU; sets NGINX_PID.
start_nginx() {
  local cpu=$1 prefix="$WORK/nginx"
  mkdir -p "$prefix/logs"
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
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    default_type application/json;
    location / { return 200 '{"ok":true}'; }
  }
}
CONF
  taskset -c "$cpu" nginx -p "$prefix" -c "$prefix/nginx.conf" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_port "$NGINX_PORT"
}

# start_sim CPU: partner-sim (one thread, no limit) on 127.0.0.1:$SIM_PORT pinned to CPU; sets SIM_PID.
start_sim() {
  local cpu=$1
  taskset -c "$cpu" "$SIM_BIN" --listen "127.0.0.1:$SIM_PORT" --threads 1 >"$WORK/sim.log" 2>&1 &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  wait_port "$SIM_PORT"
}
