#!/usr/bin/env bash
# Captures what a REAL llama-server answers (the one scripts/llamacpp/setup.sh builds, serving the tiny GGUF
# model) into crates/vllm-sim/tests/fixtures/llamacpp/, for the simulator's fidelity test
# (crates/vllm-sim/tests/fidelity_llamacpp.rs). Loopback only; the server is stopped at the end.
#
#   scripts/llamacpp/capture-samples.sh [OUT_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/crates/vllm-sim/tests/fixtures/llamacpp}
"$ROOT/scripts/llamacpp/setup.sh"
DIR=$("$ROOT/scripts/llamacpp/setup.sh" --print)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
LOG=$(mktemp)
"$DIR/bin/llama-server" -m "$DIR/tiny.gguf" --alias tiny-llama --host 127.0.0.1 --port "$PORT" -c 2048 -np 2 -t 2 >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 60); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] && break
  sleep 0.5
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")" = 200 ] || { tail -20 "$LOG" >&2; echo "llama-server did not start" >&2; exit 1; }
mkdir -p "$OUT"
curl -s "$BASE/health" >"$OUT/health.json"
curl -s "$BASE/v1/models" >"$OUT/models.json"
curl -s "$BASE/lora-adapters" >"$OUT/lora_adapters.json"
curl -sN "$BASE/completion" -H 'content-type: application/json' \
  -d '{"prompt":"The quick brown fox","n_predict":8,"temperature":0,"stream":true,"model":"tiny-llama"}' >"$OUT/completion_stream.sse"
curl -s "$BASE/completion" -H 'content-type: application/json' \
  -d '{"prompt":"The quick brown fox","n_predict":8,"temperature":0,"stream":false}' >"$OUT/completion_nonstream.json"
"$DIR/bin/llama-server" --version 2>&1 | head -2 >"$OUT/VERSION.txt" || true
echo "captured into $OUT" >&2
