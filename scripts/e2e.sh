#!/usr/bin/env bash
# End-to-end test of the whole gate against real servers: a vLLM (the simulator, or the real CPU vLLM), a real
# Prometheus scraping it (job vllm-service) and a real MLflow server, with the steps run exactly as the
# deployment manifests run them.
#
#   scripts/e2e.sh [--backend sim|vllm]        default sim
#
# sim:  runs the Rust integration test crates/perf-decision/tests/real_pipeline_sim.rs (cargo nextest; ~1 min),
#       which `cargo nextest run --workspace` (scripts/test.sh) also runs.
# vllm: this script, against a REAL vLLM, with Prometheus scraping every 15 s (~4 min with the cached venv):
#   1. build the binaries (cargo build --locked --bins; E2E_SKIP_BUILD=1 skips it)
#   2. scripts/vllm/setup-venv.sh (cached venv) + make_tiny_model.py (cached model) + serve.sh on a free loopback
#      port, adapter `candidate` on base `tiny-base`; 3 warm-up requests (a cold vLLM's first request takes seconds)
#   3. start Prometheus (scrape interval 15 s) and MLflow (target/debug/vpg-stack: the launchers the Rust tests
#      use); register model tiny-lora: v1 (source runs:/<run>/adapter), v2 (source s3://adapters/tiny-lora/v2),
#      each tagged adapter_name=candidate; alias eval-passed on v1
#   4. v1, run as the Argo WorkflowTemplate runs it: `target/debug/vpg-render argo-run` walks
#      workflows/vllm-perf-gate.yaml's entrypoint as Argo does (the renderer the tests use) and runs each
#      container as a local process with its exact flags and env: resolve-candidate (v1, from the alias), then
#      attempt 1's load-test and perf-decision (--candidate-version=1); an invalid measurement would rerun the
#      gate after `rerun-wait`. Expect: the workflow succeeds at attempt 1, passed, absolute mode, alias
#      perf-passed on v1, the run's params/metrics/tags/dataset/artifacts in MLflow, server figures from PromQL
#      on vLLM's real metric names that count exactly the requests sent (server finished = client successes),
#      non-null quantiles, a valid measurement. load-test finds the scrape interval itself (auto) and waits for
#      confirmed Prometheus samples before and after its load (up to 2 intervals + 5 s each: ~35 s at 15 s).
#   5. slow the server down on purpose (EXTRA_ARGS="--max-num-seqs 1" and twice the concurrency, so requests
#      queue), move eval-passed to v2
#   6. v2, run as the Kubernetes Jobs run it (deploy/kustomize/base: env vars from the ConfigMaps): the load-test
#      Job's init container resolves v2 into candidate_version.txt, the alias is then moved back to v1 (the
#      decision must still judge v2), load-test, perf-decision (CANDIDATE_VERSION_FILE). Expect: failed in
#      comparative mode against v1's run, alias perf-failed on v2, perf-passed gone.
#
# Prints each phase's duration, the figures of both loads, and a final `N passed, N failed` line; exits non-zero
# on any failure. Every process it starts is stopped on exit (also on failure or Ctrl-C). The work dir (logs,
# result files, the Prometheus and MLflow data) is kept and its path printed.
#
# Env (vllm):
#   E2E_DIR            work dir (default: a new mktemp dir)
#   E2E_SKIP_BUILD=1   use the binaries already in target/debug
#   E2E_PROMPTS        prompts in the eval file (default 24: a load shorter than the 15 s scrape interval)
#   E2E_MAX_TOKENS     default 32
#   E2E_CONCURRENCY    v1 concurrency (default 4); E2E_SLOW_CONCURRENCY for v2 (default 8)
#   E2E_SCRAPE         Prometheus's scrape interval of the backend (default 15s)
#   E2E_CAPTURE_DIR    also run scripts/vllm/capture-samples.sh against the fresh backend, into this dir
#   E2E_MAX_P95_LATENCY, E2E_MAX_P95_TTFT, E2E_MIN_THROUGHPUT, E2E_MIN_SUCCESS_RATE   absolute floors
#                      (default 30 s / 20 s / 0.5 / 0.99)
#   VPG_CACHE_DIR      cache of the venvs and the tiny model (default ~/.cache/vllm-perf-gate)
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BACKEND=sim
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) BACKEND=${2:-}; shift 2 ;;
    --backend=*) BACKEND=${1#*=}; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 && !/^# shellcheck/ { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "e2e.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$BACKEND" in sim | vllm) ;; *) echo "e2e.sh: --backend must be sim or vllm" >&2; exit 2 ;; esac

if [ "$BACKEND" = sim ]; then
  # One Rust integration test (vllm-sim + real Prometheus + real MLflow, steps rendered from the manifests).
  # It runs the workspace's binaries (load-test, vllm-sim next to perf-decision): build them first.
  cd "$ROOT"
  [ "${E2E_SKIP_BUILD:-0}" = 1 ] || cargo build --locked --bins
  exec cargo nextest run --locked -p perf-decision --test real_pipeline_sim --no-fail-fast
fi

VPG_LOG_TAG="e2e $BACKEND"
# shellcheck source=lib/common.sh
source "$ROOT/scripts/lib/common.sh"

CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
MLFLOW_BIN=${MLFLOW_VENV:-$CACHE/mlflow-venv}/bin/mlflow
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
WORK=${E2E_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/vpg-e2e-$BACKEND.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

MODEL=tiny-lora
ADAPTER=candidate
SERVED=tiny-base
JOB=vllm-service
SCRAPE=${E2E_SCRAPE:-15s}
SCRAPE_S=${SCRAPE%s}
PROMPTS=${E2E_PROMPTS:-24}
MAX_TOKENS=${E2E_MAX_TOKENS:-32}
CONCURRENCY=${E2E_CONCURRENCY:-4}
EVAL_BUCKET=e2e-eval-data
EVAL_KEY=tiny-lora/eval.jsonl
SLOW_CONCURRENCY=${E2E_SLOW_CONCURRENCY:-$((CONCURRENCY * 2))}
FLOORS=(30 20 0.5 0.99)
MAX_P95_LATENCY=${E2E_MAX_P95_LATENCY:-${FLOORS[0]}}
MAX_P95_TTFT=${E2E_MAX_P95_TTFT:-${FLOORS[1]}}
MIN_THROUGHPUT=${E2E_MIN_THROUGHPUT:-${FLOORS[2]}}
MIN_SUCCESS_RATE=${E2E_MIN_SUCCESS_RATE:-${FLOORS[3]}}

# ---- bookkeeping: checks and the summary printed on exit -----------------------------------------------
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
check() { # check "what" COMMAND...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# count_checks FILE: adds the PASS/FAIL lines of a checker's output to the totals.
count_checks() {
  local p f
  p=$(grep -c '^PASS: ' "$1" || true)
  f=$(grep -c '^FAIL: ' "$1" || true)
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
}

# shellcheck disable=SC2329  # called by vpg_cleanup via VPG_AT_EXIT
summary() {
  local status=$VPG_EXIT_STATUS
  [ -n "$VPG_PHASE_CUR" ] && vpg_phase_end aborted
  echo
  echo "==================== e2e --backend $BACKEND: summary ===================="
  vpg_phase_report | tee "$WORK/phases.txt"
  if [ "$status" != 0 ]; then
    FAILED=$((FAILED + 1))
    echo "FAIL: the test stopped early (exit status $status); see the log above"
  fi
  echo "work dir: $WORK"
  echo "$PASSED passed, $FAILED failed"
  if [ "$FAILED" != 0 ] && [ "$status" = 0 ]; then VPG_EXIT_STATUS=1; fi
}
VPG_AT_EXIT+=(summary)
vpg_trap_cleanup

vpg_log "work dir: $WORK"

# ---- 1. build ------------------------------------------------------------------------------------------
vpg_phase "build"
if [ "${E2E_SKIP_BUILD:-0}" = 1 ]; then
  vpg_log "E2E_SKIP_BUILD=1: using $BIN"
else
  (cd "$ROOT" && cargo build --locked --bins)
fi
for b in load-test perf-decision vpg-render vpg-stack; do
  [ -x "$BIN/$b" ] || vpg_die "$BIN/$b missing (build it, or unset E2E_SKIP_BUILD)"
done
[ -x "$MLFLOW_BIN" ] || vpg_die "no MLflow venv at ${MLFLOW_BIN%/bin/mlflow}: run scripts/install-test-deps.sh"

# ---- 2. the backend ------------------------------------------------------------------------------------
vpg_phase "vllm: venv (setup-venv.sh)"
"$ROOT/scripts/vllm/setup-venv.sh"
VLLM_PY=$("$ROOT/scripts/vllm/setup-venv.sh" --print)/bin/python
vpg_phase "vllm: tiny model + adapter (make_tiny_model.py)"
TINY=$CACHE/tiny-model
"$VLLM_PY" "$ROOT/scripts/vllm/make_tiny_model.py" "$TINY"

# The eval file: the seed's field name, deterministic prompts of varied length.
mkdir -p "$WORK/data"
python3 - "$PROMPTS" >"$WORK/data/eval.jsonl" <<'EOF'
import json, sys
topics = ["the licence terms", "copying the software", "warranty", "patents", "source code", "distribution",
          "modifications", "trademarks", "liability", "attribution"]
for i in range(int(sys.argv[1])):
    t = topics[i % len(topics)]
    print(json.dumps({"id": i, "prompt_inference": f"Question {i}: explain what the text says about {t}" + "," * (i % 3) +
                      " in plain words" * (1 + i % 4) + "."}))
EOF

BACKEND_PORT=$(vpg_free_port)
VLLM_URL="http://127.0.0.1:$BACKEND_PORT"

# start_backend N [slow]: the N-th start of the vLLM on BACKEND_PORT, normal or slowed down (one sequence at
# a time, so requests queue).
start_backend() {
  local n=$1 slow=${2:-} extra=""
  [ -n "$slow" ] && extra="--max-num-seqs 1"
  vpg_start backend "$WORK/backend-$n.log" env EXTRA_ARGS="$extra" VPG_CACHE_DIR="$CACHE" \
    "$ROOT/scripts/vllm/serve.sh" "$TINY" "$BACKEND_PORT"
  vpg_wait_http backend "$VLLM_URL/health" 300
}

# warm_up: a few short requests, so that the measured load does not pay for a cold server (vLLM's first
# request after a start takes seconds); they end before the Prometheus wait that precedes each load.
warm_up() {
  python3 - "$VLLM_URL" "$ADAPTER" <<'EOF'
import json, sys, time, urllib.request
url, model = sys.argv[1], sys.argv[2]
for i in range(3):
    t = time.monotonic()
    body = json.dumps({"model": model, "prompt": "warm up", "max_tokens": 8, "temperature": 0}).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=120).read()
    print(f"warm-up request {i + 1}: {time.monotonic() - t:.2f} s", file=sys.stderr)
EOF
}

vpg_phase "backend start ($BACKEND)"
start_backend 1
check "GET /v1/models lists $ADAPTER with parent $SERVED" python3 - "$VLLM_URL" "$ADAPTER" "$SERVED" <<'EOF'
import json, sys, urllib.request
data = json.load(urllib.request.urlopen(sys.argv[1] + "/v1/models", timeout=10))["data"]
models = {m["id"]: m for m in data}
assert models[sys.argv[2]]["parent"] == sys.argv[3], models
EOF
if [ -n "${E2E_CAPTURE_DIR:-}" ]; then
  vpg_phase "capture samples"
  check "capture-samples.sh into $E2E_CAPTURE_DIR" "$ROOT/scripts/vllm/capture-samples.sh" "$VLLM_URL" "$E2E_CAPTURE_DIR"
fi
warm_up

# ---- 3. Prometheus, MLflow, the registered model -------------------------------------------------------
vpg_phase "prometheus + mlflow start"
PROM_PORT=$(vpg_free_port)
PROM_URL=$("$BIN/vpg-stack" prometheus --dir "$WORK/prometheus" --port "$PROM_PORT" --job "$JOB" \
  --scrape-interval "$SCRAPE" --target "127.0.0.1:$BACKEND_PORT")
# shellcheck disable=SC2016  # expanded when run, at exit
VPG_AT_EXIT+=('"$BIN/vpg-stack" stop --dir "$WORK/prometheus" prometheus')
MLFLOW_PORT=$(vpg_free_port)
MLFLOW_URI=$(MLFLOW_BIN=$MLFLOW_BIN "$BIN/vpg-stack" mlflow --dir "$WORK/mlflow" --port "$MLFLOW_PORT")
# shellcheck disable=SC2016  # expanded when run, at exit
VPG_AT_EXIT+=('"$BIN/vpg-stack" stop --dir "$WORK/mlflow" mlflow')
vpg_log "prometheus $PROM_URL, mlflow $MLFLOW_URI"

vpg_phase "mlflow: register $MODEL v1+v2, eval-passed->v1"
python3 "$ROOT/scripts/lib/mlflow_rest.py" --uri "$MLFLOW_URI" register --model "$MODEL" --adapter "$ADAPTER" \
  ${TINY:+--adapter-dir "$TINY/lora"} | tee "$WORK/registered.json"
python3 "$ROOT/scripts/lib/mlflow_rest.py" --uri "$MLFLOW_URI" alias --model "$MODEL" --alias eval-passed --version 1
# ---- the steps -----------------------------------------------------------------------------------------
# render_job STEP [vpg-render args...]: sets STEP_ENV and STEP_ARGV for a container of the kustomization's Jobs
# (NUL-separated items read with mapfile: the renderer's output is data, never evaluated as shell code).
render_job() {
  local step=$1 what
  shift
  for what in argv env; do
    (cd "$ROOT" && "$BIN/vpg-render" job --step "$step" --bin-dir "$BIN" --print "$what" "$@") \
      >"$WORK/render.$what" || vpg_die "cannot render Job step $step"
  done
  mapfile -d '' -t STEP_ARGV <"$WORK/render.argv"
  mapfile -d '' -t STEP_ENV <"$WORK/render.env"
}

# run_step LOG: runs STEP_ARGV with exactly STEP_ENV (plus PATH and HOME), as a pod would; output to the
# terminal (indented) and LOG. Returns the step's exit status.
# shellcheck disable=SC2329  # called through check
run_step() {
  local log=$1 rc
  {
    printf 'env -i PATH=... HOME=...'
    printf ' %q' "${STEP_ENV[@]}" "${STEP_ARGV[@]}"
    printf '\n'
  } | tee "$log.cmd" >&2
  set +e
  env -i PATH="$PATH" HOME="$HOME" "${STEP_ENV[@]}" "${STEP_ARGV[@]}" 2>&1 | tee "$log" | sed 's/^/    | /'
  rc=${PIPESTATUS[0]}
  set -e
  vpg_log "$(basename "${STEP_ARGV[0]}") exited with $rc"
  return "$rc"
}

# check_run N VERSION EXPECT MODE LT_DIR PD_DIR DATASET_NAME DATASET_SOURCE CONCURRENCY [BASELINE_RUN BASELINE_RESULTS]
check_run() {
  local n=$1 extra=()
  [ -n "${10:-}" ] && extra+=(--baseline-run-id "${10}")
  [ -n "${11:-}" ] && extra+=(--baseline-results "${11}")
  set +e
  python3 "$ROOT/scripts/lib/e2e_check.py" --uri "$MLFLOW_URI" --model "$MODEL" --version "$2" --expect "$3" \
    --mode "$4" --load-test-dir "$5" --decision-dir "$6" --dataset-name "$7" --dataset-source "$8" \
    --concurrency "$9" --requests "$PROMPTS" --adapter "$ADAPTER" --served-model "$SERVED" --job "$JOB" \
    --scrape-interval "$SCRAPE_S" \
    "${extra[@]}" >"$WORK/v$n/checks.txt" 2>&1
  set -e
  sed 's/^/  /' "$WORK/v$n/checks.txt"
  count_checks "$WORK/v$n/checks.txt"
  RUN_ID=$(awk '/^RUN_ID /{print $2}' "$WORK/v$n/checks.txt")
}

# ---- 4. v1 as the Argo WorkflowTemplate runs it --------------------------------------------------------
# scrape-interval auto: load-test reads the job's interval from Prometheus (/api/v1/targets), as in production.
ARGO_SET=(
  --set "vllm-url=$VLLM_URL" --set "adapter-name=$ADAPTER" --set "eval-data-bucket=$EVAL_BUCKET"
  --set "eval-data-key=$EVAL_KEY" --set eval-data-version=1 --set "concurrency=$CONCURRENCY"
  --set "max-tokens=$MAX_TOKENS" --set wait-ready=60s --set "prometheus-url=$PROM_URL"
  --set "prometheus-job=$JOB" --set scrape-interval=auto --set "mlflow-tracking-uri=$MLFLOW_URI"
  --set "model-name=$MODEL" --set candidate-version= --set candidate-alias=eval-passed --set rerun-wait=30s
  --set "max-p95-latency=$MAX_P95_LATENCY" --set "max-p95-ttft=$MAX_P95_TTFT"
  --set "min-throughput=$MIN_THROUGHPUT" --set "min-success-rate=$MIN_SUCCESS_RATE" --set log-format=text
)
V1=$WORK/v1
vpg_phase "v1: the Argo workflow (resolve-candidate, attempt 1: load-test, perf-decision)"
check "v1 workflow Succeeded (vpg-render argo-run exits 0)" \
  "$BIN/vpg-render" argo-run --workflow "$ROOT/workflows/vllm-perf-gate.yaml" --bin-dir "$BIN" --work-dir "$V1" \
  --map "/data/eval.jsonl=$WORK/data/eval.jsonl" "${ARGO_SET[@]}"
check "v1 resolve-candidate wrote version 1 (from eval-passed) before the load" \
  grep -qx 1 "$V1/resolve-candidate/output/candidate_version.txt"
# The attempt that ran last holds the workflow's outputs; at a healthy 15 s scrape it must be the first.
ATTEMPT=attempt-1
[ -d "$V1/attempt-2.load-test" ] && ATTEMPT=attempt-2
check "v1 needed no rerun: attempt 1's measurement was valid" [ "$ATTEMPT" = attempt-1 ]
check "v1 Argo output parameter load-test-status (load_test_status.txt) = completed" \
  grep -qx completed "$V1/$ATTEMPT.load-test/output/load_test_status.txt"
check "v1 perf-decision was given the resolved version (--candidate-version=1)" \
  grep -q -- '--candidate-version=1' "$V1/$ATTEMPT.perf-decision/log"

vpg_phase "v1: checks (files, MLflow REST)"
check_run 1 1 passed absolute "$V1/$ATTEMPT.load-test/output" "$V1/$ATTEMPT.perf-decision/output" eval-v1 \
  "s3://$EVAL_BUCKET/$EVAL_KEY" "$CONCURRENCY"
RUN1_ID=$RUN_ID

# ---- 5. a slower server --------------------------------------------------------------------------------
vpg_phase "slow the backend down + restart"
vpg_stop backend
start_backend 2 slow
warm_up
python3 "$ROOT/scripts/lib/mlflow_rest.py" --uri "$MLFLOW_URI" alias --model "$MODEL" --alias eval-passed --version 2

# ---- 6. v2 as the Kubernetes Jobs run it ---------------------------------------------------------------
V2=$WORK/v2
mkdir -p "$V2/results"
JOB_MAPS=(--map "/data=$WORK/data" --map "/results=$V2/results")
# The perf-decision ConfigMap's values, which the load-test Job's init container reads too.
DECISION_SET=(
  --set "MLFLOW_TRACKING_URI=$MLFLOW_URI" --set "MODEL_NAME=$MODEL" --set CANDIDATE_ALIAS=eval-passed
  --set "MAX_P95_LATENCY=$MAX_P95_LATENCY" --set "MAX_P95_TTFT=$MAX_P95_TTFT" --set "MIN_THROUGHPUT=$MIN_THROUGHPUT"
  --set "MIN_SUCCESS_RATE=$MIN_SUCCESS_RATE" --set LOG_FORMAT=text
)
vpg_phase "v2: resolve-candidate (the load-test Job's init container)"
render_job resolve-candidate "${JOB_MAPS[@]}" "${DECISION_SET[@]}"
check "v2 resolve-candidate exits 0" run_step "$V2/resolve-candidate.log"
check "v2 resolve-candidate wrote version 2 (from eval-passed)" grep -qx 2 "$V2/results/candidate_version.txt"
# Whatever moves the alias now, the decision judges the version resolved before the load.
python3 "$ROOT/scripts/lib/mlflow_rest.py" --uri "$MLFLOW_URI" alias --model "$MODEL" --alias eval-passed --version 1

vpg_phase "v2: load-test (as the Kubernetes Job)"
# SCRAPE_INTERVAL stays the ConfigMap's `auto`.
render_job load-test "${JOB_MAPS[@]}" --set "VLLM_URL=$VLLM_URL" --set "ADAPTER_NAME=$ADAPTER" \
  --set "CONCURRENCY=$SLOW_CONCURRENCY" --set "MAX_TOKENS=$MAX_TOKENS" --set "PROMETHEUS_URL=$PROM_URL" \
  --set "PROMETHEUS_JOB=$JOB" --set WAIT_READY=60s --set LOG_FORMAT=text
check "v2 load-test exits 0" run_step "$V2/load-test.log"

vpg_phase "v2: perf-decision (as the Kubernetes Job)"
render_job perf-decision "${JOB_MAPS[@]}" "${DECISION_SET[@]}"
check "v2 perf-decision exits 0 (a failed decision is a result; FAIL_ON_REJECT=false)" run_step "$V2/perf-decision.log"

vpg_phase "v2: checks (files, MLflow REST)"
# The Jobs' ConfigMap sets no EVAL_DATA_VERSION / EVAL_DATA_SOURCE: the dataset is eval-<digest>, the local path.
DIGEST=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["eval_data"]["digest"][:36])' \
  "$V2/results/load_test_results.json" 2>/dev/null || echo unknown)
check_run 2 2 failed comparative "$V2/results" "$V2/results" "eval-$DIGEST" "$WORK/data/eval.jsonl" \
  "$SLOW_CONCURRENCY" "$RUN1_ID" "$V1/$ATTEMPT.load-test/output/load_test_results.json"
check "v1 keeps its version tag perf_decision=passed after v2 failed" python3 - "$ROOT/scripts/lib" "$MLFLOW_URI" "$MODEL" <<'EOF'
import sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
from mlflow_rest import Mlflow, version_tags
assert version_tags(Mlflow(sys.argv[2]).model_version(sys.argv[3], "1")).get("perf_decision") == "passed"
EOF
vpg_phase_end

exit 0
