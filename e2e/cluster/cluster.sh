#!/usr/bin/env bash
# Local Kubernetes cluster for Courier's end-to-end tests: a control plane and
# one real node (containerd, runc, kubelet, kube-proxy, CNI bridge, CoreDNS).
#
#   cluster.sh build          build (or reuse) etcd, the Kubernetes binaries and the node's
#   cluster.sh up             build if needed, make certificates, start everything
#   cluster.sh down [--purge] stop everything and undo what up changed on the host;
#                             --purge also deletes state and etcd data
#   cluster.sh status         one line per component; exit 0 only if all of it runs
#   cluster.sh env            print the exports for KUBECONFIG and PATH (kubectl, crictl)
#   cluster.sh restart etcd|kube-apiserver [SECONDS]
#                             stop one, keep it down SECONDS, start it again (fault tests)
#
# etcd, the controller-manager and the scheduler listen on loopback; the
# apiserver and the kubelet on the node IP 10.87.0.1 (a bridge without ports);
# pods on 10.88.0.0/16 behind the CNI bridge. See docs/e2e.md, "Local cluster".
# Health checks are passed to wait_for by name, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
COURIER_CACHE="${COURIER_CACHE:-$HOME/.cache/courier}"
COURIER_STATE="${COURIER_STATE:-/tmp/courier-e2e}"
K8S_BIN="$COURIER_CACHE/k8s-$K8S_VERSION/bin"
ETCD_BIN="$COURIER_CACHE/etcd-$ETCD_VERSION/bin"
CLUSTER_DIR="$COURIER_STATE/cluster"
PKI="$CLUSTER_DIR/pki"
LOGS="$COURIER_STATE/logs"
ETCD_DATA="$COURIER_STATE/etcd"
NODE_NAME=courier-node-1
SERVICE_CIDR=10.96.0.0/24
K8S_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
# Start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kube-proxy kubelet)
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler)
GRACE_SECONDS=10
# shellcheck source=e2e/node/node.sh
source "$ROOT/e2e/node/node.sh"
APISERVER_URL="https://$NODE_IP:6443"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# --- prerequisites -----------------------------------------------------------

apt_install() {
  command -v apt-get >/dev/null || die "missing $*, and no apt-get to install it"
  log "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The Go toolchain is only needed to build; openssl and curl to run. The
# modules need Go >= 1.24 (etcd's >= 1.26); any Go >= 1.21 fetches the newer
# toolchain it needs from the module proxy by itself (GOTOOLCHAIN=auto).
ensure_go() {
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null || apt_install golang-go
  local minor
  minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
  if ! [[ "$minor" =~ ^[0-9]+$ ]] || ((minor < 21)); then
    die "Go >= 1.21 is needed to build the cluster, found $(go env GOVERSION)"
  fi
}

ensure_runtime_tools() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
}

# --- build -------------------------------------------------------------------

version_ldflags() {
  local date minor
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local pkg flags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=$date"
  done
  printf '%s' "-s -w$flags"
}

