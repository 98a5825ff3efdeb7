#!/usr/bin/env bash
# The gate's whole world on this machine, natively and on loopback only: vllm-sim (a vLLM-compatible
# simulator), Prometheus (Debian's package) scraping it as job "vllm-service", and an MLflow server with a
# registered model "demo-model" whose version 1 carries the alias eval-passed.
#
#   scripts/local-stack.sh up       start all three (reuses what is already running), print the env vars
#   scripts/local-stack.sh env      print the env vars again:  eval "$(scripts/local-stack.sh env)"
#   scripts/local-stack.sh status   which of the three are running
#   scripts/local-stack.sh down     stop them (only the processes this script started); state is kept, so
#                                   the next `up` finds the previous MLflow runs (a baseline)
#   scripts/local-stack.sh clean    stop them and delete the state
#
# Then:
#   eval "$(scripts/local-stack.sh env)"
#   target/debug/load-test && target/debug/perf-decision
#
# The servers are started by target/debug/vpg-stack (crates/test-support): the same launchers the tests use.
# This script builds it (and vllm-sim) when needed, and installs MLflow with INSTALL=1.
#
# Env:
#   VPG_CACHE_DIR      default $HOME/.cache/vllm-perf-gate (MLflow venv, stack state)
#   VPG_STACK_DIR      state, logs, PID files; default $VPG_CACHE_DIR/local-stack
#   MLFLOW_VENV        default $VPG_CACHE_DIR/mlflow-venv (INSTALL=1 creates it: ~90 s, 850 MB)
#   VLLM_SIM_PORT, PROMETHEUS_PORT, MLFLOW_PORT   defaults 18000, 19090, 15000
#   SCRAPE_INTERVAL    Prometheus scrape interval, default 2s (load-test gets the same value)
#   VLLM_SIM_ARGS      flags for vllm-sim, e.g. "--ttft 0.3 --max-num-seqs 2" to slow it down (they win over
#                      the stack's defaults; any VLLM_SIM_* env var of the simulator works too)
#   VLLM_SIM_BIN       the simulator binary; default target/debug/vllm-sim (built with the stack's tool)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
MLFLOW_VENV=${MLFLOW_VENV:-$CACHE/mlflow-venv}
MLFLOW_VERSION=3.17.2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
export VPG_STACK_DIR=${VPG_STACK_DIR:-$CACHE/local-stack}
export MLFLOW_BIN=$MLFLOW_VENV/bin/mlflow

log() { echo "local-stack: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

cmd=${1:-up}
case $cmd in
up | env | status | down | clean) ;;
*)
  echo "usage: $0 up|env|status|down|clean" >&2
  exit 2
  ;;
esac

if [ "$cmd" = up ]; then
  command -v prometheus >/dev/null ||
    die "prometheus not found: apt-get install -y --no-install-recommends prometheus"
  if [ ! -x "$MLFLOW_BIN" ]; then
    [ "${INSTALL:-0}" = 1 ] ||
      die "MLflow not found in $MLFLOW_VENV; rerun with INSTALL=1 to install mlflow==$MLFLOW_VERSION there (~90 s)"
    log "installing mlflow==$MLFLOW_VERSION into $MLFLOW_VENV"
    python3 -m venv "$MLFLOW_VENV"
    "$MLFLOW_VENV/bin/pip" install -q "mlflow==$MLFLOW_VERSION" >&2
  fi
  # Incremental: a second or two when nothing changed.
  (cd "$ROOT" && cargo build -q --locked -p test-support --bin vpg-stack -p vllm-sim --bin vllm-sim) >&2
elif [ ! -x "$BIN/vpg-stack" ]; then
  (cd "$ROOT" && cargo build -q --locked -p test-support --bin vpg-stack) >&2
fi

"$BIN/vpg-stack" "$cmd"
if [ "$cmd" = up ]; then
  cat <<EOF
# Next:
#   eval "\$($0 env)"
#   $ROOT/target/debug/load-test && $ROOT/target/debug/perf-decision
# UIs: Prometheus http://127.0.0.1:${PROMETHEUS_PORT:-19090}  MLflow http://127.0.0.1:${MLFLOW_PORT:-15000}
# Stop: $0 down
EOF
fi
