#!/usr/bin/env bash
# The soak: load-test against vllm-sim for SOAK_SECONDS at SOAK_CONCURRENCY requests in flight,
# the sim answering SOAK_ERROR_RATE of them with HTTP 500. Checks that no request is lost (the
# client's counts equal the sim's, exactly) and that load-test's RSS stays flat apart from its
# per-request samples (12 bytes a request), and prints a short report. Exit 1 when either
# check fails. crates/load-test/tests/soak.rs is the 30-second version CI runs.
#
# load-test has no --duration: the run is --num-requests, sized so that SOAK_CONCURRENCY
# requests in flight at the sim's latency (TTFT + (MAX_TOKENS - 1) x ITL) take SOAK_SECONDS.
# A machine that cannot keep up takes longer; the report gives the real duration and rate.
#
#   SOAK_SECONDS (600)  SOAK_CONCURRENCY (256)  SOAK_ERROR_RATE (0.05)
#   SOAK_TTFT_MS (50)  SOAK_ITL_MS (30)  SOAK_MAX_TOKENS (16)
#   SOAK_SAMPLE_EVERY (5 s between RSS reads)  SOAK_RAMP (10: the RSS read at or after this
#   many seconds is the baseline)  SOAK_PIN (1: sim on CPU 1, load-test on CPU 0, when taskset
#   and 2+ CPUs exist)  SOAK_DIR (where the logs, results and RSS series go; default a new
#   directory under /tmp, kept)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"
vpg_trap_cleanup

SECS=${SOAK_SECONDS:-600}
CONC=${SOAK_CONCURRENCY:-256}
ERR=${SOAK_ERROR_RATE:-0.05}
TTFT_MS=${SOAK_TTFT_MS:-50}
ITL_MS=${SOAK_ITL_MS:-30}
TOKENS=${SOAK_MAX_TOKENS:-16}
EVERY=${SOAK_SAMPLE_EVERY:-5}
RAMP=${SOAK_RAMP:-10}
DIR=${SOAK_DIR:-$(mktemp -d /tmp/vpg-soak.XXXXXX)}
mkdir -p "$DIR"

vpg_log "building release binaries (vllm-sim, load-test)"
cargo build --locked --release -p vllm-sim -p load-test --bins
BIN=$ROOT/target/release

PIN_SIM=() PIN_LT=()
if [ "${SOAK_PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SIM=(taskset -c 1) PIN_LT=(taskset -c 0)
fi
ulimit -n 65536 2>/dev/null || true

python3 - "$DIR/eval.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(500):
        f.write(json.dumps({"prompt_inference": f"Question {i}: how do S3 lifecycle rules work?"}) + "\n")
PY

PORT=$(vpg_free_port)
vpg_start vllm-sim "$DIR/vllm-sim.log" "${PIN_SIM[@]}" "$BIN/vllm-sim" --port "$PORT" \
  --ttft "${TTFT_MS}ms" --itl "${ITL_MS}ms" --error-rate "$ERR" --seed 2024 \
  --max-num-seqs "$CONC" --kv-cache-tokens 100000000
vpg_wait_http vllm-sim "http://127.0.0.1:$PORT/health" 30
SIM_PID=${VPG_PID[vllm-sim]}

REQUESTS=$(awk -v c="$CONC" -v s="$SECS" -v t="$TTFT_MS" -v i="$ITL_MS" -v n="$TOKENS" \
  'BEGIN { printf "%d", c * s / ((t + (n - 1) * i) / 1000) }')
vpg_log "load-test: $REQUESTS requests at concurrency $CONC (about $SECS s), error rate $ERR; output in $DIR"
echo "t_s,load_test_rss_kb,sim_rss_kb" >"$DIR/rss.csv"
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

T0=$EPOCHREALTIME
"${PIN_LT[@]}" "$BIN/load-test" --vllm-url "http://127.0.0.1:$PORT" --adapter-name candidate \
  --eval-data-path "$DIR/eval.jsonl" --output-dir "$DIR/out" --concurrency "$CONC" \
  --max-tokens "$TOKENS" --num-requests "$REQUESTS" --progress-interval 30s \
  >"$DIR/load-test.log" 2>&1 &
LT_PID=$!
VPG_AT_EXIT+=("kill $LT_PID 2>/dev/null || true")
while kill -0 "$LT_PID" 2>/dev/null; do
  lt=$(rss_kb "$LT_PID")
  [ -n "$lt" ] && echo "$(vpg_elapsed "$T0"),$lt,$(rss_kb "$SIM_PID")" >>"$DIR/rss.csv"
  sleep "$EVERY"
done
set +e
wait "$LT_PID"
LT_RC=$?
set -e
curl -sf "http://127.0.0.1:$PORT/metrics" >"$DIR/sim-metrics.txt"
vpg_stop vllm-sim

python3 - "$DIR" "$LT_RC" "$REQUESTS" "$SECS" "$CONC" "$ERR" "$RAMP" <<'PY'
import csv, json, os, sys

d, secs, conc, err = sys.argv[1], sys.argv[4], sys.argv[5], sys.argv[6]
rc, planned, ramp = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[7])
MIB = 1024 * 1024
try:
    res = json.load(open(os.path.join(d, "out", "load_test_results.json")))
