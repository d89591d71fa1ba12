#!/usr/bin/env bash
# The demo: builds everything (Courier's images included), starts the local cluster (control
# plane and a real node) and MiniDFS, installs Courier with its Helm chart (helm upgrade --install), runs the partner
# simulator as a pod, writes sample data, applies the samples and shows the delivery until it is
# Complete, then the simulator's totals. Everything stays running afterwards so you can look
# around; `make cluster-down` and `e2e/minidfs/minidfs.sh stop` stop it.
set -euo pipefail
# shellcheck source=e2e/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
export COURIER_KEEP_SERVICES=1

NS=courier-demo
PKG=users-2026-11-25

ensure_toolchains
build_ground
step "building the sample data writer"
cargo build --locked -p courier-e2e --bin courier-fixtures
start_ground

step "installing Courier with Helm (release courier in courier-system; images courier/*:dev)"
# The namespace enforces Pod Security `restricted`: the apiserver refuses any pod that regresses.
kubectl create namespace courier-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace courier-system --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
# Helm installs crds/ on the first install only; applying them keeps them current on upgrades.
kubectl apply --server-side --force-conflicts --field-manager=courier-demo -f charts/courier/crds/
kubectl wait --for=condition=Established --timeout=60s crd/destinations.courier.dev crd/datums.courier.dev crd/deliverypackages.courier.dev
helm upgrade --install courier charts/courier --namespace courier-system --wait --timeout 5m
# make test scales it to zero while it runs; the images may have been rebuilt since.
kubectl -n courier-system scale deploy/courier-operator --replicas=2 >/dev/null
kubectl -n courier-system rollout restart deploy/courier-operator >/dev/null
kubectl -n courier-system rollout status deploy/courier-operator --timeout=180s

step "starting the partner simulator as a pod (Service partner-sim:8080 in $NS: 200 requests/s, bearer auth)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NS" apply -f e2e/scripts/partner-sim.yaml >/dev/null
kubectl -n "$NS" rollout restart deploy/partner-sim >/dev/null
kubectl -n "$NS" rollout status deploy/partner-sim --timeout=120s
SIM_URL="http://$(kubectl -n "$NS" get svc partner-sim -o jsonpath='{.spec.clusterIP}'):8080"

step "writing sample data to MiniDFS (4 files × 1500 records, 2 late gzip files × 500)"
"$ROOT/target/debug/courier-fixtures" --namenode "$COURIER_MINIDFS_URL" --dir /data/users/2026-11-25 --files 4 --records 1500
"$ROOT/target/debug/courier-fixtures" --namenode "$COURIER_MINIDFS_URL" --dir /data/users/2026-11-25/late --files 2 --records 500 --first-id 6001 --gzip

step "applying the samples in namespace $NS"
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
# The Service's ClusterIP answers on the host too: kube-proxy's rules apply to local traffic.
curl -fsS "$SIM_URL/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("accepted:", s.get("accepted"), " unique keys:", s.get("unique_keys"), " duplicates:", s.get("duplicates"))
print("rejected:", s.get("rejected"))'
echo
echo "Everything is still running. Try: kubectl -n $NS get dp,dest,pods; kubectl get courier -A;"
echo "  kubectl -n courier-system logs deploy/courier-operator; crictl ps"
echo "(eval \"\$(e2e/cluster/cluster.sh env)\" sets KUBECONFIG, PATH and crictl's endpoint)"
echo "Watch and steer with the plugin: cargo install --path kubectl-courier --locked, then"
echo "  kubectl courier status -n $NS; kubectl courier describe $PKG -n $NS; kubectl courier top -n $NS"
echo "Prometheus with Courier's alerts and the dashboard's queries: e2e/prometheus/prometheus.sh start"
echo "  (dashboard: charts/courier/monitoring/dashboard.json, docs/guide/src/operations/monitoring.md)"
