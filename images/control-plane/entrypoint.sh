#!/bin/sh
# Entry point of the flyk control-plane machine.
#
# 1. Before K3s's first start, copy flyk's CA files (written by the machine's `files[]` from
#    app secrets into $FLYK_PKI_DIR) to where K3s looks for custom CAs:
#    $K3S_DATA_DIR/server/tls/. On later boots the volume already holds them and K3s's own
#    state wins, so a restart never swaps the CA under a running cluster.
# 2. Start `k3s server "$@"` (the flags come from the machine config's init.cmd).
# 3. Once the API server answers, start `flyk ext k8s kubelet` with K3s's admin kubeconfig.
# 4. If either process exits, stop the other and exit non-zero: Fly restarts the machine
#    (restart policy "always"), which is simpler and more honest than restarting one half.
#    SIGTERM (Fly stopping the machine) stops both and exits 0.
set -eu

K3S_DATA_DIR="${K3S_DATA_DIR:-/var/lib/rancher/k3s}"
FLYK_PKI_DIR="${FLYK_PKI_DIR:-/etc/flyk/pki}"
TLS_DIR="$K3S_DATA_DIR/server/tls"
POLL_SECONDS="${FLYK_ENTRYPOINT_POLL_SECONDS:-1}"  # how often to look at k3s and the kubelet
KUBECONFIG_PATH="${K3S_KUBECONFIG_PATH:-/etc/rancher/k3s/k3s.yaml}"

# K3s's custom-CA files (flyk/k8s/pki.py TLS_FILES), less server-ca.crt, which is placed last.
CA_FILES="server-ca.key client-ca.crt client-ca.key request-header-ca.crt request-header-ca.key
          etcd/peer-ca.crt etcd/peer-ca.key etcd/server-ca.crt etcd/server-ca.key service.key"

log() { printf 'flyk-control-plane: %s\n' "$*" >&2; }

place_custom_cas() {
  if [ -f "$TLS_DIR/server-ca.crt" ]; then
    log "K3s already has its CAs on the volume; leaving them alone"
    return
  fi
  if [ ! -f "$FLYK_PKI_DIR/server-ca.crt" ]; then
    log "no CA files in $FLYK_PKI_DIR; K3s would generate its own and flyk's kubeconfig would not trust it"
    exit 1
  fi
  # All or nothing: server-ca.crt is what says "K3s has its CAs" on the next boot, so every
  # file is checked first and server-ca.crt goes last. A boot that stopped half-way would
  # otherwise leave K3s to generate the missing CAs itself, which flyk's kubeconfig and
  # `flyk ext k8s kubeconfig` would never trust.
  for file in $CA_FILES server-ca.crt; do
    if [ ! -f "$FLYK_PKI_DIR/$file" ]; then
      log "CA file $FLYK_PKI_DIR/$file is missing; not starting K3s with part of flyk's CAs"
      exit 1
    fi
  done
  umask 077
  mkdir -p "$TLS_DIR/etcd"
  for file in $CA_FILES server-ca.crt; do
    install -m 0600 "$FLYK_PKI_DIR/$file" "$TLS_DIR/$file"
  done
  log "placed flyk's CAs in $TLS_DIR"
}

# The CA keys also arrive as environment variables (Fly injects app secrets); neither K3s nor
# the kubelet needs them there, so they are dropped before anything else starts.
drop_pki_env() {
  for name in $(env | sed -n 's/^\(FLYK_PKI_[A-Z_]*\)=.*/\1/p'); do
    unset "$name"
  done
}

wait_for_api() {
  i=0
  while [ $i -lt 600 ]; do
    if [ -f "$KUBECONFIG_PATH" ] && k3s kubectl --kubeconfig "$KUBECONFIG_PATH" get --raw /readyz >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$K3S_PID" 2>/dev/null; then
      return 1
    fi
    i=$((i + 1))
    sleep "$POLL_SECONDS"
  done
  return 1
}

place_custom_cas
drop_pki_env

# The kubelet's Machines API token (an app secret, so also in the environment) is for the
# kubelet alone: kept in a shell variable, out of K3s's environment.
KUBELET_TOKEN="${FLYK_KUBELET_TOKEN:-${FLY_API_TOKEN:-}}"
unset FLYK_KUBELET_TOKEN FLY_API_TOKEN

if [ "${1:-}" != "server" ]; then
  set -- server "$@"
fi
log "starting k3s $*"
k3s "$@" &
K3S_PID=$!

# Fly stops a machine with SIGTERM (tini hands it to this script): pass it on, wait, and exit
# 0, a clean stop rather than the failure that the loop below reports.
on_stop() {
  log "stopping k3s and the kubelet"
  kill -TERM "$K3S_PID" ${KUBELET_PID:-} 2>/dev/null || true
  wait || true
  exit 0
}
trap on_stop TERM INT

if ! wait_for_api; then
  log "the API server did not come up"
  kill -TERM "$K3S_PID" 2>/dev/null || true
  wait "$K3S_PID" || true
  exit 1
fi

# The kubelet's Machines API access: its own token and the API URL.
export FLY_FLAPS_BASE_URL="${FLYK_API_URL:-http://_api.internal:4280}"
export KUBECONFIG="$KUBECONFIG_PATH"

log "starting flyk ext k8s kubelet"
FLY_API_TOKEN="$KUBELET_TOKEN" flyk ext k8s kubelet &
KUBELET_PID=$!

# Whichever exits first takes the machine down with it.
while kill -0 "$K3S_PID" 2>/dev/null && kill -0 "$KUBELET_PID" 2>/dev/null; do
  sleep "$POLL_SECONDS"
done
log "a control-plane process exited; stopping the machine so that Fly restarts it"
kill -TERM "$K3S_PID" "$KUBELET_PID" 2>/dev/null || true
wait || true
exit 1
