#!/usr/bin/env bash
# Real servers the monitoring tests run against, nothing listening beyond 127.0.0.1.
#
#   install  Debian's prometheus (with promtool) and prometheus-alertmanager;
#            Grafana Loki built from its Go module into .tools/loki/ (cached).
#            Debian's package named `loki` is an unrelated genetics tool.
#   start    for a person looking around: the simulator on :8000, Prometheus
#            on :9090 with our rules, Loki on :3100 (pids in .tools/run/).
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
  local src=$LOKI_DIR/src-$LOKI_VERSION
  [ -f "$src/go.mod" ] || fetch_loki_source "$src" || return 0
  log "building loki $LOKI_VERSION in $src (about 10 minutes on 2 cores, cached after)"
  local vprefix=$LOKI_MODULE/pkg/util/build
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -tags netgo \
    -ldflags "-s -w -X $vprefix.Version=${LOKI_VERSION#v} -X $vprefix.Branch=module-proxy" \
    -o "$LOKI_BIN.tmp" ./cmd/loki)
  mv "$LOKI_BIN.tmp" "$LOKI_BIN"
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

running() { [ -f "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

spawn() {
  local name=$1; shift
  if running "$name"; then log "$name already running"; return; fi
  nohup "$@" >"$RUN_DIR/$name.out" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
  log "$name started (pid $!, output $RUN_DIR/$name.out)"
}

start() {
  mkdir -p "$RUN_DIR/prometheus-data" "$RUN_DIR/loki-data"
  (cd "$ROOT" && "$PY" -m monitoring.rules --out "$RUN_DIR/rules.yaml")
  cat >"$RUN_DIR/prometheus.yml" <<EOF
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: ["$RUN_DIR/rules.yaml"]
scrape_configs:
  - job_name: vllm-simulator
    static_configs: [{targets: ["127.0.0.1:8000"]}]
EOF
  spawn simulator "$PY" -m monitoring.simulator --host 127.0.0.1 --port 8000 \
    --mode normal --log "$RUN_DIR/requests.log"
  spawn prometheus prometheus --config.file="$RUN_DIR/prometheus.yml" \
    --web.listen-address=127.0.0.1:9090 --storage.tsdb.path="$RUN_DIR/prometheus-data"
  if [ -x "$LOKI_BIN" ]; then
    (cd "$ROOT" && "$PY" -m monitoring.loki_config --port 3100 --dir "$RUN_DIR/loki-data" \
      >"$RUN_DIR/loki.yaml")
    spawn loki "$LOKI_BIN" -config.file="$RUN_DIR/loki.yaml"
  else
    log "loki not installed: run '$0 install'"
  fi
}

stop() {
  local name
  for name in loki prometheus simulator; do
    if running "$name"; then kill "$(cat "$RUN_DIR/$name.pid")" && log "$name stopped"; fi
    rm -f "$RUN_DIR/$name.pid"
  done
}

case "${1:-}" in
  install) install_debian; install_loki ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
