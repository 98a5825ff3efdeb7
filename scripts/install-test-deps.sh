#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, and nothing twice:
#   - Debian's `prometheus` and `prometheus-pushgateway` (apt-get)
#   - Debian's `chromium` and `fonts-liberation` (apt-get): the report test opens the HTML
#     reports headless (`--dump-dom`, `--screenshot`); without a font its text would not render
#   - MLflow 3.17.2 with the basic-auth extra, in a venv under the cache dir (pip), and in the
#     same venv moto[server] (a local S3-compatible server for the s3:// artifact-root tests)
#     and boto3 (MLflow lists s3:// artifacts through it)
# The cache dir is $VPG_CACHE_DIR, else ~/.cache/vllm-perf-gate. Needs root for apt-get (or sudo).
set -euo pipefail

CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
MLFLOW_VERSION=${MLFLOW_VERSION:-3.17.2}
MOTO_VERSION=${MOTO_VERSION:-5.2.5}
log() { printf 'install-test-deps: %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# System packages the tests and scripts call: Prometheus and its Pushgateway, curl (health
# checks), procps (ps, kill), venv support for Debian's python3 (python3 -m venv needs ensurepip), and headless
# Chromium with a font for the report test (crates/perf-gate/tests/real_report_chromium.rs).
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || need+=(prometheus-pushgateway)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/fonts/truetype/liberation ] || need+=(fonts-liberation)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ps >/dev/null 2>&1 || need+=(procps)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v prometheus >/dev/null 2>&1; then
  log "installing Debian's prometheus (about 15 s)"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
log "prometheus: $(prometheus --version 2>&1 | head -1)"
log "pushgateway: $(prometheus-pushgateway --version 2>&1 | head -1)"
log "chromium: $(chromium --version 2>/dev/null | head -1)"

VENV="$CACHE/mlflow-venv"
if ! "$VENV/bin/python" -c 'import mlflow, flask_wtf, moto, boto3, flask_cors' >/dev/null 2>&1 \
   || [ "$("$VENV/bin/python" -c 'import mlflow; print(mlflow.__version__)' 2>/dev/null)" != "$MLFLOW_VERSION" ] \
   || [ "$("$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null)" != "$MOTO_VERSION" ]; then
  log "installing mlflow[auth]==$MLFLOW_VERSION, moto[server]==$MOTO_VERSION and boto3 into $VENV (about 2 min)"
  mkdir -p "$CACHE"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "mlflow[auth]==$MLFLOW_VERSION" "moto[server]==$MOTO_VERSION" boto3 >&2
fi
log "mlflow: $("$VENV/bin/mlflow" --version 2>&1 | tail -1)"
log "moto: $("$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>&1 | tail -1)"

if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo-nextest missing: installing it from crates.io (a few minutes)"
  cargo install --locked cargo-nextest >&2
fi
