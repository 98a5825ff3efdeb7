#!/usr/bin/env bash
# Serves the tiny model's LoRA adapter with a real vLLM (CPU build), on loopback, in the foreground.
#
#   scripts/vllm/serve.sh MODEL_DIR PORT        MODEL_DIR as written by make_tiny_model.py (base/ and lora/)
#
# The adapter is served as `candidate` (ADAPTER_NAME), on the base model served as `tiny-base`
# (SERVED_MODEL_NAME): GET /v1/models lists both, with the adapter's "parent" = the base's served name, and
# every vLLM metric carries model_name="tiny-base". Start it in the background and wait for GET /health = 200
# (~30-60 s); SIGTERM stops it and its EngineCore/Worker children within ~3 s.
#
# Env:
#   VLLM_VENV       the venv from setup-venv.sh (default ${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}/vllm-venv)
#   EXTRA_ARGS      more `vllm serve` flags, e.g. "--max-num-seqs 1" (requests queue: a deliberately slow
#                   server), "--num-gpu-blocks-override 16" (visible KV-cache usage), "--distributed-executor-backend uni"
#   DTYPE           bfloat16 (default) or float32
#   VLLM_CPU_KVCACHE_SPACE   KV cache in GiB (default 1)
#   VLLM_CPU_OMP_THREADS_BIND  default nobind (auto pins the worker to core 0)
#   ADAPTER_NAME, SERVED_MODEL_NAME, MAX_MODEL_LEN (1024)
set -euo pipefail

if [ $# -ne 2 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,19p' "$0" >&2
  exit 2
fi
MODEL_DIR=$(cd "$1" && pwd)
PORT=$2
CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
VENV=${VLLM_VENV:-$CACHE/vllm-venv}
ADAPTER_NAME=${ADAPTER_NAME:-candidate}
SERVED_MODEL_NAME=${SERVED_MODEL_NAME:-tiny-base}

[ -x "$VENV/bin/vllm" ] || { echo "serve.sh: no vllm in $VENV: run scripts/vllm/setup-venv.sh" >&2; exit 1; }
for d in base lora; do
  [ -d "$MODEL_DIR/$d" ] || { echo "serve.sh: $MODEL_DIR/$d missing: run make_tiny_model.py $MODEL_DIR" >&2; exit 1; }
done

export VLLM_TARGET_DEVICE=cpu                 # the CPU platform (torch from PyPI is the CUDA build)
export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1}
export VLLM_CPU_OMP_THREADS_BIND=${VLLM_CPU_OMP_THREADS_BIND:-nobind}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export VLLM_HOST_IP=127.0.0.1                 # internal endpoints on loopback too
export VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export VLLM_CACHE_ROOT=${VLLM_CACHE_ROOT:-$CACHE/vllm-cache}
export VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-INFO}

# shellcheck disable=SC2086  # EXTRA_ARGS is a list of flags
set -- "$VENV/bin/vllm" serve "$MODEL_DIR/base" \
  --served-model-name "$SERVED_MODEL_NAME" \
  --host 127.0.0.1 --port "$PORT" \
  --dtype "${DTYPE:-bfloat16}" \
  --max-model-len "${MAX_MODEL_LEN:-1024}" \
  --enable-lora --lora-modules "$ADAPTER_NAME=$MODEL_DIR/lora" \
  --max-loras 1 --max-lora-rank 8 \
  ${EXTRA_ARGS:-}
echo "serve.sh: $*" >&2
exec "$@"
