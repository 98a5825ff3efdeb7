#!/usr/bin/env bash
# Captures what a running vLLM (or vllm-sim) sends, raw, into a directory: the reference samples of the
# sim-vs-real fidelity test (crates/vllm-sim/tests/fixtures/real-0.32/ holds a capture of the real vLLM 0.32).
#
#   scripts/vllm/capture-samples.sh BASE_URL OUT_DIR       e.g. http://127.0.0.1:8765 /tmp/samples
#
# Run it against a FRESH server (no request served yet): the first file is /metrics before any request (vLLM
# omits vllm:lora_requests_info until the first one). Requests are greedy (temperature 0), 8 tokens,
# ignore_eos, so the bodies are as repeatable as the server allows. OUT_DIR is replaced as a whole (written to
# a temporary directory, renamed at the end).
#
# Files (bodies byte for byte as received; response status line + headers in headers/<file>.txt):
#   metrics_fresh.txt              GET /metrics before any generation request
#   health.txt, version.json       GET /health, GET /version
#   models.json                    GET /v1/models
#   completions_stream.sse         POST /v1/completions, stream, no usage chunk
#   completions_stream_usage.sse   ... with stream_options.include_usage
#   chat_stream.sse                POST /v1/chat/completions, stream, no usage chunk
#   chat_stream_usage.sse          ... with stream_options.include_usage
#   completions.json, chat.json    the same requests, not streamed
#   error_404_completions_stream.json   unknown model, stream: true (vLLM answers JSON, not SSE)
#   error_404_chat.json            unknown model, chat, not streamed
#   error_400_max_tokens.json      max_tokens above max_model_len
#   metrics_after.txt              GET /metrics after all of the above
#   manifest.json                  per file: method, path, request body, HTTP status, content-type, seconds
# Env: ADAPTER_NAME (default candidate): the model the requests name.
set -euo pipefail

