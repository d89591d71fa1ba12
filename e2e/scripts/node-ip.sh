#!/usr/bin/env bash
# The node IP (10.87.0.1) of the local cluster, on a bridge without ports in the
# current network namespace. The apiserver, the kubelet, MiniDFS and the servers
# tests start on the host bind it, so that pods (which route to it through their
# CNI gateway) and host processes reach them at the same address.
#
# With it comes a guard (iptables mangle chain COURIER-GUARD on POSTROUTING): no
# packet to or from the cluster's ranges (node 10.87.0.0/16, pods 10.88.0.0/16,
# services 10.96.0.0/24) leaves through any interface but loopback and the
# cluster's two bridges.
#
#   node-ip.sh up      create both (idempotent)
#   node-ip.sh down    remove both, unless something still listens on the node IP
#   node-ip.sh addr    print the node IP
set -euo pipefail

BRIDGE=courier0
POD_BRIDGE=courier-cni0
IP=10.87.0.1
RANGES=(10.87.0.0/16 10.88.0.0/16 10.96.0.0/24)

guard_up() {
  iptables -t mangle -N COURIER-GUARD 2>/dev/null || iptables -t mangle -F COURIER-GUARD
  local dev range
  for dev in lo "$BRIDGE" "$POD_BRIDGE"; do
    iptables -t mangle -A COURIER-GUARD -o "$dev" -j RETURN
  done
  for range in "${RANGES[@]}"; do
    iptables -t mangle -A COURIER-GUARD -d "$range" -j DROP
    iptables -t mangle -A COURIER-GUARD -s "$range" -j DROP
  done
  iptables -t mangle -C POSTROUTING -j COURIER-GUARD 2>/dev/null \
    || iptables -t mangle -I POSTROUTING -j COURIER-GUARD
}

guard_down() {
  iptables -t mangle -D POSTROUTING -j COURIER-GUARD 2>/dev/null || true
  iptables -t mangle -F COURIER-GUARD 2>/dev/null || true
  iptables -t mangle -X COURIER-GUARD 2>/dev/null || true
}

case "${1:-}" in
  up)
    command -v iptables >/dev/null || {
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
    }
    guard_up
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    # `replace` is idempotent. (A `ip addr show | grep -q` check under pipefail fails
    # at random: grep exits at the match, ip dies of SIGPIPE writing the inet6 lines.)
    ip addr replace "$IP/32" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    ;;
  down)
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
      if [[ -n "$(ss -Hltn "src $IP" 2>/dev/null)" ]]; then
        echo "node-ip: $IP still has listeners; keeping $BRIDGE" >&2
        exit 0
      fi
      ip link del "$BRIDGE"
    fi
    guard_down
    ;;
  addr) echo "$IP" ;;
  *)
    echo "usage: node-ip.sh up|down|addr" >&2
    exit 2
    ;;
esac
