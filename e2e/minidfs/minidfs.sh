#!/usr/bin/env bash
# MiniDFS for Courier's tests: one NameNode (hdfs://10.87.0.1:9000, web
# http://10.87.0.1:9870) and one DataNode, all on the local cluster's node IP
# (e2e/scripts/node-ip.sh), so that pods reach them as well as host processes.
#
#   minidfs.sh build    compile the launcher and resolve its classpath into
#                       $COURIER_CACHE/minidfs-3.5.0-<source hash> (skipped when up to date)
#   minidfs.sh start    build if needed, start in the background, wait for READY
#   minidfs.sh stop     SIGTERM, wait, then SIGKILL
#   minidfs.sh status   print state; exit 0 when running, 3 when not
#   minidfs.sh classpath
#                       build if needed, print the launcher's Java classpath on stdout
#                       (for tests that start an instance of their own, with its own ports
#                       and data dir, and drive it over stdin: see Control.java)
#
# Environment: COURIER_CACHE (default ~/.cache/courier), COURIER_STATE
# (default /tmp/courier-e2e), MINIDFS_START_TIMEOUT (seconds, default 90),
# MINIDFS_HEAP (JVM -Xmx, default 1g), MINIDFS_HOST (default: the node IP).
set -euo pipefail

HADOOP_VERSION=3.5.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_IP_SH="$HERE/../scripts/node-ip.sh"
COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"
COURIER_STATE="${COURIER_STATE:-/tmp/courier-e2e}"
# Keyed by the launcher's sources too, so branches with different launchers
# sharing one cache do not rebuild each other's.
OUT="$COURIER_CACHE/minidfs-$HADOOP_VERSION-$(cd "$HERE" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)"
CLASSES="$OUT/build/classes"
CLASSPATH_FILE="$OUT/classpath.txt"
STAMP="$OUT/source.sha256"
RUN_DIR="$COURIER_STATE/minidfs"
PID_FILE="$RUN_DIR/minidfs.pid"
LOG_DIR="$COURIER_STATE/logs"
LOG="$LOG_DIR/minidfs.log"
PORT=9000
HTTP_PORT=9870
HOST="${MINIDFS_HOST:-$("$NODE_IP_SH" addr)}"
URL="hdfs://$HOST:$PORT"
START_TIMEOUT="${MINIDFS_START_TIMEOUT:-90}"
HEAP="${MINIDFS_HEAP:-1g}"
MAIN_CLASS=dev.courier.minidfs.Main

log() { printf 'minidfs: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

ensure_tools() {
  local missing=()
  command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 \
    || missing+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; install them (apt-get install ${missing[*]})"
  log "installing ${missing[*]} with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

source_hash() {
  (cd "$HERE" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum) \
    | sha256sum | cut -d' ' -f1
}

# The cached build is usable when the sources match and every jar exists
# (a wiped ~/.m2 invalidates it).
build_is_current() {
  [[ -f $STAMP && -f $CLASSPATH_FILE && -f $CLASSES/dev/courier/minidfs/Main.class ]] || return 1
  [[ $(cat "$STAMP") == "$(source_hash)" ]] || return 1
  local jar
  while IFS= read -r jar; do
    [[ -e $jar ]] || return 1
  done < <(tr ':' '\n' <"$CLASSPATH_FILE")
}

cmd_build() {
  ensure_tools
  if build_is_current; then
    log "build up to date in $OUT"
    return 0
  fi
  log "building launcher into $OUT (first run downloads hadoop-minicluster $HADOOP_VERSION)"
  local started=$SECONDS
  mkdir -p "$OUT"
  rm -f "$STAMP"
  if ! mvn -B -q -f "$HERE/pom.xml" -Dminidfs.out="$OUT" compile >"$OUT/build.log" 2>&1; then
    tail -n 40 "$OUT/build.log" >&2
    die "maven build failed; see $OUT/build.log"
  fi
  [[ -s $CLASSPATH_FILE ]] || die "maven did not write $CLASSPATH_FILE"
  source_hash >"$STAMP"
  log "built in $((SECONDS - started)) s"
}

running_pid() {
  [[ -f $PID_FILE ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F "$MAIN_CLASS" >/dev/null || return 1
  echo "$pid"
}

port_answers() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Serialise start/stop across processes: parallel test binaries may all
# ask for a start at once; the second waits and then finds it running.
lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/lock"
  flock -w "$((START_TIMEOUT + 60))" 9 || die "could not lock $RUN_DIR/lock"
}

cmd_start() {
  lock
  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid) at $URL"
    echo "$URL"
    return 0
  fi
  [[ -n "${MINIDFS_HOST:-}" ]] || "$NODE_IP_SH" up
  if port_answers "$PORT" || port_answers "$HTTP_PORT"; then
    die "port $PORT or $HTTP_PORT is taken by a process this script did not start"
  fi
  cmd_build
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  # Every start formats a fresh namespace: tests never depend on old data.
  rm -rf "$RUN_DIR/data"
  local offset started=$SECONDS
  offset=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
  printf '=== minidfs start %s ===\n' "$(date -u +%FT%TZ)" >>"$LOG"
  # setsid: the instance outlives the test process that started it and is
  # not hit by that process group's signals. Stdout/stderr go to the log so
  # no caller pipe is held open, and the lock fd (9) is not inherited.
  setsid java -Xmx"$HEAP" -Djava.net.preferIPv4Stack=true \
    -cp "$CLASSES:$(cat "$CLASSPATH_FILE")" "$MAIN_CLASS" \
    --data-dir "$RUN_DIR/data" --host "$HOST" --port "$PORT" --http-port "$HTTP_PORT" --no-stdin \
    </dev/null >>"$LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  while ((SECONDS - started < START_TIMEOUT)); do
    if tail -c +"$((offset + 1))" "$LOG" | grep '^MINIDFS READY ' >/dev/null; then
      log "ready at $URL after $((SECONDS - started)) s (pid $pid, log $LOG)"
      echo "$URL"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail -n 40 "$LOG" >&2
      die "exited before becoming ready; see $LOG"
    fi
    sleep 0.5
  done
  log "not ready after $START_TIMEOUT s; stopping it"
  cmd_stop || true
  tail -n 40 "$LOG" >&2
  die "start timed out; see $LOG"
}

cmd_stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  log "stopped (pid $pid)"
  [[ -n "${MINIDFS_HOST:-}" ]] || "$NODE_IP_SH" down
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running pid=$pid url=$URL web=http://$HOST:$HTTP_PORT log=$LOG"
    return 0
  fi
  echo "stopped"
  return 3
}

# Build output goes to stderr: stdout carries only the classpath.
cmd_classpath() {
  cmd_build >&2
  printf '%s:%s\n' "$CLASSES" "$(cat "$CLASSPATH_FILE")"
}

case "${1:-}" in
  build) cmd_build ;;
  classpath) cmd_classpath ;;
  start) cmd_start ;;
  stop) lock && cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 build|start|stop|status|classpath" >&2
    exit 2
    ;;
esac
