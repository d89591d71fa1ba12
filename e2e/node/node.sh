# The local node, sourced by cluster.sh: its network, containerd, the kubelet,
# kube-proxy and CoreDNS, and the undoing of everything they change on `down`.
# Uses cluster.sh's start/stop/wait_for/running_pid/log/die and its variables.
# shellcheck shell=bash
# shellcheck disable=SC2317 # health checks are passed to wait_for by name

# Addresses. Everything lives in the network namespace cluster.sh runs in; the
# ranges only ever exist on the two bridges below and inside pods' namespaces.
NODE_BRIDGE=courier0          # holds the node IP; has no ports
NODE_IP=10.87.0.1             # node IP, apiserver, kubelet, MiniDFS, host-side test servers
POD_BRIDGE=courier-cni0       # the CNI bridge, gateway of the pods
POD_CIDR=10.88.0.0/16
POD_GATEWAY=10.88.0.1
DNS_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local

NODE_DIR="$COURIER_STATE/node"
CONTAINERD_DIR="$NODE_DIR/containerd"
CONTAINERD_SOCK="$CONTAINERD_DIR/containerd.sock"
KUBELET_DIR="$NODE_DIR/kubelet"
CNI_CONF_DIR="$NODE_DIR/cni/net.d"
# What `up` changed, so that `down` can put it back.
UNDO_DIR="$NODE_DIR/undo"
# Kernel settings the kubelet, the bridge plugin and kube-proxy may change.
SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables)
# Paths the kubelet, containerd's shims and the CNI cache use whatever their
# configuration says; removed on `down` when `up` created them.
FIXED_PATHS=(/var/lib/kubelet/device-plugins /var/lib/kubelet /run/containerd/s
  /run/containerd/runc /run/containerd/fifo /run/containerd /var/lib/cni/results /var/lib/cni)

eval "$("$ROOT/e2e/node/build.sh" paths)"
CTR="$CONTAINERD_BIN/ctr"
CRICTL="$CRI_TOOLS_BIN/crictl"

ctr_() { "$CTR" --address "$CONTAINERD_SOCK" "$@"; }
crictl_() { "$CRICTL" --runtime-endpoint "unix://$CONTAINERD_SOCK" --image-endpoint "unix://$CONTAINERD_SOCK" --timeout 10s "$@"; }

# --- network --------------------------------------------------------------------

# The node IP on a bridge without ports: the kubelet refuses loopback node IPs
# and this kernel has no dummy interfaces. Idempotent; MiniDFS uses it too.
node_ip_up() {
  "$ROOT/e2e/scripts/node-ip.sh" up
}

# Pods have no default route; on top of node-ip.sh's guard, nothing that
# enters from the pod bridge is forwarded anywhere but back to it.
guard_up() {
  iptables -t mangle -C FORWARD -i "$POD_BRIDGE" ! -o "$POD_BRIDGE" -j DROP 2>/dev/null \
    || iptables -t mangle -I FORWARD -i "$POD_BRIDGE" ! -o "$POD_BRIDGE" -j DROP
  # Service IPs kube-proxy has not (yet) translated end on the portless bridge.
  ip route replace "$SERVICE_CIDR" dev "$NODE_BRIDGE"
}

guard_down() {
  iptables -t mangle -D FORWARD -i "$POD_BRIDGE" ! -o "$POD_BRIDGE" -j DROP 2>/dev/null || true
  ip route del "$SERVICE_CIDR" dev "$NODE_BRIDGE" 2>/dev/null || true
}

cni_config() {
  mkdir -p "$CNI_CONF_DIR" "$NODE_DIR/cni/ipam"
  cat >"$CNI_CONF_DIR/10-courier.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "courier",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY" }]],
        "routes": [{ "dst": "$SERVICE_CIDR" }, { "dst": "$NODE_IP/32" }],
        "dataDir": "$NODE_DIR/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

# --- what up changes, and down puts back -------------------------------------------

record_host_state() {
  mkdir -p "$UNDO_DIR"
  if [[ ! -f "$UNDO_DIR/sysctl" ]]; then
    local key
    for key in "${SYSCTLS[@]}"; do
      [[ -e "/proc/sys/${key//.//}" ]] && printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
    done >"$UNDO_DIR/sysctl"
  fi
  if [[ ! -f "$UNDO_DIR/paths" ]]; then
    local path
    for path in "${FIXED_PATHS[@]}"; do
      [[ -e "$path" ]] || printf '%s\n' "$path"
    done >"$UNDO_DIR/paths"
  fi
}

