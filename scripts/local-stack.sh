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
# Env:
#   VPG_CACHE_DIR      default $HOME/.cache/vllm-perf-gate (MLflow venv, stack state)
#   VPG_STACK_DIR      state, logs, PID files; default $VPG_CACHE_DIR/local-stack
#   MLFLOW_VENV        default $VPG_CACHE_DIR/mlflow-venv (INSTALL=1 creates it: ~90 s, 850 MB)
#   VLLM_SIM_PORT, PROMETHEUS_PORT, MLFLOW_PORT   defaults 18000, 19090, 15000
#   SCRAPE_INTERVAL    Prometheus scrape interval, default 2s (load-test gets the same value)
#   VLLM_SIM_ARGS      flags for vllm-sim, e.g. "--ttft 0.3 --max-num-seqs 2" to slow it down (they win over
#                      the stack's defaults; any VLLM_SIM_* env var of the simulator works too)
#   VLLM_SIM_BIN       the simulator binary; default target/release/vllm-sim, else target/debug/vllm-sim,
#                      else built with `cargo build -p vllm-sim`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
STACK=${VPG_STACK_DIR:-$CACHE/local-stack}
MLFLOW_VENV=${MLFLOW_VENV:-$CACHE/mlflow-venv}
MLFLOW_VERSION=3.17.2
VLLM_SIM_PORT=${VLLM_SIM_PORT:-18000}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-19090}
MLFLOW_PORT=${MLFLOW_PORT:-15000}
SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-2s}
MODEL_NAME=demo-model
ADAPTER_NAME=demo-adapter

log() { echo "local-stack: $*" >&2; }
die() { log "error: $*"; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The PID in $STACK/NAME.pid is a process-group leader (started with setsid): signal the group.
running() {
  local pid
  pid=$(cat "$STACK/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# start NAME READY_URL TIMEOUT_S COMMAND...: start in its own process group, wait for READY_URL to give 200.
start() {
  local name=$1 url=$2 timeout=$3
  shift 3
  rm -f "$STACK/$name.pid"
  # shellcheck disable=SC2016  # $$, $0 and $@ are the inner shell's: it records its PID, then becomes the server
  setsid sh -c 'echo $$ > "$0"; exec "$@"' "$STACK/$name.pid" "$@" >"$STACK/$name.log" 2>&1 </dev/null &
  for _ in $(seq 100); do [ -s "$STACK/$name.pid" ] && break; sleep 0.05; done
  local pid deadline=$((SECONDS + timeout))
  pid=$(cat "$STACK/$name.pid")
  until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)" = 200 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$STACK/$name.log" >&2 || true
      die "$name exited during start-up (log: $STACK/$name.log)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "$name not ready after ${timeout}s (log: $STACK/$name.log)"
    sleep 0.2
  done
  log "$name ready on $url (pid $pid, log $STACK/$name.log)"
}

stop() {
  local name=$1 pid
  pid=$(cat "$STACK/$name.pid" 2>/dev/null) || { log "$name: not started by this script"; return 0; }
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    log "$name stopped (pid $pid)"
  else
    log "$name: not running"
  fi
  rm -f "$STACK/$name.pid"
}

sim_bin() {
  if [ -n "${VLLM_SIM_BIN:-}" ]; then echo "$VLLM_SIM_BIN"; return; fi
  for b in "$ROOT/target/release/vllm-sim" "$ROOT/target/debug/vllm-sim"; do
    [ -x "$b" ] && { echo "$b"; return; }
  done
  log "no vllm-sim binary yet: cargo build -p vllm-sim"
  (cd "$ROOT" && cargo build -q -p vllm-sim --bin vllm-sim) >&2
  echo "$ROOT/target/debug/vllm-sim"
}

up_sim() {
  if running vllm-sim; then log "vllm-sim already running"; return; fi
  port_busy "$VLLM_SIM_PORT" && die "port $VLLM_SIM_PORT is busy (set VLLM_SIM_PORT)"
  local bin
  bin=$(sim_bin)
  # A small served model with latencies in the range a real GPU server shows, given as the sim's own
  # VLLM_SIM_* env vars so that a VLLM_SIM_* variable or a flag in VLLM_SIM_ARGS overrides each one;
  # GPU_UTIL adds a fake DCGM_FI_DEV_GPU_UTIL gauge so the GPU query and panels have data.
  # shellcheck disable=SC2086  # VLLM_SIM_ARGS is a list of flags
  VLLM_SIM_SERVED_MODEL_NAME=${VLLM_SIM_SERVED_MODEL_NAME:-demo-base} \
    VLLM_SIM_LORA_MODULES=${VLLM_SIM_LORA_MODULES:-$ADAPTER_NAME=/models/$ADAPTER_NAME} \
    VLLM_SIM_TTFT=${VLLM_SIM_TTFT:-0.08} VLLM_SIM_ITL=${VLLM_SIM_ITL:-0.015} \
    VLLM_SIM_JITTER=${VLLM_SIM_JITTER:-0.2} VLLM_SIM_SEED=${VLLM_SIM_SEED:-7} \
    VLLM_SIM_MAX_NUM_SEQS=${VLLM_SIM_MAX_NUM_SEQS:-16} VLLM_SIM_GPU_UTIL=${VLLM_SIM_GPU_UTIL:-true} \
    start vllm-sim "http://127.0.0.1:$VLLM_SIM_PORT/health" 30 \
    "$bin" --host 127.0.0.1 --port "$VLLM_SIM_PORT" ${VLLM_SIM_ARGS:-}
}

up_prometheus() {
  if running prometheus; then log "prometheus already running"; return; fi
  command -v prometheus >/dev/null ||
    die "prometheus not found: apt-get install -y --no-install-recommends prometheus"
  port_busy "$PROMETHEUS_PORT" && die "port $PROMETHEUS_PORT is busy (set PROMETHEUS_PORT)"
  mkdir -p "$STACK/prometheus-data"
  # The same expectations as deploy/prometheus/prometheus.yml: job "vllm-service", one scrape interval.
  cat >"$STACK/prometheus.yml" <<EOF
global:
  scrape_interval: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
scrape_configs:
  - job_name: vllm-service
    static_configs:
      - targets: ["127.0.0.1:$VLLM_SIM_PORT"]
EOF
  promtool check config "$STACK/prometheus.yml" >/dev/null
  start prometheus "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 30 \
    prometheus --config.file="$STACK/prometheus.yml" --storage.tsdb.path="$STACK/prometheus-data" \
    --storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle
}

up_mlflow() {
  if running mlflow; then log "mlflow already running"; return; fi
  if [ ! -x "$MLFLOW_VENV/bin/mlflow" ]; then
    [ "${INSTALL:-0}" = 1 ] ||
      die "MLflow not found in $MLFLOW_VENV; rerun with INSTALL=1 to install mlflow==$MLFLOW_VERSION there (~90 s)"
    log "installing mlflow==$MLFLOW_VERSION into $MLFLOW_VENV"
    python3 -m venv "$MLFLOW_VENV"
    "$MLFLOW_VENV/bin/pip" install -q "mlflow==$MLFLOW_VERSION" >&2
  fi
  port_busy "$MLFLOW_PORT" && die "port $MLFLOW_PORT is busy (set MLFLOW_PORT)"
  mkdir -p "$STACK/mlflow/artifacts"
  # No background job runner (GenAI only; its consumers ignore SIGTERM); one worker on a small machine.
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false start mlflow "http://127.0.0.1:$MLFLOW_PORT/health" 180 \
    "$MLFLOW_VENV/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    --backend-store-uri "sqlite:///$STACK/mlflow/mlflow.db" \
    --serve-artifacts --artifacts-destination "$STACK/mlflow/artifacts"
  seed_mlflow
}

# Registered model demo-model, version 1 (an s3:// source: MLflow rejects local paths) with alias
# eval-passed: the candidate perf-decision resolves by default. Idempotent.
seed_mlflow() {
  local api="http://127.0.0.1:$MLFLOW_PORT/api/2.0/mlflow" out
  curl -s -o /dev/null -X POST "$api/registered-models/create" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$MODEL_NAME\"}"
  out=$(curl -s "$api/registered-models/get?name=$MODEL_NAME")
  case $out in
  *'"latest_versions"'*) log "mlflow: $MODEL_NAME already has versions" ;;
  *)
    curl -sf -o /dev/null -X POST "$api/model-versions/create" -H 'Content-Type: application/json' \
      -d "{\"name\":\"$MODEL_NAME\",\"source\":\"s3://demo-bucket/adapters/$ADAPTER_NAME\",\"tags\":[{\"key\":\"adapter\",\"value\":\"$ADAPTER_NAME\"}]}" ||
      die "could not create $MODEL_NAME version 1"
    curl -sf -o /dev/null -X POST "$api/registered-models/alias" -H 'Content-Type: application/json' \
      -d "{\"name\":\"$MODEL_NAME\",\"alias\":\"eval-passed\",\"version\":\"1\"}" ||
      die "could not set alias eval-passed"
    log "mlflow: registered $MODEL_NAME v1 (alias eval-passed)"
    ;;
  esac
}