except OSError as e:
    print(f"\n== soak: no results ({e}); load-test exited {rc}; see {d}/load-test.log")
    sys.exit(1)
c, g = res.get("client") or {}, res.get("load_generator") or {}

# The sim's counts, from its /metrics.
http, success = {}, 0
for line in open(os.path.join(d, "sim-metrics.txt")):
    if line.startswith("http_requests_total{") and 'handler="/v1/completions"' in line:
        status = line.split('status="')[1].split('"')[0]
        http[status] = http.get(status, 0) + int(float(line.rsplit(" ", 1)[1]))
    elif line.startswith("vllm:request_success_total{"):
        success += int(float(line.rsplit(" ", 1)[1]))

rows = [(float(r["t_s"]), int(r["load_test_rss_kb"]) * 1024, int(r["sim_rss_kb"] or 0) * 1024)
        for r in csv.DictReader(open(os.path.join(d, "rss.csv")))]
total, ok, failed = c.get("total_requests", 0), c.get("successful_requests", 0), c.get("failed_requests", 0)
e500 = c.get("errors_by_kind", {}).get("http_500", 0)
# per request: finish time, TTFT and E2E as f32 (the per-token figures are fixed-size histograms)
samples = 12 * total
allowance = 64 * MIB + 2 * samples + 64 * total
base = next((r for r in rows if r[0] >= ramp), rows[0] if rows else (0, 0, 0))
end = rows[-1] if rows else (0, 0, 0)
peak = max((r[1] for r in rows), default=0)
mib = lambda b: f"{b / MIB:.1f} MiB"

checks = {
    "client ran every planned request": total == planned,
    "client sent == sim answered (2xx + 5xx)": total == http.get("2xx", 0) + http.get("5xx", 0),
    "client ok == sim request_success_total": ok == success,
    "client failed == http_500 == sim 5xx": failed == e500 == http.get("5xx", 0),
    "no 4xx": http.get("4xx", 0) == 0,
    f"RSS end < baseline + {mib(allowance)}": end[1] < base[1] + allowance,
    "load-test exit 0, status completed": rc == 0 and res.get("status") == "completed",
}
dur = (res.get("timing") or {}).get("load_duration_s") or 0
print(f"\n== soak: {secs} s target, concurrency {conc}, error rate {err}, {planned} requests; files in {d}")
print(f"load-test: exit {rc}, status {res.get('status')}, load {dur:.1f} s, {c.get('requests_per_s') or 0:.1f} ok req/s")
print(f"client: sent {total}, ok {ok}, failed {failed} {json.dumps(c.get('errors_by_kind', {}))}")
print(f"sim:    /v1/completions 2xx {http.get('2xx', 0)}, 4xx {http.get('4xx', 0)}, 5xx {http.get('5xx', 0)}; request_success_total {success}")
print(f"load-test RSS: first {mib(rows[0][1]) if rows else '?'}, baseline (t={base[0]:.0f} s) {mib(base[1])}, "
      f"peak {mib(peak)}, end {mib(end[1])}; growth {(end[1] - base[1]) / MIB:+.1f} MiB "
      f"(compact samples {mib(samples)}, allowed {mib(allowance)})")
beyond = end[1] - base[1] - samples
print(f"load-test RSS growth beyond the compact samples: {beyond / MIB:+.1f} MiB "
      f"({beyond / max(total, 1):+.1f} B per request)")
print(f"vllm-sim RSS:  baseline {mib(base[2])}, peak {mib(max((r[2] for r in rows), default=0))}, end {mib(end[2])}")
step = max(1, len(rows) // 12)
print("RSS over time (s: load-test / sim MiB): " + ", ".join(
    f"{t:.0f}: {a / MIB:.1f} / {b / MIB:.1f}" for t, a, b in rows[::step] + ([rows[-1]] if rows and (len(rows) - 1) % step else [])))
lag = g.get("event_loop_lag_p99_s")
print(f"generator: saturated {g.get('saturated')}, CPU {g.get('cpu_percent_of_one_core') or 0:.0f} % of one core "
      f"on {g.get('cores')} core(s), event-loop lag p99 {lag * 1e3 if lag is not None else float('nan'):.1f} ms")
for name, good in checks.items():
    print(f"  {'ok  ' if good else 'FAIL'} {name}")
sys.exit(0 if all(checks.values()) else 1)
PY