if [ $# -ne 2 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,27p' "$0" >&2
  exit 2
fi
BASE=${1%/}
OUT=$2
ADAPTER=${ADAPTER_NAME:-candidate}
log() { printf '[capture-samples %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

curl -sf -m 5 -o /dev/null "$BASE/health" || { log "error: $BASE/health does not answer 200"; exit 1; }
mkdir -p "$(dirname "$OUT")"
TMP=$(mktemp -d "$(dirname "$OUT")/.capture.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/headers"
INDEX=$TMP/.index.tsv

# fetch FILE METHOD PATH [JSON_BODY]: one request, body to FILE, headers to headers/FILE.txt.
fetch() {
  local file=$1 method=$2 path=$3 body=${4:-} t0 args=()
  [ -n "$body" ] && args=(-H 'Content-Type: application/json' --data-binary "$body")
  t0=$EPOCHREALTIME
  curl -sS -N -m 60 -X "$method" -D "$TMP/headers/$file.txt" -o "$TMP/$file" "${args[@]}" "$BASE$path"
  printf '%s\t%s\t%s\t%s\t%s\n' "$file" "$method" "$path" \
    "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')" "$body" >>"$INDEX"
  log "$method $path -> $(head -n1 "$TMP/headers/$file.txt" | tr -d '\r') ($file)"
}

PROMPT='The license says'
MSGS='[{"role":"user","content":"Hello there"}]'
COMMON='"max_tokens":8,"temperature":0,"ignore_eos":true'
USAGE='"stream_options":{"include_usage":true}'

fetch metrics_fresh.txt GET /metrics
fetch health.txt GET /health
fetch version.json GET /version
fetch models.json GET /v1/models
fetch completions_stream.sse POST /v1/completions "{\"model\":\"$ADAPTER\",\"prompt\":\"$PROMPT\",$COMMON,\"stream\":true}"
fetch completions_stream_usage.sse POST /v1/completions \
  "{\"model\":\"$ADAPTER\",\"prompt\":\"$PROMPT\",$COMMON,\"stream\":true,$USAGE}"
fetch chat_stream.sse POST /v1/chat/completions "{\"model\":\"$ADAPTER\",\"messages\":$MSGS,$COMMON,\"stream\":true}"
fetch chat_stream_usage.sse POST /v1/chat/completions \
  "{\"model\":\"$ADAPTER\",\"messages\":$MSGS,$COMMON,\"stream\":true,$USAGE}"
fetch completions.json POST /v1/completions "{\"model\":\"$ADAPTER\",\"prompt\":\"$PROMPT\",$COMMON}"
fetch chat.json POST /v1/chat/completions "{\"model\":\"$ADAPTER\",\"messages\":$MSGS,$COMMON}"
fetch error_404_completions_stream.json POST /v1/completions \
  "{\"model\":\"nope\",\"prompt\":\"$PROMPT\",$COMMON,\"stream\":true}"
fetch error_404_chat.json POST /v1/chat/completions "{\"model\":\"nope\",\"messages\":$MSGS,$COMMON}"
fetch error_400_max_tokens.json POST /v1/completions \
  "{\"model\":\"$ADAPTER\",\"prompt\":\"$PROMPT\",\"max_tokens\":5000,\"temperature\":0}"
sleep 1 # let the engine's stats logger publish the last request's observations
fetch metrics_after.txt GET /metrics

python3 - "$TMP" "$BASE" <<'EOF'
import json, os, sys, time
tmp, base = sys.argv[1], sys.argv[2]
entries = []
with open(os.path.join(tmp, ".index.tsv")) as fh:
    for line in fh:
        file, method, path, secs, body = line.rstrip("\n").split("\t", 4)
        with open(os.path.join(tmp, "headers", file + ".txt"), encoding="latin-1") as h:
            lines = [l.rstrip("\r\n") for l in h if l.strip()]
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        entries.append({"file": file, "method": method, "path": path,
                        "request": json.loads(body) if body else None, "status": status,
                        "content_type": headers.get("content-type"), "seconds": float(secs)})
version = None
try:
    with open(os.path.join(tmp, "version.json")) as fh:
        version = json.load(fh).get("version")
except (OSError, ValueError):
    pass
manifest = {"server": base, "server_version": version,
            "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "captured_by": "scripts/vllm/capture-samples.sh", "files": entries}
with open(os.path.join(tmp, "manifest.json"), "w") as fh:
    json.dump(manifest, fh, indent=2)
    fh.write("\n")
os.remove(os.path.join(tmp, ".index.tsv"))
EOF

{
  echo "# Raw samples from $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("vLLM " + str(m["server_version"]))' "$TMP/manifest.json")"
  echo
  echo "Captured $(date -u +%Y-%m-%dT%H:%M:%SZ) by \`scripts/vllm/capture-samples.sh $BASE DIR\` (adapter \`$ADAPTER\`)."
  echo "Do not edit: capture again (scripts/e2e.sh --backend vllm with E2E_CAPTURE_DIR=DIR does it on a fresh server)."
  echo
  echo '```'
  sed -n '5,25p' "$0" | sed 's/^# \{0,1\}//'
  echo '```'
} >"$TMP/README.md"

# sanity: the shapes the fidelity test relies on
fails=0
expect() { if "$@" >/dev/null 2>&1; then :; else log "unexpected: ${*: -1} ($*)"; fails=$((fails + 1)); fi; }
for f in completions_stream.sse completions_stream_usage.sse chat_stream.sse chat_stream_usage.sse; do
  expect grep -qx 'data: \[DONE\]' "$TMP/$f"
done
expect grep -q '"usage":{' "$TMP/completions_stream_usage.sse"
expect grep -q '"usage":{' "$TMP/chat_stream_usage.sse"
expect grep -q ' 404' "$TMP/headers/error_404_chat.json.txt"
expect grep -q ' 404' "$TMP/headers/error_404_completions_stream.json.txt"
expect grep -q '^vllm:e2e_request_latency_seconds_bucket{' "$TMP/metrics_after.txt"

rm -rf "$OUT"
chmod 755 "$TMP"
mv "$TMP" "$OUT"
trap - EXIT
log "wrote $OUT ($(find "$OUT" -type f | wc -l) files)"
[ "$fails" = 0 ] || { log "$fails unexpected shapes (see above)"; exit 1; }
