#!/usr/bin/env bash
# A real Prometheus for the local ground (3.16, with promtool, built from its Go module by
# e2e/prometheus/build.sh and cached under $COURIER_CACHE), scraping
# Courier's operator and worker pods found through kubernetes_sd_configs against the local
# apiserver, as a user's Prometheus would, and evaluating Courier's alerts
# (charts/courier/monitoring/rules.yaml).
#
#   prometheus.sh install   build prometheus and promtool unless they are cached (build.sh build)
#   prometheus.sh start     write the configuration, start it (or reload a running one); idempotent
#   prometheus.sh status    exit 0 iff it answers /-/ready
#   prometheus.sh url       print its base URL
#   prometheus.sh stop      stop it
#   prometheus.sh check     promtool check rules + promtool test rules (no server needed)
#
# State (configuration, rules, TSDB, log, pid) under $COURIER_STATE/prometheus; it listens on
# 127.0.0.1:19090 only. Scrapes every 5 s so a test sees rates within seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
COURIER_STATE="${COURIER_STATE:-/tmp/courier-e2e}"
DIR="$COURIER_STATE/prometheus"
ADDR="${COURIER_PROMETHEUS_ADDR:-127.0.0.1:19090}"
KUBECONFIG_FILE="$COURIER_STATE/cluster/admin.kubeconfig"
RULES_SRC="$ROOT/charts/courier/monitoring/rules.yaml"
TESTS="$ROOT/e2e/prometheus/rules_test.yaml"
BUILD="$ROOT/e2e/prometheus/build.sh"
BIN="$("$BUILD" bin)"

log() { printf '[prometheus] %s\n' "$*" >&2; }
die() { printf '[prometheus] error: %s\n' "$*" >&2; exit 1; }

cmd_install() {
  "$BUILD" build
}

cmd_check() {
  cmd_install
  "$BIN/promtool" check rules "$RULES_SRC"
  "$BIN/promtool" test rules "$TESTS"
}

write_config() {
  mkdir -p "$DIR/data"
  [ -f "$KUBECONFIG_FILE" ] || die "no kubeconfig at $KUBECONFIG_FILE (start the cluster first)"
  cp "$RULES_SRC" "$DIR/courier-rules.yaml"
  # One job per binary; pods are found through the apiserver and kept by their label and the
  # container port named "metrics". The operator's series carry the namespace of the object
  # they describe (honor_labels); the pod's namespace is attached where a series has none.
  local job
  {
    cat <<YAML
# Written by e2e/prometheus/prometheus.sh; rewritten on every start.
global:
  scrape_interval: 5s
  scrape_timeout: 4s
  evaluation_interval: 5s
rule_files:
  - $DIR/courier-rules.yaml
scrape_configs:
YAML
    for job in operator worker; do
      cat <<YAML
  - job_name: courier-$job
    honor_labels: $([ "$job" = operator ] && echo true || echo false)
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $KUBECONFIG_FILE
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
        regex: courier-$job
        action: keep
      - source_labels: [__meta_kubernetes_pod_container_port_name]
        regex: metrics
        action: keep
      - source_labels: [__meta_kubernetes_pod_phase]
        regex: Running
        action: keep
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
YAML
    done
  } >"$DIR/prometheus.yml.new"
  "$BIN/promtool" check config "$DIR/prometheus.yml.new" >/dev/null || die "generated configuration is invalid"
  mv "$DIR/prometheus.yml.new" "$DIR/prometheus.yml"
}

ready() { curl -fsS --max-time 2 "http://$ADDR/-/ready" >/dev/null 2>&1; }

running_pid() {
  local pid
  pid="$(cat "$DIR/prometheus.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q prometheus "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

cmd_start() {
  cmd_install
  write_config
  local pid
  if pid="$(running_pid)"; then
    kill -HUP "$pid"
    log "running (pid $pid); configuration reloaded"
  else
    log "starting on $ADDR (state in $DIR)"
    setsid "$BIN/prometheus" \
      --config.file="$DIR/prometheus.yml" \
      --storage.tsdb.path="$DIR/data" \
      --storage.tsdb.retention.time=6h \
      --web.listen-address="$ADDR" \
      --web.enable-lifecycle \
      --log.level=warn \
      >>"$DIR/prometheus.log" 2>&1 </dev/null &
    echo $! >"$DIR/prometheus.pid"
  fi
  for _ in $(seq 1 60); do
    ready && { log "ready at http://$ADDR"; return 0; }
    sleep 0.5
  done
  tail -20 "$DIR/prometheus.log" >&2 || true
  die "not ready after 30 s"
}

cmd_stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    log "stopped"
  fi
  rm -f "$DIR/prometheus.pid"
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) ready ;;
  url) echo "http://$ADDR" ;;
  *) echo "usage: $0 install|check|start|stop|status|url" >&2; exit 2 ;;
esac