restore_host_state() {
  if [[ -f "$UNDO_DIR/sysctl" ]]; then
    local line
    while IFS= read -r line; do
      [[ -n "$line" ]] || continue
      if [[ "$(sysctl -n "${line%%=*}" 2>/dev/null)" != "${line#*=}" ]]; then
        sysctl -q -w "$line" >/dev/null && log "restored $line"
      fi
    done <"$UNDO_DIR/sysctl"
  fi
  if [[ -f "$UNDO_DIR/paths" ]]; then
    local path
    while IFS= read -r path; do
      [[ -e "$path" ]] || continue
      case "$path" in
        /var/lib/cni/results) find "$path" -maxdepth 1 -name 'courier-*' -delete 2>/dev/null || true ;;
        /var/lib/kubelet/device-plugins) rm -f "$path/kubelet.sock" "$path/kubelet_internal_checkpoint" ;;
      esac
      rmdir "$path" 2>/dev/null && log "removed $path (created by up)"
    done <"$UNDO_DIR/paths"
  fi
  rm -rf "$UNDO_DIR"
}

# Chains the kubelet makes for itself (kube-proxy --cleanup leaves them).
kubelet_chains_down() {
  local t c
  for t in filter nat mangle; do
    for c in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
      iptables -t "$t" -S "$c" >/dev/null 2>&1 || continue
      local rule
      while read -r rule; do
        # shellcheck disable=SC2086 # the rule is a list of arguments
        iptables -t "$t" ${rule/-A /-D } 2>/dev/null || true
      done < <(iptables -t "$t" -S | grep -- "-j $c\$" || true)
      iptables -t "$t" -F "$c" 2>/dev/null || true
      iptables -t "$t" -X "$c" 2>/dev/null || true
    done
  done
  ip6tables -t mangle -S KUBE-IPTABLES-HINT >/dev/null 2>&1 && { ip6tables -t mangle -X KUBE-IPTABLES-HINT 2>/dev/null || true; }
  ip6tables -t mangle -S KUBE-KUBELET-CANARY >/dev/null 2>&1 && { ip6tables -t mangle -X KUBE-KUBELET-CANARY 2>/dev/null || true; }
  local t6
  for t6 in filter nat mangle; do
    for c in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-PROXY-CANARY; do
      ip6tables -t "$t6" -F "$c" 2>/dev/null || true
      ip6tables -t "$t6" -X "$c" 2>/dev/null || true
    done
  done
}

# --- containerd --------------------------------------------------------------------

containerd_config() {
  mkdir -p "$CONTAINERD_DIR/certs.d/_default"
  cat >"$CONTAINERD_DIR/certs.d/_default/hosts.toml" <<EOF
# No registry is reachable from the local node (see config.toml).
server = "http://127.0.0.1:1"
[host."http://127.0.0.1:1"]
  capabilities = ["pull", "resolve"]
EOF
  cat >"$CONTAINERD_DIR/config.toml" <<EOF
# containerd for the local node; see docs/e2e.md. Generated by cluster.sh.
version = 3
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_DIR/containerd.sock.ttrpc"

[debug]
  address = "$CONTAINERD_DIR/debug.sock"

[plugins.'io.containerd.internal.v1.opt']
  path = "$CONTAINERD_DIR/opt"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  # Images are imported, never pulled: every registry resolves to a closed local port, so a
  # missing image fails at once and nothing is looked up or fetched off this machine.
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$CONTAINERD_DIR/certs.d"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"

[plugins.'io.containerd.cri.v1.runtime']
  # This VM withholds CAP_SYS_RESOURCE even from root: without this runc fails
  # with "can't get final child's PID from pipe" when it sets oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$CONTAINERD_DIR/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
}

containerd_ready() { ctr_ version; }

start_containerd() {
  containerd_config
  cni_config
  start containerd env PATH="$CONTAINERD_BIN:$PATH" "$CONTAINERD_BIN/containerd" \
    --config "$CONTAINERD_DIR/config.toml" --log-level warn
  wait_for containerd "containerd" 60 containerd_ready
  import_node_images
}

# The pause and CoreDNS images, built by e2e/node/build.sh.
import_node_images() {
  local have
  have="$(ctr_ -n k8s.io images ls -q)"
  if ! grep -qx "$PAUSE_IMAGE" <<<"$have"; then
    ctr_ -n k8s.io images import --label io.cri-containerd.pinned=pinned "$PAUSE_ARCHIVE" >/dev/null
    log "imported $PAUSE_IMAGE"
  fi
  if ! grep -qx "$COREDNS_IMAGE" <<<"$have"; then
    ctr_ -n k8s.io images import "$COREDNS_ARCHIVE" >/dev/null
    log "imported $COREDNS_IMAGE"
  fi
}

# Courier's images (built by e2e/images/build.sh for this checkout) into containerd. Never
# built here: pods using them wait. Built but an archive gone: an error, since the node would
# otherwise run whatever images some other checkout imported last.
import_images() {
  local rc=0
  "$ROOT/e2e/images/build.sh" list >/dev/null 2>&1 || rc=$?
  if [[ $rc == 3 ]]; then
    log "Courier's images are not built yet (e2e/images/build.sh build); pods using them will wait"
    return 0
  fi
  CTR="$CTR" CONTAINERD_ADDRESS="$CONTAINERD_SOCK" "$ROOT/e2e/images/build.sh" import
}

