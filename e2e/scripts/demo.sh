#!/usr/bin/env bash
# The demo: builds everything, starts the local cluster, MiniDFS and the partner simulator,
# deploys the operator, writes sample data, applies the samples and shows the delivery until it
# is Complete, then the simulator's totals. Everything stays running afterwards so you can look
# around; `make cluster-down`, `e2e/minidfs/minidfs.sh stop` and `kill $(cat $COURIER_STATE/partner-sim.pid)` stop it.
set -euo pipefail
# shellcheck source=e2e/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export COURIER_KEEP_SERVICES=1

SIM_ADDR=127.0.0.1:18080
NS=courier-demo
PKG=users-2026-11-25

ensure_toolchains
build_ground
step "building Courier"
cargo build --workspace --bins --locked
start_ground

step "starting the partner simulator on $SIM_ADDR (200 requests/s, bearer auth)"
if curl -fsS "http://$SIM_ADDR/stats" >/dev/null 2>&1; then
  curl -fsS -X POST "http://$SIM_ADDR/reset" >/dev/null
else
  mkdir -p "$COURIER_STATE/logs"
  setsid "$ROOT/target/debug/partner-sim" --listen "$SIM_ADDR" --rate 200 --burst 20 \
    --auth bearer:demo-token-change-me --latency uniform:2..10 \
    >"$COURIER_STATE/logs/partner-sim.log" 2>&1 </dev/null &
  echo $! >"$COURIER_STATE/partner-sim.pid"
  for _ in $(seq 50); do curl -fsS "http://$SIM_ADDR/stats" >/dev/null 2>&1 && break; sleep 0.2; done
fi

step "installing the CRDs, RBAC and the operator"
kubectl apply --server-side --force-conflicts --field-manager=courier-demo -k config/
kubectl wait --for=condition=Established --timeout=60s crd/destinations.courier.dev crd/datums.courier.dev crd/deliverypackages.courier.dev
kubectl -n courier-system rollout status deploy/courier-operator --timeout=120s

step "writing sample data to MiniDFS (4 files × 1500 records, 2 late gzip files × 500)"
"$ROOT/target/debug/courier-fixtures" --namenode "$COURIER_MINIDFS_URL" --dir /data/users/2026-11-25 --files 4 --records 1500
"$ROOT/target/debug/courier-fixtures" --namenode "$COURIER_MINIDFS_URL" --dir /data/users/2026-11-25/late --files 2 --records 500 --first-id 6001 --gzip

step "applying the samples in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NS" delete dp "$PKG" --ignore-not-found --wait=true >/dev/null
kubectl -n "$NS" apply -k config/samples/
kubectl get courier -n "$NS"

step "watching the delivery (kubectl get dp -w) until Complete"
kubectl -n "$NS" get dp -w &
watch_pid=$!
trap 'kill $watch_pid 2>/dev/null || true' EXIT
kubectl -n "$NS" wait --for=condition=Complete "dp/$PKG" --timeout=600s
kill "$watch_pid" 2>/dev/null || true
echo
kubectl -n "$NS" get dp "$PKG" -o jsonpath='{.status.progress.records}{"\n"}'
kubectl -n "$NS" get dest

step "what the partner saw"
curl -fsS "http://$SIM_ADDR/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("accepted:", s.get("accepted"), " unique keys:", s.get("unique_keys"), " duplicates:", s.get("duplicates"))
print("rejected:", s.get("rejected"))'
echo
echo "Everything is still running. Try: kubectl -n $NS get dp,dest; kubectl get courier -A"
echo "(KUBECONFIG=$KUBECONFIG, PATH includes $COURIER_CACHE/k8s-v1.34.4/bin)"
