"""The command lines the manifests give the gate's binaries: every `--flag` and env var must exist.

The truth is each binary's own `--help` (clap prints every long flag and `[env: NAME=...]`). When the
binaries are not built (or are still stubs that print no flags), a built-in list from DESIGN.md and the
binaries' plans is used instead, and the report says so.
"""

import os
import re
import subprocess

# The binaries' flags and env vars as their --help printed them (2026-11-23), for when they are not built.
# Keep in sync: with the binaries built, the validator uses --help and ignores this list.
FALLBACK = {
    "load-test": {
        "flags": "adapter-name api-key concurrency drain-grace endpoint eval-data-path gpu-selector log-format "
        "max-tokens num-requests output-dir progress-interval prometheus-job prometheus-timeout prometheus-url "
        "prompt-field rate request-timeout scrape-interval scrape-wait temperature vllm-url wait-ready warmup-requests "
        "window-mode",
        "env": "ADAPTER_NAME CONCURRENCY DRAIN_GRACE ENDPOINT EVAL_DATA_PATH GPU_SELECTOR LOG_FORMAT MAX_TOKENS "
        "NUM_REQUESTS OUTPUT_DIR PROGRESS_INTERVAL PROMETHEUS_JOB PROMETHEUS_TIMEOUT PROMETHEUS_URL PROMPT_FIELD "
        "RATE REQUEST_TIMEOUT SCRAPE_INTERVAL SCRAPE_WAIT TEMPERATURE VLLM_API_KEY VLLM_URL WAIT_READY WARMUP_REQUESTS "
        "WINDOW_MODE",
    },
    "perf-decision": {
        "flags": "baseline-any-model baseline-file candidate-alias candidate-version dry-run eval-data-source "
        "eval-data-version eval-dataset-name experiment-name fail-on-reject insecure-tls load-test-results "
        "log-format max-latency-regression max-p95-latency max-p95-ttft max-success-rate-drop max-throughput-drop "
        "max-ttft-regression metrics-source min-success-rate min-throughput mlflow-retries mlflow-timeout "
        "model-name no-mlflow output-dir run-name tracking-password tracking-token tracking-uri tracking-username",
        "env": "BASELINE_ANY_MODEL BASELINE_FILE CANDIDATE_ALIAS CANDIDATE_VERSION PERF_DRY_RUN EVAL_DATASET_NAME "
        "EVAL_DATA_SOURCE EVAL_DATA_VERSION FAIL_ON_REJECT LOAD_TEST_RESULTS LOG_FORMAT MAX_LATENCY_REGRESSION "
        "MAX_P95_LATENCY MAX_P95_TTFT MAX_SUCCESS_RATE_DROP MAX_THROUGHPUT_DROP MAX_TTFT_REGRESSION METRICS_SOURCE "
        "MIN_SUCCESS_RATE MIN_THROUGHPUT PERF_EXPERIMENT_NAME MLFLOW_HTTP_REQUEST_MAX_RETRIES "
        "MLFLOW_HTTP_REQUEST_TIMEOUT MLFLOW_RUN_NAME MLFLOW_TRACKING_INSECURE_TLS MLFLOW_TRACKING_PASSWORD "
        "MLFLOW_TRACKING_TOKEN MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MODEL_NAME PERF_NO_MLFLOW OUTPUT_DIR",
    },
    "vllm-sim": {
        "flags": "api-key cut-mode cut-rate decode-slowdown error-rate gpu-util host itl jitter kv-cache-tokens log-format "
        "lora-modules max-loras max-model-len max-num-seqs model-root port seed served-model-name shutdown-grace "
        "stop-probability ttft worker-threads",
        "env": "VLLM_SIM_API_KEY VLLM_SIM_CUT_MODE VLLM_SIM_CUT_RATE VLLM_SIM_DECODE_SLOWDOWN VLLM_SIM_ERROR_RATE VLLM_SIM_GPU_UTIL "
        "VLLM_SIM_HOST VLLM_SIM_ITL VLLM_SIM_JITTER VLLM_SIM_KV_CACHE_TOKENS VLLM_SIM_LOG_FORMAT "
        "VLLM_SIM_LORA_MODULES VLLM_SIM_MAX_LORAS VLLM_SIM_MAX_MODEL_LEN VLLM_SIM_MAX_NUM_SEQS VLLM_SIM_MODEL_ROOT "
        "VLLM_SIM_PORT VLLM_SIM_SEED VLLM_SIM_SERVED_MODEL_NAME VLLM_SIM_SHUTDOWN_GRACE VLLM_SIM_STOP_PROBABILITY "
        "VLLM_SIM_TTFT VLLM_SIM_WORKER_THREADS",
    },
}