# --- kubelet -------------------------------------------------------------------------

kubelet_config() {
  mkdir -p "$KUBELET_DIR" "$NODE_DIR/pod-logs"
  cat >"$KUBELET_DIR/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $PKI/ca.crt }
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
# No host resolver for pods with dnsPolicy Default: nothing resolves off this machine.
resolvConf: ""
podLogsDir: $NODE_DIR/pod-logs
# The images were imported, not pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
maxPods: 110
serializeImagePulls: false
shutdownGracePeriod: 0s
EOF
}

kubelet_healthy() { curl -fsS http://127.0.0.1:10248/healthz | grep -qx ok; }
node_ready() {
  [[ "$(admin_kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

start_kubelet() {
  kubelet_config
  start kubelet "$K8S_BIN/kubelet" \
    --config="$KUBELET_DIR/config.yaml" \
    --kubeconfig="$CLUSTER_DIR/node.kubeconfig" \
    --root-dir="$KUBELET_DIR" \
    --cert-dir="$KUBELET_DIR/pki" \
    --node-ip="$NODE_IP" \
    --hostname-override="$NODE_NAME" \
    --v=1
  wait_for kubelet "kubelet /healthz" 60 kubelet_healthy
}

# --- kube-proxy ------------------------------------------------------------------------

# kube-proxy exits when its configuration file changes under it: rewrite only on a change.
kube_proxy_config() {
  local new="$NODE_DIR/kube-proxy.yaml.new"
  cat >"$new" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $CLUSTER_DIR/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
nodePortAddresses: [$NODE_IP/32]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables:
  localhostNodePorts: false
  masqueradeAll: false
# 0: leave the conntrack sysctls as they are.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  if cmp -s "$new" "$NODE_DIR/kube-proxy.yaml"; then rm -f "$new"; else mv "$new" "$NODE_DIR/kube-proxy.yaml"; fi
}

kube_proxy_healthy() { curl -sS http://127.0.0.1:10256/healthz | grep -q '"healthy":true'; }

start_kube_proxy() {
  kube_proxy_config
  start kube-proxy "$K8S_BIN/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml" --v=1
  wait_for kube-proxy "kube-proxy /healthz" 60 kube_proxy_healthy
}

# --- CoreDNS -------------------------------------------------------------------------------

coredns_ready() {
  [[ "$(admin_kubectl -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}')" == 1 ]]
}

start_coredns() {
  sed -e "s|@DNS_IP@|$DNS_IP|g" -e "s|@IMAGE@|$COREDNS_IMAGE|g" -e "s|@DOMAIN@|$CLUSTER_DOMAIN|g" \
    "$ROOT/e2e/node/coredns.yaml" | admin_kubectl apply --server-side --force-conflicts --field-manager=courier-cluster -f - >/dev/null
  wait_for kubelet "CoreDNS ready" 120 coredns_ready
}

# --- up and down ---------------------------------------------------------------------------

node_up() {
  record_host_state
  guard_up
  start_containerd
  import_images
  start_kubelet
  wait_for kubelet "node $NODE_NAME Ready" 120 node_ready
  # kube-proxy reads the node IP from the Node object the kubelet registered.
  start_kube_proxy
  start_coredns
}

# Stops the kubelet first (so it does not start pods again), then removes every
# pod sandbox through containerd, then the rest; undoes what up changed.
node_down() {
  stop kubelet
  if running_pid containerd >/dev/null; then
    crictl_ rmp --all --force >/dev/null 2>&1 || log "warning: crictl rmp failed"
  fi
  stop kube-proxy
  if [[ -x "$K8S_BIN/kube-proxy" ]]; then
    "$K8S_BIN/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true
  fi
  stop containerd
  stop_leftover_shims
  unmount_under "$NODE_DIR"
  kubelet_chains_down
  guard_down
  ip link del "$POD_BRIDGE" 2>/dev/null && log "removed bridge $POD_BRIDGE"
  restore_host_state
}

# Shims outlive containerd by design (they are their own session); those of
# this node are told its socket on their command line.
stop_leftover_shims() {
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do
    kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# Unmounts everything mounted below DIR, deepest first (pod volumes, overlay
# snapshots, network namespaces).
unmount_under() {
  local dir="$1" mnt
  [[ -d "$dir" ]] || return 0
  while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
}

node_status() {
  local c pid
  for c in containerd kubelet kube-proxy; do
    if pid="$(running_pid "$c")"; then
      printf '%-24s running  pid %s\n' "$c" "$pid"
    else
      printf '%-24s stopped\n' "$c"
    fi
  done
}