write_eval() {
  [ -s "$STACK/eval.jsonl" ] && return
  for i in $(seq 1 40); do
    printf '{"prompt_inference": "Question %d: explain in two sentences what a LoRA adapter changes in a model."}\n' "$i"
  done >"$STACK/eval.jsonl"
}

print_env() {
  cat <<EOF
# vllm-perf-gate local stack ($STACK)
export VLLM_URL=http://127.0.0.1:$VLLM_SIM_PORT
export ADAPTER_NAME=$ADAPTER_NAME
export EVAL_DATA_PATH=$STACK/eval.jsonl
export PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT
export PROMETHEUS_JOB=vllm-service
export SCRAPE_INTERVAL=$SCRAPE_INTERVAL
export CONCURRENCY=4
export MAX_TOKENS=64
export OUTPUT_DIR=$STACK/results
export LOAD_TEST_RESULTS=$STACK/results/load_test_results.json
export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
export MODEL_NAME=$MODEL_NAME
export CANDIDATE_ALIAS=eval-passed
export EVAL_DATA_SOURCE=s3://demo-bucket/eval/eval.jsonl
EOF
}

status() {
  local name
  for name in vllm-sim prometheus mlflow; do
    if running "$name"; then echo "$name: running (pid $(cat "$STACK/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

cmd=${1:-up}
case $cmd in
up)
  mkdir -p "$STACK/results"
  write_eval
  up_sim
  up_prometheus
  up_mlflow
  print_env
  cat <<EOF
# Next:
#   eval "\$($0 env)"
#   $ROOT/target/debug/load-test && $ROOT/target/debug/perf-decision
# UIs: Prometheus http://127.0.0.1:$PROMETHEUS_PORT  MLflow http://127.0.0.1:$MLFLOW_PORT
# Stop: $0 down
EOF
  ;;
env) print_env ;;
status) status ;;
down | clean)
  stop mlflow
  stop prometheus
  stop vllm-sim
  if [ "$cmd" = clean ]; then
    rm -rf "$STACK"
    log "removed $STACK (MLflow runs, Prometheus data, results)"
  fi
  ;;
*)
  echo "usage: $0 up|env|status|down|clean" >&2
  exit 2
  ;;
esac
