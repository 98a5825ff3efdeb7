#!/usr/bin/env bash
# Fuzzes perf-gate's parsers with cargo-fuzz (libFuzzer) for a bounded time per target, then
# prints what each run found. Not part of CI.
#   scripts/fuzz.sh [target...]     (default: every target in fuzz/Cargo.toml)
#   FUZZ_SECONDS (60): time per target; FUZZ_JOBS (1): targets run at once.
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags, and
# `-s none` builds without a sanitizer (ASan needs nightly's std). Needs `cargo install cargo-fuzz`.
# Corpora grow in fuzz/corpus/<target>/ (seeds are committed as seed_*); crash inputs land in
# fuzz/artifacts/<target>/: turn each into a regression unit test.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
JOBS="${FUZZ_JOBS:-1}"
LOGS="${FUZZ_LOGS:-target/fuzz-logs}"
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else mapfile -t TARGETS < <(RUSTC_BOOTSTRAP=1 cargo fuzz list); fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none
mkdir -p "$LOGS"

run_one() {
    local t="$1"
    mkdir -p "corpus/$t"
    local rc=0
    cargo fuzz run "$t" -s none -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        >"$LOGS/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$LOGS/$t.rc"
}

running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true

status=0
for t in "${TARGETS[@]}"; do
    log="$LOGS/$t.log"
    rc=$(cat "$LOGS/$t.rc" 2>/dev/null || echo "?")
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    echo "== $t: exit $rc, ${execs:-?} executions"
    echo "   last status: ${last:-none}"
    crashes=$(ls "artifacts/$t" 2>/dev/null | grep -E '^(crash|oom|timeout|leak)-' || true)
    if [ -n "$crashes" ] || [ "$rc" != "0" ]; then
        status=1
        echo "   FOUND:"; grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/     /'
        for c in $crashes; do echo "     fuzz/artifacts/$t/$c"; done
    else
        echo "   found nothing"
    fi
done
exit "$status"
