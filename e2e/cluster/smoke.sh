#!/usr/bin/env bash
# Smoke test of the local control plane started by `cluster.sh up`.
# Exercises the API paths Courier relies on: workload controllers, service
# account tokens and TokenReview, Leases, CRDs with CEL validation,
# server-side apply, garbage collection and namespace deletion.
# Stops at the first failure and exits non-zero.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
eval "$("$HERE/cluster.sh" env)"
command -v kubectl >/dev/null || { echo "kubectl not found; run cluster.sh build" >&2; exit 1; }
[[ -f "$KUBECONFIG" ]] || { echo "no $KUBECONFIG; run cluster.sh up" >&2; exit 1; }

NS="courier-smoke-$$"
CRD=widgets.smoke.courier.dev
PASSED=0
CURRENT=""

k() { kubectl "$@"; }
kn() { kubectl -n "$NS" "$@"; }

# eventually SECONDS DESCRIPTION COMMAND...: retries COMMAND every half second.
eventually() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "  timed out after ${seconds}s waiting for: $what" >&2
      return 1
    fi
    sleep 0.5
  done
}

fail() {
  echo "  $*" >&2
  return 1
}

step() {
  CURRENT="$1"
  shift
  local start=$SECONDS
  "$@"
  PASSED=$((PASSED + 1))
  printf 'ok   %-60s %3ss\n' "$CURRENT" "$((SECONDS - start))"
}

on_exit() {
  local rc=$?
  if ((rc != 0)); then
    printf 'FAIL %s\n' "$CURRENT"
    echo "$PASSED passed, 1 failed"
    k delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  else
    echo "$PASSED passed, 0 failed"
  fi
  k delete crd "$CRD" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  exit "$rc"
}
trap on_exit EXIT

# --- steps ---------------------------------------------------------------------

server_is_ready() {
  [[ "$(k get --raw /readyz)" == ok ]] || fail "/readyz is not ok"
  k version >/dev/null || fail "kubectl and server versions do not agree"
}

create_namespace() {
  k create namespace "$NS" >/dev/null
  eventually 30 "default ServiceAccount in $NS" kn get serviceaccount default
}

# count KIND: number of objects of KIND labelled app=smoke in the test namespace.
count() { kn get "$1" -l app=smoke -o name | awk 'END { print NR }'; }
has_replicaset() { (($(count replicasets) >= 1)); }
has_two_pods() { (($(count pods) == 2)); }
is_gone() { ! kubectl get "$@" >/dev/null 2>&1; }

deployment_creates_replicaset_and_pods() {
  kn create deployment smoke --image=courier/smoke:1 --replicas=2 >/dev/null
  eventually 60 "a ReplicaSet for deployment smoke" has_replicaset
  eventually 60 "two Pods for deployment smoke" has_two_pods
  local owner
  owner="$(kn get replicasets -l app=smoke -o jsonpath='{.items[0].metadata.ownerReferences[0].name}')"
  [[ "$owner" == smoke ]] || fail "ReplicaSet owner is '$owner', expected deployment smoke"
}

# review TOKEN: prints status.authenticated and status.user.username of a TokenReview.
review() {
  k create -f - -o jsonpath='{.status.authenticated} {.status.user.username}' <<EOF
apiVersion: authentication.k8s.io/v1
kind: TokenReview
spec:
  token: "$1"
EOF
}

token_is_authenticated_by_token_review() {
  kn create serviceaccount robot >/dev/null
  local token result
  token="$(kn create token robot --duration=10m)"
  [[ -n "$token" ]] || fail "empty token"
  result="$(review "$token")"
  [[ "$result" == "true system:serviceaccount:$NS:robot" ]] || fail "TokenReview said: '$result'"
  result="$(review "${token}AAAA")"
  [[ "$result" != true* ]] || fail "a token with a damaged signature was authenticated"
}

