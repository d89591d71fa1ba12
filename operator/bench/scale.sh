#!/usr/bin/env bash
# Operator scale benchmark (issue 6): 100 Destinations and 10,000 DeliveryPackages in one fresh
# namespace of the local cluster, the release operator as a local process. Not a test: it
# prints a table and writes docs/benchmarks-operator.md.
#
# Measures:
#   1. operator RSS (VmHWM peak, VmRSS steady) once every package is reconciled;
#   2. resync time after a restart (packages' spec changed while the operator was down; time
#      until every package has observedGeneration == generation and Waiting=True/DestinationSuspended);
#   3. package status writes per active package per minute, with ACTIVE_PKGS packages really
#      delivering to partner-sim through worker pods (kubelet node), the 10,000 idle ones present.
#
# Needs: `e2e/cluster/cluster.sh up` (the kubelet node, our images imported), MiniDFS
# (`e2e/minidfs/minidfs.sh start`: phase 3's packages read their files from it, as worker pods
# cannot read the host's), target/debug/partner-sim (phase 3's partner, on the node IP). Env knobs: DESTS PKGS CHUNK ACTIVE_DESTS ACTIVE_PKGS ACTIVE_RECORDS
# ACTIVE_RPS MEASURE_S STATUS_INTERVAL_MS OPERATOR SKIP_BUILD=1 (reuse target/release/courier-operator) NO_DOC=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
COURIER_CACHE=${COURIER_CACHE:-$HOME/.cache/courier}
COURIER_STATE=${COURIER_STATE:-/tmp/courier-e2e}
KUBECTL=${KUBECTL:-$COURIER_CACHE/k8s-v1.34.4/bin/kubectl}
export KUBECONFIG=$COURIER_STATE/cluster/admin.kubeconfig
TOOL="python3 $ROOT/operator/bench/scale_tool.py"

