#!/usr/bin/env bash
# The demo: the whole gate end to end on built-in defaults, no GPU, no cluster.
#   1. builds the binaries
#   2. starts vllm-sim (a vLLM-compatible simulator) serving the adapter `candidate`
#   3. load-test v1 against it (server figures from vLLM /metrics deltas: no Prometheus needed)
#   4. perf-decision on v1: absolute mode (no baseline) -> passed
#   5. restarts the sim 3x slower, load-test v2, perf-decision in comparative mode against v1 -> failed
# Everything lands in ./demo-output (or $DEMO_DIR). MLflow is not needed (--no-mlflow); see README
# "Try it locally" for the same run against real Prometheus and MLflow.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_DIR:-$PWD/demo-output}
PROFILE=${DEMO_PROFILE:-release}
log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

log "building (cargo build --profile $PROFILE)"
if [ "$PROFILE" = debug ]; then cargo build --locked --bins; BIN=target/debug; else cargo build --locked --release --bins; BIN=target/release; fi

rm -rf "$OUT"; mkdir -p "$OUT"
python3 - "$OUT/eval.jsonl" <<'PY'
import json, sys
topics = ["S3 lifecycle rules", "IAM role trust policies", "VPC peering", "EKS node groups",
          "CloudWatch alarms", "Lambda cold starts", "RDS read replicas", "KMS key rotation"]
with open(sys.argv[1], "w") as f:
    for i in range(48):
        t = topics[i % len(topics)]
        f.write(json.dumps({"id": i, "prompt_inference": f"Question {i}: explain {t} in two sentences."}) + "\n")
PY

SIM_PID=""
cleanup() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
# GET URL answers 200 (python3 rather than curl: the demo needs only Rust and Python).
healthy() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" >/dev/null 2>&1; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
start_sim() { # TTFT ITL
  PORT=$(free_port)
  "$BIN/vllm-sim" --port "$PORT" --ttft "$1" --itl "$2" --jitter 0.1 --seed 7 --max-num-seqs 16 \
    --lora-modules candidate=s3://adapters/aws-rag-qa/v1 > "$OUT/vllm-sim-$PORT.log" 2>&1 &
  SIM_PID=$!
  for _ in $(seq 100); do healthy "http://127.0.0.1:$PORT/health" && return 0; sleep 0.1; done
  echo "vllm-sim did not start; see $OUT/vllm-sim-$PORT.log" >&2; exit 1
}
stop_sim() { kill "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""; }

run_load() { # NAME
  "$BIN/load-test" --vllm-url "http://127.0.0.1:$PORT" --adapter-name candidate \
    --eval-data-path "$OUT/eval.jsonl" --concurrency 8 --max-tokens 32 --output-dir "$OUT/$1/load" \
    --progress-interval 0
}
decide() { # NAME EXTRA...
  local name=$1; shift
  set +e
  "$BIN/perf-decision" --load-test-results "$OUT/$name/load/load_test_results.json" \
    --model-name demo-lora --no-mlflow --output-dir "$OUT/$name/decision" "$@"
  local rc=$?
  set -e
  [ $rc = 0 ] || { echo "perf-decision exited $rc" >&2; exit $rc; }
}

log "v1: vllm-sim with TTFT 80 ms, 15 ms per token"
start_sim 80ms 15ms
run_load v1
log "v1: perf-decision (absolute mode: no baseline yet)"
decide v1 --candidate-version 1
stop_sim

log "v2: the same adapter served 3x slower (TTFT 240 ms, 45 ms per token)"
start_sim 240ms 45ms
run_load v2
log "v2: perf-decision (comparative mode: baseline = v1's passed decision)"
decide v2 --candidate-version 2 --baseline-file "$OUT/v1/decision/perf_decision.json"
stop_sim

log "summary"
for v in v1 v2; do
  printf '%s: load-test %s, perf-decision %s\n' "$v" "$(cat "$OUT/$v/load/load_test_status.txt")" "$(cat "$OUT/$v/decision/perf_status.txt")"
done
echo "files: $OUT/{v1,v2}/load/{load_test_results.json,load_test_status.txt,requests.jsonl} and $OUT/{v1,v2}/decision/{perf_decision.json,perf_status.txt}"
[ "$(cat "$OUT/v1/decision/perf_status.txt")" = passed ] && [ "$(cat "$OUT/v2/decision/perf_status.txt")" = failed ] \
  || { echo "demo: expected v1 passed and v2 failed" >&2; exit 1; }
