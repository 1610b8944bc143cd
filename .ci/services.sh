#!/usr/bin/env bash
# Real servers the monitoring tests run against, nothing listening beyond 127.0.0.1.
#
#   install  Debian's prometheus (with promtool) and prometheus-alertmanager;
#            Grafana Loki built from its Go module into .tools/loki/ (cached).
#            Debian's package named `loki` is an unrelated genetics tool.
#   start    for a person looking around: python -m monitoring.localstack in
#            the background: the simulator on :8000, Prometheus on :9090 with
#            our rules, Loki on :3100, data in .tools/run/.
#   stop     stops what `start` started.
#
# Every subcommand is idempotent. The tests start their own short-lived
# servers on free ports; they only need `install`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOKI_MODULE=github.com/grafana/loki/v3
LOKI_VERSION=${LOKI_VERSION:-v3.7.8}
LOKI_DIR=$ROOT/.tools/loki
LOKI_BIN=$LOKI_DIR/loki-$LOKI_VERSION
# Written instead of the binary when the proxy refuses the module: the e2e
# test skips its Loki half with this text as the reason.
LOKI_UNAVAILABLE=$LOKI_DIR/UNAVAILABLE
RUN_DIR=$ROOT/.tools/run
PY=${PYTHON:-$ROOT/.venv/bin/python}
# Where the Go toolchain's tarball installs, in case PATH lacks it.
[ -x /usr/local/go/bin/go ] && PATH=$PATH:/usr/local/go/bin

log() { echo "services: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_debian() {
  local missing=()
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  [ ${#missing[@]} = 0 ] && { log "prometheus, promtool, alertmanager present"; return; }
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

install_loki() {
  if [ -x "$LOKI_BIN" ]; then log "loki $LOKI_VERSION cached at $LOKI_BIN"; return; fi
  mkdir -p "$LOKI_DIR"
  rm -f "$LOKI_UNAVAILABLE"
  if ! command -v go >/dev/null; then
    echo "no Go toolchain on PATH to build Loki with" >"$LOKI_UNAVAILABLE"
    log "$(cat "$LOKI_UNAVAILABLE")"
    return 0
  fi
  local src=$LOKI_DIR/src-$LOKI_VERSION
  [ -f "$src/go.mod" ] || fetch_loki_source "$src" || return 0
  log "building loki $LOKI_VERSION in $src (5 to 10 minutes on 2 cores; the binary is cached)"
  local vprefix=$LOKI_MODULE/pkg/util/build
  if ! (cd "$src" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -tags netgo \
    -ldflags "-s -w -X $vprefix.Version=${LOKI_VERSION#v} -X $vprefix.Branch=module-proxy" \
    -o "$LOKI_BIN.tmp" ./cmd/loki); then
    echo "go build of $LOKI_MODULE@$LOKI_VERSION failed: see the output of .ci/services.sh install" \
      >"$LOKI_UNAVAILABLE"
    return 1
  fi
  mv "$LOKI_BIN.tmp" "$LOKI_BIN"
  rm -rf "$src"
  log "$("$LOKI_BIN" -version 2>&1 | head -1)"
}

# Loki's go.mod replaces github.com/grafana/loki/pkg/push with ./pkg/push, a
# nested module that the module zip leaves out, and `go install module@version`
# refuses replace directives: so copy the module to a writable folder and put
# the push module, at the version go.mod requires, where the replace expects it.
fetch_loki_source() {
  local src=$1 dir push_version push_dir
  dir=$(module_dir "$LOKI_MODULE@$LOKI_VERSION") || return 1
  push_version=$(awk '$1 == "github.com/grafana/loki/pkg/push" && $2 ~ /^v/ {print $2; exit}' "$dir/go.mod")
  push_dir=$(module_dir "github.com/grafana/loki/pkg/push@$push_version") || return 1
  rm -rf "$src.tmp"
  cp -r "$dir" "$src.tmp"
  cp -r "$push_dir" "$src.tmp/pkg/push"
  chmod -R u+w "$src.tmp"
  mv "$src.tmp" "$src"
}

# Prints the module's folder in the module cache, or records why the proxy
# refused it in $LOKI_UNAVAILABLE.
module_dir() {
  local info
  if ! info=$(go mod download -json "$1" 2>&1); then
    printf 'Go module proxy refused %s: %s\n' "$1" "$(printf '%s' "$info" | tr '\n' ' ')" \
      >"$LOKI_UNAVAILABLE"
    log "$(cat "$LOKI_UNAVAILABLE")"
    return 1
  fi
  printf '%s' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
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
  install) install_debian; install_loki ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
