# shellcheck shell=bash
# A real MLflow tracking server on loopback (sqlite store, proxied artifacts), for tests.
#
#   source scripts/lib/common.sh scripts/lib/mlflow.sh
#   vpg_mlflow_start NAME DIR PORT      # store DIR/mlflow.db, artifacts DIR/artifacts, log DIR/mlflow.log;
#                                       # waits for /health (up to $MLFLOW_START_TIMEOUT s, default 180)
#   vpg_stop NAME
#
# The server comes from the venv $MLFLOW_VENV (default ${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}/mlflow-venv;
# scripts/install-test-deps.sh creates it). MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false: without it MLflow 3
# also starts a job runner and 7 huey consumers (GenAI only) that ignore SIGTERM. --workers 1 on 2 cores.

[ -n "${VPG_MLFLOW_SH:-}" ] && return 0
VPG_MLFLOW_SH=1

vpg_mlflow_bin() {
  local venv=${MLFLOW_VENV:-${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}/mlflow-venv}
  [ -x "$venv/bin/mlflow" ] || vpg_die "no mlflow in $venv: run scripts/install-test-deps.sh"
  echo "$venv/bin/mlflow"
}

vpg_mlflow_start() {
  local name=$1 dir=$2 port=$3 bin
  bin=$(vpg_mlflow_bin)
  vpg_port_busy "$port" && vpg_die "port $port is busy"
  dir=$(mkdir -p "$dir/artifacts" && cd "$dir" && pwd)
  vpg_start "$name" "$dir/mlflow.log" env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    "$bin" server --host 127.0.0.1 --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$dir/mlflow.db" \
    --serve-artifacts --artifacts-destination "$dir/artifacts"
  vpg_wait_http "$name" "http://127.0.0.1:$port/health" "${MLFLOW_START_TIMEOUT:-180}"
}