DESTS=${DESTS:-100}
PKGS=${PKGS:-10000}
CHUNK=${CHUNK:-500}
ACTIVE_DESTS=${ACTIVE_DESTS:-2}
ACTIVE_PKGS=${ACTIVE_PKGS:-20}
ACTIVE_RECORDS=${ACTIVE_RECORDS:-2000}
ACTIVE_RPS=${ACTIVE_RPS:-20}
MEASURE_S=${MEASURE_S:-60}
SETTLE_TIMEOUT_S=${SETTLE_TIMEOUT_S:-900}
RESYNC_TIMEOUT_S=${RESYNC_TIMEOUT_S:-600}
STATUS_INTERVAL_MS=${STATUS_INTERVAL_MS:-} # empty: the operator default
OPERATOR=${OPERATOR:-$ROOT/target/release/courier-operator}
# Where the operator's coordinator listens: the node IP, which worker pods reach (127.0.0.1 is
# the pod's own loopback).
COORD_HOST=${COORD_HOST:-$("$ROOT/e2e/scripts/node-ip.sh" addr)}
# Phase 3's files go to MiniDFS (worker pods read HDFS; the host's directories they cannot).
DFS_URL=${COURIER_MINIDFS_URL:-hdfs://$COORD_HOST:9000}

NS=courier-bench-$(date +%s)
WORK=$(mktemp -d /tmp/courier-bench-scale.XXXXXX)
LOGS=$COURIER_STATE/logs
mkdir -p "$LOGS"
OP_PID=""
SIM_PID=""
OP_PORT=""
METRICS_PORT=""

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
    local rc=$?
    [[ -n $OP_PID ]] && stop_operator
    [[ -n $SIM_PID ]] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
    timeout 30 "$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
    [[ -n ${DFS_CLASSPATH:-} ]] && { dfs_shell -rm -r -f -skipTrash "$DFS_DIR" >/dev/null 2>&1 || true; }
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
kb_to_mib() { python3 -c "print(f'{$1/1024:.1f}')"; }
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# "total settled running waiting" over the packages whose names start with $2.
packages_summary() {
    timeout 60 "$KUBECTL" get --raw "/apis/courier.dev/v1alpha1/namespaces/$NS/deliverypackages" \
        | $TOOL summarize "${1:-DestinationSuspended}" "${2:-}"
}

metric() {
    timeout 10 curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | $TOOL metric "$1" "${2:-}" || echo 0
}

start_operator() {
    OP_PORT=$(free_port)
    METRICS_PORT=$(free_port)
    RUST_LOG=${RUST_LOG:-info,kube_runtime=warn} "$OPERATOR" \
        --namespace "$NS" --leader-election off \
        --coordinator-addr "$COORD_HOST:$OP_PORT" --coordinator-url "http://$COORD_HOST:$OP_PORT" \
        --metrics-addr "127.0.0.1:$METRICS_PORT" ${STATUS_INTERVAL_MS:+--status-interval-ms "$STATUS_INTERVAL_MS"} \
        >>"$LOGS/operator-$NS.log" 2>&1 &
    OP_PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null 2>&1 && return 0
        kill -0 "$OP_PID" 2>/dev/null || die "operator exited; see $LOGS/operator-$NS.log"
        sleep 0.1
    done
    die "operator metrics did not come up"
}

stop_operator() {
    kill "$OP_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$OP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$OP_PID" 2>/dev/null || true
    wait "$OP_PID" 2>/dev/null || true
    OP_PID=""
}

apply_chunks() { # glob of chunk files
    local f
    for f in $1; do
        timeout 120 "$KUBECTL" apply --server-side --field-manager courier-bench -f "$f" >/dev/null
    done
}

# Waits until every package starting with $1 is settled; prints the seconds since $2.
wait_settled() {
    local prefix=$1 t0=$2 timeout_s=$3 want=$4 summary
    while :; do
        summary=$(packages_summary DestinationSuspended "$prefix")
        read -r total settled _ _ <<<"$summary"
        if [[ $total -eq $want && $settled -eq $want ]]; then elapsed "$t0"; return 0; fi
        if [[ $(elapsed "$t0" | cut -d. -f1) -ge $timeout_s ]]; then
            log "not settled after ${timeout_s}s: $summary (total settled running waiting)"
            echo ">$timeout_s (only $settled of $want settled)"; return 0
        fi
        kill -0 "$OP_PID" 2>/dev/null || die "operator exited; see $LOGS/operator-$NS.log"
        sleep 1
    done
}

# ---------------------------------------------------------------------------------------------
"$ROOT/e2e/cluster/cluster.sh" status >/dev/null || die "the local cluster is not running (e2e/cluster/cluster.sh up)"
"$ROOT/e2e/minidfs/minidfs.sh" status >/dev/null || die "MiniDFS is not running (e2e/minidfs/minidfs.sh start)"
[[ -x $ROOT/target/debug/partner-sim ]] || die "target/debug/partner-sim missing (cargo build -p courier-e2e --bin partner-sim)"
if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building the release operator"
    (cd "$ROOT" && cargo build --release -p courier-operator >&2)
fi
[[ -x $OPERATOR ]] || die "$OPERATOR missing"

log "namespace $NS, work dir $WORK"
timeout 120 "$KUBECTL" apply --server-side --force-conflicts --field-manager=courier-e2e -k "$ROOT/crds/generated" >/dev/null
timeout 30 "$KUBECTL" create namespace "$NS" >/dev/null
$TOOL gen-base "$WORK" "$NS" "$DESTS" "$WORK/data"
$TOOL gen-packages "$WORK" "$NS" "$PKGS" "$DESTS" "$WORK/data" 0 "$CHUNK"
[[ -n ${RESYNC_BUMP:-} ]] && $TOOL gen-packages "$WORK" "$NS" "$PKGS" "$DESTS" "$WORK/data" 1 "$CHUNK"

# --- 1. create, first reconcile, memory --------------------------------------------------------
log "creating $DESTS Destinations + $PKGS packages (operator not running yet)"
T0=$(now)
timeout 60 "$KUBECTL" apply --server-side --field-manager courier-bench -f "$WORK/base.yaml" >/dev/null
apply_chunks "$WORK/pkgs-0-*.yaml"
CREATE_S=$(elapsed "$T0")
log "created in ${CREATE_S}s; starting the operator"
T0=$(now)
start_operator
log "operator pid $OP_PID (metrics :$METRICS_PORT); waiting for every package to be Waiting/DestinationSuspended"
SETTLE_S=$(wait_settled pkg- "$T0" "$SETTLE_TIMEOUT_S" "$PKGS")
RECONCILES_1=$(metric courier_operator_reconciles_total 'controller="package"')
WRITES_1=$(metric courier_operator_status_writes_total 'controller="package"')
log "cold start: every package reconciled and its status written ${SETTLE_S}s after the start ($RECONCILES_1 reconciles, $WRITES_1 status writes)"
log "steady state: sampling RSS for 30 s"
RSS_MAX_KB=0
for _ in $(seq 30); do
    r=$(proc_kb "$OP_PID" VmRSS); (( r > RSS_MAX_KB )) && RSS_MAX_KB=$r
    sleep 1
done
STEADY_KB=$(proc_kb "$OP_PID" VmRSS)
PEAK1_KB=$(proc_kb "$OP_PID" VmHWM)
IDLE_WRITES=$(( $(metric courier_operator_status_writes_total 'controller="package"') - WRITES_1 ))
IDLE_RECONCILES=$(( $(metric courier_operator_reconciles_total 'controller="package"') - RECONCILES_1 ))
CPU1=$(awk '{ print ($14 + $15) / 100 }' "/proc/$OP_PID/stat")
log "peak $(kb_to_mib "$PEAK1_KB") MiB, steady $(kb_to_mib "$STEADY_KB") MiB; idle 30 s: $IDLE_RECONCILES reconciles, $IDLE_WRITES status writes"

# --- 2. restart and resync ------------------------------------------------------------------
stop_operator
if [[ -n ${RESYNC_BUMP:-} ]]; then
    log "bumping every package's spec (priority 0 -> 1) while the operator is down"
    apply_chunks "$WORK/pkgs-1-*.yaml"
    RESYNC_WHAT="spec of all $PKGS changed while down"
else
    RESYNC_WHAT="statuses current; until all $PKGS reconciled again"
fi
log "restarting the operator"
T1=$(now)
start_operator
while (( $(metric courier_operator_reconciles_total 'controller="package"') < PKGS )); do
    [[ $(elapsed "$T1" | cut -d. -f1) -lt $RESYNC_TIMEOUT_S ]] || break
    sleep 0.5
done
RESYNC_S=$(wait_settled pkg- "$T1" "$RESYNC_TIMEOUT_S" "$PKGS")
RESYNC_RECONCILES=$(metric courier_operator_reconciles_total 'controller="package"')
RESYNC_WRITES=$(metric courier_operator_status_writes_total 'controller="package"')
PEAK2_KB=$(proc_kb "$OP_PID" VmHWM)
STEADY2_KB=$(proc_kb "$OP_PID" VmRSS)
log "resynced in ${RESYNC_S}s ($RESYNC_RECONCILES reconciles, $RESYNC_WRITES status writes); peak $(kb_to_mib "$PEAK2_KB") MiB"

# --- 3. status writes of active packages ------------------------------------------------------
SIM_PORT=$(free_port)
# On the node IP: worker pods reach it there (127.0.0.1 is each pod's own).
"$ROOT/target/debug/partner-sim" --listen "$COORD_HOST:$SIM_PORT" --rate 50 --burst 5 >"$LOGS/partner-sim-$NS.log" 2>&1 &
SIM_PID=$!
DFS_DIR=/bench-scale/$NS
$TOOL gen-active "$WORK" "$NS" "$ACTIVE_DESTS" "$ACTIVE_PKGS" "http://$COORD_HOST:$SIM_PORT/" "$ACTIVE_RPS" "$ACTIVE_RECORDS" "$WORK/active" "$DFS_URL" "$DFS_DIR"
# FsShell wants a core-site.xml on its classpath; an empty one keeps Hadoop's defaults.
mkdir -p "$WORK/hadoop-conf" && echo '<configuration/>' >"$WORK/hadoop-conf/core-site.xml"
DFS_CLASSPATH="$WORK/hadoop-conf:$("$ROOT/e2e/minidfs/minidfs.sh" classpath)"
dfs_shell() { timeout 120 java -cp "$DFS_CLASSPATH" org.apache.hadoop.fs.FsShell -fs "$DFS_URL" "$@" 2>>"$WORK/dfs-shell.log"; }
dfs_shell -mkdir -p "$DFS_DIR" && dfs_shell -put -f "$WORK"/active/*.jsonl "$DFS_DIR/" \
    || die "could not put the active packages' files into $DFS_URL$DFS_DIR (see $WORK/dfs-shell.log)"
timeout 60 "$KUBECTL" apply --server-side --field-manager courier-bench -f "$WORK/active.yaml" >/dev/null
log "$ACTIVE_PKGS active packages on $ACTIVE_DESTS Destinations -> partner-sim :$SIM_PORT; waiting for delivery to start"
T2=$(now)
while :; do
    read -r _ _ running _ <<<"$(packages_summary DestinationSuspended active-)"
    [[ $running -ge $ACTIVE_PKGS && $(metric courier_operator_workers_ready) -ge $ACTIVE_DESTS ]] && break
    [[ $(elapsed "$T2" | cut -d. -f1) -lt 180 ]] || die "active packages not Running after 180 s (running=$running)"
    sleep 2
done
log "running; warming up 10 s, then measuring ${MEASURE_S} s"
sleep 10
list_packages() { timeout 60 "$KUBECTL" get --raw "/apis/courier.dev/v1alpha1/namespaces/$NS/deliverypackages"; }
list_packages | $TOOL sent active- "$WORK/sent-0.json"
W0=$(metric courier_operator_status_writes_total 'controller="package"')
TM=$(now)
SAMPLES=0; ACTIVE_SUM=0
while [[ $(elapsed "$TM" | cut -d. -f1) -lt $MEASURE_S ]]; do
    read -r _ _ running _ <<<"$(packages_summary DestinationSuspended active-)"
    SAMPLES=$((SAMPLES + 1)); ACTIVE_SUM=$((ACTIVE_SUM + running))
    sleep 5
done
W1=$(metric courier_operator_status_writes_total 'controller="package"')
MEASURED_S=$(elapsed "$TM")
list_packages | $TOOL sent active- "$WORK/sent-1.json"
PROGRESSING=$($TOOL progressing "$WORK/sent-0.json" "$WORK/sent-1.json")
ACTIVE_AVG=$(python3 -c "print(f'{$ACTIVE_SUM/$SAMPLES:.1f}')")
WRITES=$((W1 - W0))
PER_PKG_MIN=$(python3 -c "a=$ACTIVE_SUM/$SAMPLES; print(f'{($WRITES/a)/($MEASURED_S/60):.1f}' if a else 'n/a')")
PEAK3_KB=$(proc_kb "$OP_PID" VmHWM)
log "$WRITES package status writes in ${MEASURED_S}s over $ACTIVE_AVG Running packages ($PROGRESSING sent records in the window)"

# --- report -----------------------------------------------------------------------------------
verdict() { [[ $1 == ">"* ]] && { echo MISSED; return; }; python3 -c "print('ok' if $1 <= $2 else 'MISSED')"; }
PEAK_KB=$(( PEAK1_KB > PEAK2_KB ? PEAK1_KB : PEAK2_KB ))
PEAK_KB=$(( PEAK_KB > PEAK3_KB ? PEAK_KB : PEAK3_KB ))
TABLE=$(cat <<EOF
| measure | value | goal | verdict |
|---|---|---|---|
| objects | $DESTS Destinations (suspended), $PKGS DeliveryPackages, 1 Datum | | |
| create (kubectl apply, $CHUNK per call) | ${CREATE_S} s | | |
| cold start: operator start → all packages reconciled, status written | ${SETTLE_S} s ($RECONCILES_1 reconciles, $WRITES_1 writes) | ≤ 60 s | $(verdict "$SETTLE_S" 60) |
| operator peak RSS (VmHWM, whole run) | $(kb_to_mib "$PEAK_KB") MiB | ≤ 200 MiB | $(verdict "$PEAK_KB" 204800) |
| operator peak RSS, first run / after restart | $(kb_to_mib "$PEAK1_KB") / $(kb_to_mib "$PEAK2_KB") MiB | | |
| operator steady RSS (VmRSS, 30 s after settling) | $(kb_to_mib "$STEADY_KB") MiB (max $(kb_to_mib "$RSS_MAX_KB")) | ≤ 200 MiB | $(verdict "$STEADY_KB" 204800) |
| operator CPU for cold start + 30 s idle | ${CPU1} s | | |
| idle 30 s: package reconciles / status writes | $IDLE_RECONCILES / $IDLE_WRITES | | |
| resync after restart ($RESYNC_WHAT) | ${RESYNC_S} s | ≤ 60 s | $(verdict "$RESYNC_S" 60) |
| resync: package reconciles / status writes | $RESYNC_RECONCILES / $RESYNC_WRITES | | |
| status writes per active package per minute | $PER_PKG_MIN ($WRITES writes, ${MEASURED_S} s, $ACTIVE_AVG Running avg, $PROGRESSING of them sending) | ≤ 12 | $(verdict "${PER_PKG_MIN/n\/a/999}" 12) |
EOF
)
echo
echo "$TABLE"
echo

if [[ -z ${NO_DOC:-} ]]; then
    DOC=$ROOT/docs/benchmarks-operator.md
    CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
    {
        echo "# Operator scale benchmark"
        echo
        echo "\`operator/bench/scale.sh\` (issue 6). Last run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($CPU_MODEL),"
        echo "local cluster (\`e2e/cluster/cluster.sh\`: etcd + kube-apiserver on the same machine),"
        echo "release operator as a local process, \`--status-interval-ms ${STATUS_INTERVAL_MS:-<default>}\`."
        echo
        echo "$TABLE"
        echo
        cat "$ROOT/operator/bench/scale-method.md"
    } >"$DOC"
    log "wrote $DOC"
fi
