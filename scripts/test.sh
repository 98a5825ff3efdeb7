#!/usr/bin/env bash
# The one test command: installs what the tests need (scripts/install-test-deps.sh), then runs
# every gate CI applies. `.ci/run` calls exactly this.
#   scripts/test.sh                    everything
#   SKIP_INSTALL=1 scripts/test.sh     when the deps are known to be there
#   SKIP_REAL_VLLM=1 scripts/test.sh   without the real-vLLM end-to-end run (it installs a 6 GiB
#                                      venv once, then takes about 2.5 min)
#   SKIP_REAL_LLAMACPP=1 scripts/test.sh   without building llama.cpp's llama-server (then
#                                      crates/load-test/tests/real_llamacpp.rs says SKIP)
set -euo pipefail
cd "$(dirname "$0")/.."
export RUST_BACKTRACE=0
stage() { STAGE_NAME=$1; STAGE_START=$(date +%s); printf '\n== %s\n' "$1"; }
stage_end() { printf '== %s: %ss\n' "$STAGE_NAME" "$(( $(date +%s) - STAGE_START ))"; }
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
TOTAL_PASSED=0
# Runs a command, shows its output, and adds the N of its last "N passed" line to the total.
counted() {
  local log
  log="$LOGS/$(date +%s%N).log"
  "$@" 2>&1 | tee "$log"
  local n
  n=$(grep -oE '[0-9]+ passed' "$log" | tail -1 | grep -oE '[0-9]+' || true)
  TOTAL_PASSED=$(( TOTAL_PASSED + ${n:-0} ))
}

stage "install test dependencies"
[ "${SKIP_INSTALL:-0}" = 1 ] || scripts/install-test-deps.sh
stage_end

if [ "${SKIP_REAL_LLAMACPP:-0}" != 1 ]; then
  # the real llama-server for crates/load-test/tests/real_llamacpp.rs: built once into the cache from
  # PyPI's llama-cpp-python sdist (measured 7m35s cold on 2 cores), then 0 s
  stage "llama.cpp llama-server + tiny GGUF model (cached)"
  scripts/llamacpp/setup.sh
  stage_end
fi

stage "cargo fmt --check"
cargo fmt --all -- --check
stage_end

stage "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
stage_end

# Also: every flag and env var the manifests pass checked against the binaries' Cli::command()
# (crates/test-support/tests/manifests.rs), and the pipeline end to end on vllm-sim + real Prometheus + real
# MLflow with the steps rendered from the manifests (crates/perf-decision/tests/real_pipeline_sim.rs).
stage "cargo nextest (unit + integration: vllm-sim, real Prometheus, real MLflow, manifests, sim end to end)"
counted cargo nextest run --workspace --locked --profile ci
stage_end

stage "doc tests and rustdoc"
cargo test --workspace --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
stage_end

if [ -x scripts/validate-deploy.sh ]; then
  stage "deployment artifacts (Argo, Kubernetes, Dockerfile, Grafana)"
  counted scripts/validate-deploy.sh
  stage_end
fi

stage "release build (the Dockerfile's exact command)"
cargo build --release --locked --bins
stage_end

stage "demo (end to end on built-in defaults)"
scripts/demo.sh
stage_end

if [ "${SKIP_REAL_VLLM:-0}" != 1 ]; then
  stage "end to end: REAL vLLM (CPU build, tiny model + LoRA adapter) + Prometheus + MLflow"
  counted env E2E_SKIP_BUILD=1 scripts/e2e.sh --backend vllm
  stage_end
fi

# Every stage above stops the script on failure (set -e, pipefail), so reaching here means none failed.
printf '\nscripts/test.sh: every stage passed (test binaries, deployment checks, end-to-end assertions)\n'
printf 'total: %s passed, 0 failed\n' "$TOTAL_PASSED"