# Env vars a binary reads without clap (the MLflow client's standard names) or that every Rust program
# honours; never flagged as unknown.
EXTRA_ENV = {
    "perf-decision": {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
                      "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_INSECURE_TLS"},
}
COMMON_ENV = {"RUST_LOG", "RUST_BACKTRACE", "NO_COLOR", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY",
              "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

_FLAG_RE = re.compile(r"(?m)^\s+(?:-[A-Za-z0-9], )?--([a-z0-9][a-z0-9-]*)")
_ENV_RE = re.compile(r"\[env:\s+([A-Za-z_][A-Za-z0-9_]*)")  # clap may wrap after "[env:"


class Cli:
    """Known flags and env vars of one binary, and where they came from."""

    def __init__(self, name, flags, env, source):
        self.name = name
        self.flags = set(flags) | {"help", "version"}
        self.env = set(env) | EXTRA_ENV.get(name, set()) | COMMON_ENV
        self.source = source


def parse_help(text):
    return set(_FLAG_RE.findall(text)), set(_ENV_RE.findall(text))


def load(root):
    bin_dir = os.environ.get("VPG_BIN_DIR") or os.path.join(root, "target", "debug")
    clis = {}
    for name, fb in FALLBACK.items():
        path = os.path.join(bin_dir, name)
        flags = env = set()
        if os.access(path, os.X_OK):
            try:
                out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=20,
                                     env={**os.environ, "NO_COLOR": "1", "RUST_LOG": "off"})
                flags, env = parse_help(out.stdout + out.stderr)
            except (OSError, subprocess.TimeoutExpired):
                flags = env = set()
        if flags:
            clis[name] = Cli(name, flags, env, f"{os.path.relpath(path, root)} --help")
        else:
            clis[name] = Cli(name, fb["flags"].split(), fb["env"].split(), "built-in list (binary not built)")
    return clis


def binary_of(command, args):
    """The gate binary a container runs, from its command (or first arg), else None."""
    argv = list(command or []) + list(args or [])
    if not argv or not isinstance(argv[0], str):
        return None, []
    name = os.path.basename(argv[0])
    return name, argv[1:]


def check_container(clis, command, args, env_names):
    """Errors for unknown flags / env vars of a container that runs one of the gate's binaries."""
    name, argv = binary_of(command, args)
    if name not in clis:
        return [], None
    cli = clis[name]
    errs = []
    for a in argv:
        if not isinstance(a, str):
            continue
        if a.startswith("{{="):  # an Argo expression: check the flags in its string literals
            flags = re.findall(r"""['"]--([a-z0-9][a-z0-9-]*)""", a)
        elif a.startswith("--") and len(a) > 2:
            flags = [a[2:].split("=", 1)[0]]
        else:
            flags = []
        for flag in flags:
            if flag not in cli.flags:
                errs.append(f"{name}: unknown flag --{flag} (known from {cli.source})")
    for e in env_names:
        if e not in cli.env:
            errs.append(f"{name}: env var {e} is not read by {name} (known from {cli.source})")
    return errs, name
