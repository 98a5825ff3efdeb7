#!/usr/bin/env bash
# Validate the deployment artifacts offline: workflows/ (Argo), deploy/ (Jobs, kustomize overlays,
# ServiceMonitor/PodMonitor/PrometheusRule, Prometheus configs, alert rules and their promtool unit tests, the
# monitoring stack as rendered, compose, Grafana dashboard) and the Dockerfile.
#
#   scripts/validate-deploy.sh                 validate everything, then the negative self-test
#   scripts/validate-deploy.sh --self-test-only
#   scripts/validate-deploy.sh --no-self-test
#
# Tools come from a venv at ${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}/validate-venv, created on first
# use from the pinned scripts/validate/requirements.txt (~15 s, ~300 MB; needs the package index once).
# After that everything runs offline. promtool (Debian's prometheus package) is used when installed; with CI
# set in the environment a missing promtool is a failure.
# The flags and env vars the manifests pass to the binaries are checked by the Rust test
# crates/test-support/tests/manifests.rs (against each binary's own command line), not here.
# Prints one line per file and `N passed, N failed`; exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
VENV=$CACHE/validate-venv
REQ=$ROOT/scripts/validate/requirements.txt
STAMP=$VENV/.requirements.sha256

want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "validate-deploy: installing the validators into $VENV" >&2
  mkdir -p "$CACHE"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >&2
  echo "$want" >"$STAMP"
fi

PYTHONDONTWRITEBYTECODE=1 exec "$VENV/bin/python" "$ROOT/scripts/validate/validate_deploy.py" --root "$ROOT" "$@"
