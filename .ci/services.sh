#!/usr/bin/env bash
# What the tests run against, nothing listening beyond 127.0.0.1. `make test` runs `install` first.
#
#   install  Debian's prometheus (with promtool), prometheus-alertmanager and lua5.4;
#            Go tools built once from the Go module proxy into ~/.cache/llmplane
#            (toolchain/gotools.py): the embedded cluster's etcd, kube-apiserver,
#            kube-controller-manager, kube-scheduler, kubectl and KWOK, KEDA's
#            operator and metrics server, VictoriaLogs (the log store the tests
#            push Loki-format logs to; Loki itself is AGPL and never built or run
#            here), actionlint; Grafana's LogQL grammar from npm; vLLM's
#            release wheel, whose sources the tests read.
#   start    for a person looking around: python -m monitoring.localstack in
#            the background: the simulator on :8000, Prometheus on :9090 with
#            our rules, VictoriaLogs on :9428, data in .tools/run/.
#   stop     stops what `start` started.
#
# Every subcommand is idempotent. The tests start their own short-lived
# servers on free ports; they only need `install`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=$ROOT/.tools/run
PY=${PYTHON:-$ROOT/.venv/bin/python}
CACHE=${LLMPLANE_CACHE:-$HOME/.cache/llmplane}
LEZER_LOGQL_VERSION=$(sed -n 's/^LEZER_LOGQL_VERSION = "\(.*\)"$/\1/p' "$ROOT/monitoring/logql/__init__.py")
# Longest builds first: with two at a time, a bare machine finishes them soonest.
GO_TOOLS="pulumi-resource-kubernetes keda keda-adapter kube-apiserver pulumi kube-controller-manager kube-scheduler kubectl kwok etcd victoria-logs actionlint epp epp-probe"
# Where the Go toolchain's tarball installs, in case PATH lacks it.
[ -x /usr/local/go/bin/go ] && PATH=$PATH:/usr/local/go/bin

log() { echo "services: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_debian() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  command -v lua5.4 >/dev/null || missing+=(lua5.4)  # runs the gateway's token-usage Lua filter in its tests
  [ ${#missing[@]} = 0 ] && { log "prometheus, promtool, alertmanager, node, lua present"; return; }
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The packages' postinst would start system services; policy-rc.d 101 stops that.
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee $policy >/dev/null
    as_root chmod +x $policy
    created=1
  fi
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$created" ] && as_root rm -f $policy
  return 0
}

install_lezer_logql() {
  local dir=$CACHE/npm/lezer-logql-$LEZER_LOGQL_VERSION
  if [ -d "$dir/node_modules/@grafana/lezer-logql" ]; then log "@grafana/lezer-logql $LEZER_LOGQL_VERSION cached"; return; fi
  log "npm install @grafana/lezer-logql@$LEZER_LOGQL_VERSION into $dir"
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent "@grafana/lezer-logql@$LEZER_LOGQL_VERSION")
}

# vLLM's release wheel, read as source by the tests (its flags, finish reasons, metric names); not installed.
install_vllm_wheel() {
  local version dir
  version=$(sed -n 's/^VLLM_VERSION = "\(.*\)"$/\1/p' "$ROOT/tests/vllm_wheel.py")
  dir=$CACHE/vllm/$version
  if compgen -G "$dir/vllm-$version-*.whl" >/dev/null; then log "vllm $version wheel cached"; return; fi
  log "pip download vllm==$version (the wheel only, ~500 MB, read as source by the tests) into $dir"
  "$PY" -m pip download --disable-pip-version-check --no-deps -q -d "$dir" "vllm==$version"
}

install_go_tools() {
  # shellcheck disable=SC2086  # one word per tool
  "$PY" -m toolchain.gotools build $GO_TOOLS
}

running() { [ -f "$RUN_DIR/localstack.pid" ] && kill -0 "$(cat "$RUN_DIR/localstack.pid")" 2>/dev/null; }

start() {
  if running; then log "already running (pid $(cat "$RUN_DIR/localstack.pid"))"; return; fi
  mkdir -p "$RUN_DIR"
  cd "$ROOT"
  nohup "$PY" -m monitoring.localstack --dir "$RUN_DIR" >"$RUN_DIR/localstack.out" 2>&1 &
  echo $! >"$RUN_DIR/localstack.pid"
  log "started (pid $(cat "$RUN_DIR/localstack.pid")); output in $RUN_DIR/localstack.out"
}

stop() {
  if running; then
    local pid
    pid=$(cat "$RUN_DIR/localstack.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
    log "stopped"
  fi
  rm -f "$RUN_DIR/localstack.pid"
}

case "${1:-}" in
  install) install_debian; install_lezer_logql; install_vllm_wheel; install_go_tools ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
