#!/usr/bin/env bash
# Prints the hot-path figures: SSE decode cost per chunk, then 1,000 concurrent streams on ONE
# client core against vllm-sim pinned to the other core. Figures, not assertions.
#   BENCH_CONCURRENCY (1000), BENCH_ITL_MS (20)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release -p vllm-sim --bin vllm-sim
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PIN_SIM=""; PIN_CLIENT=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN_SIM="taskset -c 1"; PIN_CLIENT="taskset -c 0"; fi
ulimit -n 65536 2>/dev/null || true
$PIN_SIM target/release/vllm-sim --port "$PORT" --ttft 50ms --itl "${BENCH_ITL_MS:-20}ms" --max-num-seqs 4096 >/tmp/vllm-sim-bench.log 2>&1 &
SIM=$!
trap 'kill $SIM 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
VLLM_SIM_URL="http://127.0.0.1:$PORT" $PIN_CLIENT cargo bench --locked -p perf-gate --bench hot_path
