#!/usr/bin/env bash
# Issue 13's benchmark in one command: every figure of its table for load-test and, side by
# side on the same machine, Locust (installed from PyPI into a cached venv on first use), with
# vllm-sim pinned to one core and the client to the other. Prints `figure | load-test | locust |
# goal` rows (stable format), the machine line and notes (the sim's load; the ceiling without
# hyper, examples/raw_sse_ceiling; load-test on reqwest; over https behind examples/tls_front),
# and, run as root, the TTFT error against the wire (tcpdump on lo, installed with apt-get when
# missing): the truth with no server's view in it. Takes ~15 min with the defaults.
#   BENCH_RUNS (3), BENCH_SECONDS (20), BENCH_LOCUST (1; 0 skips Locust),
#   BENCH_MEM_REQUESTS ("20000 200000"), LOCUST_VERSION (2.47.0)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
LOCUST_VERSION=${LOCUST_VERSION:-2.47.0}
cargo build --locked --release -p vllm-sim -p load-test >&2
cargo build --locked --release -p perf-gate --example raw_sse_ceiling >&2
cargo build --locked --release -p test-support --example tls_front >&2
if [ "${BENCH_LOCUST:-1}" != 0 ]; then
  VENV=$CACHE/locust-venv
  if [ "$("$VENV/bin/locust" --version 2>/dev/null | awk '{print $2}')" != "$LOCUST_VERSION" ]; then
    echo "bench-compare: installing locust==$LOCUST_VERSION into $VENV" >&2
    mkdir -p "$CACHE"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "locust==$LOCUST_VERSION" >&2
  fi
  export LOCUST_VENV=$VENV
fi
if ! command -v tcpdump >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench-compare: installing tcpdump (the TTFT on the wire)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q tcpdump >&2 \
    || echo "bench-compare: no tcpdump: the wire figure is skipped" >&2
fi
ulimit -n 65536 2>/dev/null || true
exec python3 scripts/bench/compare.py
