#!/usr/bin/env bash
# The first CI run of a bare machine, measured: a fresh clone of this repository runs `bash .ci/run` (`make up`,
# then `make test`) with every cache empty: the llmplane cache (Go tools, checkov, vLLM's wheel, the LogQL
# grammar), Go's build and module caches, and pip's cache, all in a new folder. Debian's packages cannot be
# uninstalled for a measurement; on a machine that has none of them, add their install (about a minute).
#
#   bash benchmarks/bare_machine.sh            # about an hour on 2 cores; prints the times, keeps the log
#
# Prints the wall time of `make up`, of `make up` + `make test`, and each Go build's time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/llmplane-bare-XXXXXX)
git clone -q "$ROOT" "$WORK/clone"
export LLMPLANE_CACHE=$WORK/cache/llmplane GOCACHE=$WORK/cache/go-build GOMODCACHE=$WORK/cache/go-mod
export PIP_CACHE_DIR=$WORK/cache/pip npm_config_cache=$WORK/cache/npm
echo "bare machine: clone and empty caches in $WORK; log in $WORK/ci.log"
started=$(date +%s)
status=0
(cd "$WORK/clone" && CI=true bash .ci/run) >"$WORK/ci.log" 2>&1 || status=$?
echo "bare machine: bash .ci/run exited $status after $(( $(date +%s) - started )) s"
grep -E '^ci: make up|^gotools:   .*: built in' "$WORK/ci.log" || true
exit "$status"
