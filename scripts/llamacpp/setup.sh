#!/usr/bin/env bash
# Builds a real llama.cpp `llama-server` and a tiny GGUF model, once, into the cache, for the end-to-end test
# against the real thing (crates/load-test/tests/real_llamacpp.rs). Only PyPI and Debian are used:
#   - the source: PyPI's llama-cpp-python sdist (`pip download --no-binary`), which vendors llama.cpp
#     (vendor/llama.cpp, with its converter convert_hf_to_gguf.py and the gguf package in gguf-py);
#   - the build: cmake + g++ (Debian's, installed with apt-get when missing), only the llama-server target,
#     CPU only, no curl/OpenSSL, no web UI download;
#   - the model: the tiny Llama of scripts/vllm/make_tiny_model.py (made in the cached vLLM venv) and its LoRA
#     adapter, converted to GGUF (f32) by scripts/llamacpp/convert_tiny.py with the vendored converters.
#
#   scripts/llamacpp/setup.sh            build what is missing, else print "cached"
#   scripts/llamacpp/setup.sh --print    print the directory (nothing else) and exit
#
# Where: $LLAMACPP_DIR, else ${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}/llamacpp:
#   bin/llama-server, tiny.gguf, candidate.gguf (the LoRA), and .vpg-complete (the recipe; change a pin and everything is rebuilt).
# Cost of a first build: measured 7m35s on 2 cores (download 8 s, build 7m11s, conversion 16 s; 16 min when the
# cores were shared with other builds), 20 MiB kept; then 0 s. Serialised with flock on $CACHE/llamacpp.lock.
set -euo pipefail

CACHE=${VPG_CACHE_DIR:-$HOME/.cache/vllm-perf-gate}
DIR=${LLAMACPP_DIR:-$CACHE/llamacpp}
LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
JOBS=${LLAMACPP_BUILD_JOBS:-2}
CMAKE_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

log() { printf '[llamacpp-setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "${1:-}" in
  --print) echo "$DIR"; exit 0 ;;
  -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

SPEC="llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION cmake=${CMAKE_FLAGS[*]} model=tiny-llama-f32 lora=candidate-f32 convert=2"
MARKER="$DIR/.vpg-complete"
complete() {
  [ -x "$DIR/bin/llama-server" ] && [ -s "$DIR/tiny.gguf" ] && [ -s "$DIR/candidate.gguf" ] && [ "$(cat "$MARKER" 2>/dev/null)" = "$SPEC" ]
}

mkdir -p "$CACHE"
exec 9>"$CACHE/llamacpp.lock"
flock 9
if complete; then
  log "cached: $DIR"
  exit 0
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

rm -rf "$DIR"
WORK="$DIR.tmp"
rm -rf "$WORK"
mkdir -p "$WORK/bin"
log "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist from PyPI"
# pip from the MLflow venv scripts/install-test-deps.sh makes (Debian's python3 may have no pip), else python3's
PIP=("$CACHE/mlflow-venv/bin/pip")
[ -x "${PIP[0]}" ] || PIP=(python3 -m pip)
"${PIP[@]}" download -q --no-deps --no-binary llama-cpp-python \
  "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$WORK/sdist" >&2
tar xzf "$WORK"/sdist/llama_cpp_python-*.tar.gz -C "$WORK"
SRC=$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)
[ -f "$SRC/CMakeLists.txt" ] || die "no vendored llama.cpp in the sdist"

start=$(date +%s)
log "building llama-server (cmake, -j$JOBS; a few minutes)"
cmake -S "$SRC" -B "$WORK/build" "${CMAKE_FLAGS[@]}" >"$WORK/cmake.log" 2>&1 || { tail -30 "$WORK/cmake.log" >&2; die "cmake configure failed"; }
cmake --build "$WORK/build" --target llama-server -j "$JOBS" >>"$WORK/cmake.log" 2>&1 || { tail -30 "$WORK/cmake.log" >&2; die "build failed"; }
cp "$WORK/build/bin/llama-server" "$WORK/bin/"
log "llama-server built in $(( $(date +%s) - start ))s"

log "making the tiny model (cached vLLM venv) and converting it and its LoRA to GGUF"
"$ROOT/scripts/vllm/setup-venv.sh" >&2
VENV=$("$ROOT/scripts/vllm/setup-venv.sh" --print)
MODEL="$CACHE/tiny-model"
"$VENV/bin/python" "$ROOT/scripts/vllm/make_tiny_model.py" "$MODEL" >&2
"$VENV/bin/python" "$ROOT/scripts/llamacpp/convert_tiny.py" base "$SRC" "$MODEL/base" "$WORK/tiny.gguf" >"$WORK/convert.log" 2>&1 ||
  { tail -30 "$WORK/convert.log" >&2; die "GGUF conversion failed"; }
"$VENV/bin/python" "$ROOT/scripts/llamacpp/convert_tiny.py" lora "$SRC" "$MODEL/lora" "$MODEL/base" "$WORK/candidate.gguf" >>"$WORK/convert.log" 2>&1 ||
  { tail -30 "$WORK/convert.log" >&2; die "LoRA GGUF conversion failed"; }

# keep only what the tests use (the sources and objects are ~1 GiB)
rm -rf "$WORK/build" "$WORK/sdist" "$WORK"/llama_cpp_python-*
echo "$SPEC" >"$WORK/.vpg-complete"
mv "$WORK" "$DIR"
log "ready: $DIR ($(du -sh "$DIR" | cut -f1))"
