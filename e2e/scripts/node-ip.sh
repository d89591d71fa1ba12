#!/usr/bin/env bash
# The node IP (10.87.0.1) of the local cluster, on a bridge without ports in the
# current network namespace. The apiserver, the kubelet, MiniDFS and the servers
# tests start on the host bind it, so that pods (which route to it through their
# CNI gateway) and host processes reach them at the same address. Nothing routes
# it anywhere else.
#
#   node-ip.sh up      create it (idempotent)
#   node-ip.sh down    remove it, unless something still listens on it
#   node-ip.sh addr    print it
set -euo pipefail

BRIDGE=courier0
IP=10.87.0.1

case "${1:-}" in
  up)
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
      ip link add "$BRIDGE" type bridge
    fi
    ip addr show dev "$BRIDGE" | grep -q "inet $IP/32" || ip addr add "$IP/32" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    ;;
  down)
    ip link show "$BRIDGE" >/dev/null 2>&1 || exit 0
    if [[ -n "$(ss -Hltn "src $IP" 2>/dev/null)" ]]; then
      echo "node-ip: $IP still has listeners; keeping $BRIDGE" >&2
      exit 0
    fi
    ip link del "$BRIDGE"
    ;;
  addr) echo "$IP" ;;
  *)
    echo "usage: node-ip.sh up|down|addr" >&2
    exit 2
    ;;
esac
