#!/usr/bin/env bash
# What the tests run against, nothing listening beyond 127.0.0.1. `make test` runs `install` first.
#
#   install  everything `make test` runs: python -m llmplane.toolchain.prerequisites install
#            test (the one list of external tools, shared with `make up`).
#   start    for a person looking around: python -m llmplane.toolchain.localstack in
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
# Where the Go toolchain's tarball installs, in case PATH lacks it.
[ -x /usr/local/go/bin/go ] && PATH=$PATH:/usr/local/go/bin

log() { echo "services: $*" >&2; }

running() { [ -f "$RUN_DIR/localstack.pid" ] && kill -0 "$(cat "$RUN_DIR/localstack.pid")" 2>/dev/null; }

start() {
  if running; then log "already running (pid $(cat "$RUN_DIR/localstack.pid"))"; return; fi
  mkdir -p "$RUN_DIR"
  cd "$ROOT"
  nohup "$PY" -m llmplane.toolchain.localstack --dir "$RUN_DIR" >"$RUN_DIR/localstack.out" 2>&1 &
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
  install) "$PY" -m llmplane.toolchain.prerequisites install test ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