lease_can_be_created_and_renewed() {
  kn apply -f - >/dev/null <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: smoke-leader
spec:
  holderIdentity: smoke-a
  leaseDurationSeconds: 15
EOF
  kn patch lease smoke-leader --type=merge -p '{"spec":{"holderIdentity":"smoke-b"}}' >/dev/null
  local holder
  holder="$(kn get lease smoke-leader -o jsonpath='{.spec.holderIdentity}')"
  [[ "$holder" == smoke-b ]] || fail "lease holder is '$holder'"
}

widget() {
  cat <<EOF
apiVersion: smoke.courier.dev/v1
kind: Widget
metadata:
  name: $1
  namespace: $NS
spec:
  replicas: $2
  minReplicas: $3
EOF
}

crd_enforces_cel_rule() {
  k apply -f - >/dev/null <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $CRD
spec:
  group: smoke.courier.dev
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [replicas, minReplicas]
            properties:
              replicas: {type: integer}
              minReplicas: {type: integer}
            x-kubernetes-validations:
            - rule: self.minReplicas <= self.replicas
              message: minReplicas must not exceed replicas
EOF
  k wait --for=condition=Established "crd/$CRD" --timeout=60s >/dev/null
  eventually 30 "widgets served" kn get widgets
  local out
  if out="$(widget bad 1 3 | k apply --dry-run=server -f - 2>&1)"; then
    fail "an invalid Widget was accepted: $out"
  fi
  grep -q 'minReplicas must not exceed replicas' <<<"$out" || fail "unexpected refusal: $out"
  widget good 3 1 | k apply --dry-run=server -f - >/dev/null
  widget good 3 1 | k apply -f - >/dev/null
  kn get widget good >/dev/null
}

server_side_apply_tracks_field_manager() {
  kubectl create configmap ssa --from-literal=color=blue --dry-run=client -o yaml -n "$NS" \
    | kn apply --server-side --field-manager=x -f - >/dev/null
  local managers
  managers="$(kn get configmap ssa --show-managed-fields \
    -o jsonpath='{range .metadata.managedFields[*]}{.manager}/{.operation} {end}')"
  [[ "$managers" == *"x/Apply"* ]] || fail "managedFields has no x/Apply entry: $managers"
  local out
  if out="$(kubectl create configmap ssa --from-literal=color=red --dry-run=client -o yaml -n "$NS" \
    | kn apply --server-side --field-manager=y -f - 2>&1)"; then
    fail "a second manager took over field color without a conflict: $out"
  fi
  grep -qi conflict <<<"$out" || fail "unexpected error: $out"
}

garbage_collector_removes_dependents() {
  kn create configmap gc-owner --from-literal=a=b >/dev/null
  local uid
  uid="$(kn get configmap gc-owner -o jsonpath='{.metadata.uid}')"
  kn apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: gc-dependent
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: gc-owner
    uid: $uid
data: {a: b}
EOF
  kn delete configmap gc-owner --wait=true >/dev/null
  eventually 60 "gc-dependent to be collected" is_gone -n "$NS" configmap gc-dependent
}

namespace_deletion_completes() {
  k delete namespace "$NS" --wait=false >/dev/null
  eventually 120 "namespace $NS to disappear" is_gone namespace "$NS"
}

step "apiserver /readyz and version skew" server_is_ready
step "namespace $NS with its default ServiceAccount" create_namespace
step "Deployment creates a ReplicaSet and two Pods" deployment_creates_replicaset_and_pods
step "ServiceAccount token passes TokenReview" token_is_authenticated_by_token_review
step "Lease create and renew" lease_can_be_created_and_renewed
step "CRD with CEL rule refuses invalid, accepts valid" crd_enforces_cel_rule
step "server-side apply records field manager and conflicts" server_side_apply_tracks_field_manager
step "garbage collector deletes an owned object" garbage_collector_removes_dependents
step "namespace deletion completes" namespace_deletion_completes