build_k8s() {
  local tool missing=()
  for tool in "${K8S_TOOLS[@]}"; do
    [[ -x "$K8S_BIN/$tool" ]] || missing+=("$tool")
  done
  if ((${#missing[@]} == 0)); then
    log "kubernetes $K8S_VERSION binaries present in $K8S_BIN"
    return
  fi
  ensure_go
  mkdir -p "$K8S_BIN"
  local ldflags
  ldflags="$(version_ldflags)"
  for tool in "${missing[@]}"; do
    log "building $tool $K8S_VERSION (a cold build takes minutes) ..."
    local start=$SECONDS
    (cd "$HERE" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
      -o "$K8S_BIN/$tool.tmp" "k8s.io/kubernetes/cmd/$tool")
    mv "$K8S_BIN/$tool.tmp" "$K8S_BIN/$tool"
    log "built $tool in $((SECONDS - start))s"
  done
}

build_etcd() {
  if [[ -x "$ETCD_BIN/etcd" ]]; then
    log "etcd $ETCD_VERSION binary present in $ETCD_BIN"
    return
  fi
  ensure_go
  mkdir -p "$ETCD_BIN"
  log "building etcd $ETCD_VERSION ..."
  local start=$SECONDS
  (cd "$HERE/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN/etcd.tmp" .)
  mv "$ETCD_BIN/etcd.tmp" "$ETCD_BIN/etcd"
  log "built etcd in $((SECONDS - start))s"
}

cmd_build() {
  build_etcd
  build_k8s
  "$ROOT/e2e/node/build.sh" build
}

# --- processes -----------------------------------------------------------------

pid_file() { printf '%s/%s.pid' "$CLUSTER_DIR" "$1"; }

# start_time PID: the process's start time in clock ticks since boot, which
# tells a live process apart from a later one that reused its pid.
start_time() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

# Prints the pid of a component if its pid file names a live process that is
# still the one we started.
running_pid() {
  local file pid started
  file="$(pid_file "$1")"
  [[ -f "$file" ]] || return 1
  read -r pid started <"$file" || true
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(start_time "$pid")" == "$started" ]] || return 1
  printf '%s' "$pid"
}

# start NAME BINARY ARGS...: runs detached, output to $LOGS/NAME.log.
start() {
  local name="$1"
  shift
  if running_pid "$name" >/dev/null; then
    log "$name already running"
    return
  fi
  mkdir -p "$LOGS" "$CLUSTER_DIR"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(start_time "$pid")" >"$(pid_file "$name")"
  log "started $name (pid $pid, log $LOGS/$name.log)"
}

# start_supervised NAME BINARY ARGS...: as start, but the process is started again a second
# after it exits, as the kubelet restarts a static pod. The controller-manager and the
# scheduler exit when they cannot renew their leader Lease (an apiserver or etcd outage);
# without this they would stay down and nothing would update a Service's endpoints again.
start_supervised() {
  local name="$1"
  shift
  # shellcheck disable=SC2016 # expanded by the supervising shell
  start "$name" bash -c 'trap '"'"'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0'"'"' TERM INT
    while :; do
      "$@" &
      child=$!
      wait "$child" && code=0 || code=$?
      echo "[supervise] exited with $code; starting again in 1 s" >&2
      sleep 1
    done' supervise "$@"
}

# gone_within TENTHS TARGET: waits up to TENTHS/10 s until no process matches
# TARGET (a pid, or -PGID for a whole process group); fails if one remains.
gone_within() {
  local tenths="$1" target="$2" waited=0
  while kill -0 -- "$target" 2>/dev/null; do
    ((waited < tenths)) || return 1
    sleep 0.1
    waited=$((waited + 1))
  done
}

# stop NAME: SIGTERM, then SIGKILL after the grace period. Each component leads
# its own process group (setsid), so whatever it started itself in that group
# is stopped with it if it left any behind (containerd's shims start sessions
# of their own: node_down stops those).
stop() {
  local name="$1" pid
  if ! pid="$(running_pid "$name")"; then
    rm -f "$(pid_file "$name")"
    return
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! gone_within $((GRACE_SECONDS * 10)) "$pid"; then
    log "$name (pid $pid) ignored SIGTERM for ${GRACE_SECONDS}s, sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
    gone_within 30 "-$pid" || true
  fi
  if kill -0 -- "-$pid" 2>/dev/null; then
    log "$name left processes in its group $pid behind, stopping them"
    kill -TERM -- "-$pid" 2>/dev/null || true
    gone_within 30 "-$pid" || kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$(pid_file "$name")"
  log "stopped $name (pid $pid)"
}

# wait_for COMPONENT DESCRIPTION SECONDS COMMAND...: polls COMMAND every half
# second; gives up early, showing the log, if COMPONENT's process has exited.
wait_for() {
  local name="$1" what="$2" seconds="$3"
  shift 3
  local begin=$SECONDS
  local deadline=$((begin + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! running_pid "$name" >/dev/null; then
      tail -n 20 "$LOGS/$name.log" >&2 || true
      die "$name exited while waiting for $what (log $LOGS/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      die "timed out after ${seconds}s waiting for $what (logs in $LOGS)"
    fi
    sleep 0.5
  done
  log "$what: ok after $((SECONDS - begin))s"
}

# --- certificates and kubeconfigs ----------------------------------------------

# new_ca NAME CN: a self-signed CA in pki/NAME.{key,crt}.
new_ca() {
  openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -sha256 \
    -keyout "$PKI/$1.key" -subj "/CN=$2" -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}

# signed_cert NAME SUBJECT EXTFILE [CA]: pki/NAME.{key,crt} signed by pki/CA
# (default: the cluster CA).
signed_cert() {
  local name="$1" subject="$2" extfile="$3" ca="${4:-ca}"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" \
    -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$extfile" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$ca.srl"
}

make_pki() {
  if [[ -f "$PKI/done" ]]; then
    return
  fi
  log "making certificates in $PKI"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  new_ca ca courier-e2e-ca
  # A separate CA for the aggregation layer's front proxy, as kubeadm does.
  new_ca front-proxy-ca courier-e2e-front-proxy-ca

  cat >"$PKI/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
  cat >"$PKI/client.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
  signed_cert apiserver "/CN=kube-apiserver" "$PKI/server.ext"
  signed_cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters" "$PKI/client.ext"
  signed_cert admin "/CN=courier-admin/O=system:masters" "$PKI/client.ext"
  signed_cert kube-controller-manager "/CN=system:kube-controller-manager" "$PKI/client.ext"
  signed_cert kube-scheduler "/CN=system:kube-scheduler" "$PKI/client.ext"
  signed_cert node "/CN=system:node:$NODE_NAME/O=system:nodes" "$PKI/client.ext"
  signed_cert kube-proxy "/CN=system:kube-proxy" "$PKI/client.ext"
  cat >"$PKI/kubelet.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME
EOF
  signed_cert kubelet "/CN=system:node:$NODE_NAME/O=system:nodes" "$PKI/kubelet.ext"
  signed_cert front-proxy-client "/CN=front-proxy-client" "$PKI/client.ext" front-proxy-ca

  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  touch "$PKI/done"
}

# kubeconfig NAME: $CLUSTER_DIR/NAME.kubeconfig using pki/NAME.{crt,key}.
kubeconfig() {
  local name="$1" user="$2"
  cat >"$CLUSTER_DIR/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: courier-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    client-certificate: $PKI/$name.crt
    client-key: $PKI/$name.key
contexts:
- name: courier-e2e
  context:
    cluster: courier-e2e
    user: $user
current-context: courier-e2e
EOF
  chmod 600 "$CLUSTER_DIR/$name.kubeconfig"
}

make_kubeconfigs() {
  kubeconfig admin courier-admin
  kubeconfig kube-controller-manager system:kube-controller-manager
  kubeconfig kube-scheduler system:kube-scheduler
  kubeconfig node "system:node:$NODE_NAME"
  kubeconfig kube-proxy system:kube-proxy
}

# --- up ------------------------------------------------------------------------

admin_kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$CLUSTER_DIR/admin.kubeconfig" "$@"; }

etcd_healthy() { curl -fsS http://127.0.0.1:2379/health | grep -q '"health":"true"'; }

apiserver_ready() {
  curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$APISERVER_URL/readyz" | grep -qx ok
}

all_control_plane_running() {
  local c
  for c in "${CONTROL_PLANE[@]}"; do
    running_pid "$c" >/dev/null || return 1
  done
}

start_etcd() {
  mkdir -p "$ETCD_DATA"
  start etcd "$ETCD_BIN/etcd" --data-dir "$ETCD_DATA"
  wait_for etcd "etcd health" 60 etcd_healthy
}

# The apiserver listens on the node IP only and advertises it as the endpoint
# of the `kubernetes` Service, which pods reach through kube-proxy.
start_apiserver() {
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --advertise-address="$NODE_IP" \
    --bind-address="$NODE_IP" \
    --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --authorization-mode=Node,RBAC \
    --anonymous-auth=false \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-node-port-range=30000-32767 \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --profiling=false \
    --v=1
  wait_for kube-apiserver "kube-apiserver /readyz" 180 apiserver_ready
}

start_controller_manager() {
  start_supervised kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port=10257 \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=true \
    --profiling=false \
    --v=1
}

start_scheduler() {
  start_supervised kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$CLUSTER_DIR/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port=10259 \
    --leader-elect=true \
    --profiling=false \
    --v=1
}

# The controller-manager and scheduler serve /healthz with a self-signed
# certificate they make in memory, so only this local probe skips verification.
healthz() { curl -fsSk "https://127.0.0.1:$1/healthz" | grep -qx ok; }

default_service_account_exists() { admin_kubectl -n default get serviceaccount default; }

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do
    running_pid "$c" >/dev/null || return 1
  done
}

cmd_up() {
  if all_running && apiserver_ready 2>/dev/null && node_ready 2>/dev/null; then
    log "cluster is already up ($APISERVER_URL)"
    import_images
    return
  fi
  local start_time=$SECONDS
  ensure_runtime_tools
  cmd_build
  mkdir -p "$CLUSTER_DIR" "$LOGS"
  node_ip_up
  make_pki
  make_kubeconfigs
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  wait_for kube-controller-manager "kube-controller-manager /healthz" 60 healthz 10257
  wait_for kube-scheduler "kube-scheduler /healthz" 60 healthz 10259
  wait_for kube-controller-manager "the default ServiceAccount" 120 default_service_account_exists
  node_up
  log "cluster is up in $((SECONDS - start_time))s: $APISERVER_URL, kubeconfig $CLUSTER_DIR/admin.kubeconfig"
}

# --- down, status, env ---------------------------------------------------------

cmd_down() {
  local purge=false
  case "${1:-}" in
    "") ;;
    --purge) purge=true ;;
    *) die "usage: cluster.sh down [--purge]" ;;
  esac
  node_down
  local i
  for ((i = ${#CONTROL_PLANE[@]} - 1; i >= 0; i--)); do
    stop "${CONTROL_PLANE[i]}"
  done
  "$ROOT/e2e/scripts/node-ip.sh" down
  if $purge; then
    rm -rf "$CLUSTER_DIR" "$ETCD_DATA" "$NODE_DIR"
    local c
    for c in "${COMPONENTS[@]}"; do rm -f "$LOGS/$c.log"; done
    log "purged $CLUSTER_DIR, $ETCD_DATA, $NODE_DIR and the components' logs"
  fi
  log "cluster is down"
}

cmd_status() {
  local c pid ok=true
  for c in "${COMPONENTS[@]}"; do
    if pid="$(running_pid "$c")"; then
      printf '%-24s running  pid %s\n' "$c" "$pid"
    else
      printf '%-24s stopped\n' "$c"
      ok=false
    fi
  done
  $ok
}

cmd_env() {
  printf 'export KUBECONFIG=%s\n' "$CLUSTER_DIR/admin.kubeconfig"
  # shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
  printf 'export PATH=%s:%s:%s:$PATH\n' "$K8S_BIN" "$CRI_TOOLS_BIN" "$CONTAINERD_BIN"
  printf 'export CONTAINER_RUNTIME_ENDPOINT=unix://%s\n' "$CONTAINERD_SOCK"
  printf 'export IMAGE_SERVICE_ENDPOINT=unix://%s\n' "$CONTAINERD_SOCK"
  printf 'export CONTAINERD_ADDRESS=%s\n' "$CONTAINERD_SOCK"
}

# restart COMPONENT [SECONDS]: stops etcd or kube-apiserver (SIGTERM, as `down` does), keeps
# it down SECONDS (default 0), starts it again and waits until it is healthy. For fault tests:
# everything else keeps running and must ride it out.
cmd_restart() {
  local name="${1:-}" down="${2:-0}"
  [[ "$down" =~ ^[0-9]+$ ]] || die "usage: cluster.sh restart etcd|kube-apiserver [SECONDS]"
  case "$name" in
    etcd | kube-apiserver) ;;
    *) die "usage: cluster.sh restart etcd|kube-apiserver [SECONDS]" ;;
  esac
  all_running || die "the cluster is not up"
  stop "$name"
  sleep "$down"
  case "$name" in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
  esac
  log "restarted $name after ${down}s down"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    build) cmd_build ;;
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    restart) cmd_restart "$@" ;;
    *) die "usage: cluster.sh build|up|down [--purge]|status|env|restart etcd|kube-apiserver [SECONDS]" ;;
  esac
}

main "$@"; exit $?
