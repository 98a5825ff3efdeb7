#!/usr/bin/env python3
"""Assertions of the real-vLLM end-to-end run (scripts/e2e.sh --backend vllm) on one gate run: the files both
steps wrote, and what MLflow says afterwards, read back through its REST API. The same assertions as the
simulator's end-to-end test, crates/perf-decision/tests/real_pipeline_sim.rs (check_run): change both together.

  e2e_check.py --uri MLFLOW --model M --version V --expect passed|failed --mode absolute|comparative \
      --load-test-dir DIR --decision-dir DIR [--baseline-run-id ID] [--baseline-results FILE] ...

Prints one line per assertion, `PASS: ...` or `FAIL: ...` (e2e.sh counts them), and the run id on the last
line as `RUN_ID <id>`. Exit status 1 when an assertion failed.
"""
import argparse
import json
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlflow_rest import Mlflow, MlflowError, version_tags  # noqa: E402

# The vLLM metric names the server-side figures must come from (vLLM 0.32's names).
REQUIRED_METRICS = {
    "vllm:e2e_request_latency_seconds_bucket": "P95 E2E latency (check 1)",
    "vllm:time_to_first_token_seconds_bucket": "P95 TTFT (check 2)",
    "vllm:request_success_total": "throughput (check 3)",
}


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS: {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL: {what}" + (f" ({detail})" if detail else ""), flush=True)
        return ok

    def equal(self, got, want, what):
        return self.check(got == want, f"{what} = {want!r}", f"got {got!r}")


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


def read_text(path):
    with open(path) as fh:
        return fh.read().strip()


def value(measured):
    """A results/decision `Measured` ({value, reason}) or bare number -> float or None."""
    if isinstance(measured, dict):
        measured = measured.get("value")
    if isinstance(measured, (int, float)) and math.isfinite(measured):
        return float(measured)
    return None


def close(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def check_results(c, args, results):
    c.equal(read_text(os.path.join(args.load_test_dir, "load_test_status.txt")), "completed",
            "load_test_status.txt")
    c.equal(results.get("status"), "completed", "load_test_results.json status")
    client = results.get("client") or {}
    c.equal(client.get("total_requests"), args.requests, "client total_requests")
    c.equal(client.get("success_rate"), 1.0, "client success_rate")
    adapter = results.get("adapter") or {}
    c.equal(adapter.get("name"), args.adapter, "adapter listed by /v1/models")
    c.equal(adapter.get("parent"), args.served_model, "adapter's parent (the served base model)")
    server = results.get("server") or {}
    c.equal(server.get("source"), "prometheus", "server figures' source")
    queries = [q.get("query", "") for q in server.get("queries", [])]
    for metric, what in REQUIRED_METRICS.items():
        hits = [q for q in queries if metric in q]
        c.check(bool(hits), f"a PromQL query reads {metric} ({what})", f"queries: {queries}")
        c.check(bool(hits) and all(f'job="{args.job}"' in q for q in hits),
                f'every query on {metric} selects job="{args.job}"', f"{hits}")
    for key, what in (("e2e_latency_s", "server P95 E2E latency"), ("ttft_s", "server P95 TTFT")):
        v = value((server.get(key) or {}).get("p95"))
        c.check(v is not None and v > 0, f"{what} is a positive number: {v}", json.dumps(server.get(key)))
    tput = value(server.get("throughput_rps"))
    c.check(tput is not None and tput > 0, f"server throughput is a positive number: {tput}",
            json.dumps(server.get("throughput_rps")))
    fin = value(server.get("requests_finished"))
    ok = client.get("successful_requests")
    c.check(fin is not None and round(fin) == args.requests,
            f"Prometheus counted the {args.requests} requests as finished: {fin}")
    # exactly: the window rests on confirmed scrape samples, so a count is a counter difference, not an estimate
    c.check(fin is not None and fin == ok,
            f"server finished requests = client successful requests, exactly: {fin} = {ok}")
    for key in ("e2e_latency_s", "ttft_s"):
        quantiles = {q: value((server.get(key) or {}).get(q)) for q in ("p50", "p95", "p99")}
        c.check(all(v is not None for v in quantiles.values()), f"server {key} quantiles all non-null: {quantiles}",
                json.dumps(server.get(key)))
    integrity = server.get("integrity") or {}
    c.equal(integrity.get("edges_confirmed"), True, "window edges on confirmed scrape samples")
    validity = results.get("validity") or {}
    c.check(validity.get("valid") is True, "the measurement is valid", json.dumps(validity.get("reasons")))
    window = server.get("window") or {}
    if args.scrape_interval is not None:
        c.equal(window.get("scrape_interval_s"), args.scrape_interval, "scrape interval load-test used (s)")
        c.equal(window.get("scrape_interval_source"), "prometheus", "scrape interval read from Prometheus (auto)")
    figures(results)


def figures(results):
    """One line of the figures a reader wants from a real run (not assertions)."""
    client, server = results.get("client") or {}, results.get("server") or {}
    timing, window = results.get("timing") or {}, (results.get("server") or {}).get("window") or {}

    def q(d, k):
        v = value(((d or {}).get(k) or {}).get("p95"))
        return "null" if v is None else f"{v:.3f}"
    print(f"  FIGURES: client successful {client.get('successful_requests')}/{client.get('total_requests')}, "
          f"server finished {value(server.get('requests_finished'))}; P95 E2E server {q(server, 'e2e_latency_s')} s "
          f"client {q(client, 'e2e_s')} s; P95 TTFT server {q(server, 'ttft_s')} s client {q(client, 'ttft_s')} s; "
          f"throughput {value(server.get('throughput_rps'))} req/s; load {timing.get('load_duration_s')} s, "
          f"waited before {window.get('waited_before_load_s')} s, after {window.get('waited_after_load_s')} s, "
          f"step {timing.get('wall_clock_duration_s')} s; scrape {window.get('scrape_interval_s')} s "
          f"({window.get('scrape_interval_source')}), W {window.get('range_s')} s", flush=True)


def check_decision(c, args, decision):
    c.equal(read_text(os.path.join(args.decision_dir, "perf_status.txt")), args.expect, "perf_status.txt")
    c.equal(decision.get("decision"), args.expect, "perf_decision.json decision")
    c.equal(decision.get("mode"), args.mode, "perf_decision.json mode")
    c.equal(decision.get("candidate_version"), args.version, "candidate version")
    # resolve-candidate fixed the version before the load; the decision was given it, not the alias
    c.equal(decision.get("candidate_alias"), args.candidate_alias, "candidate_alias (the version came resolved)")
    c.equal(decision.get("candidate_adapter"), args.adapter, "candidate adapter")
    c.equal(decision.get("metrics_source"), "server", "metrics source")
    served = [w for w in decision.get("warnings", []) if "served_adapter" in w]
    c.check(not served, "the measured adapter was checked against the version's served_adapter tag", f"{served}")
    checks = decision.get("checks", [])
    c.equal(len(checks), 4, "number of checks")
    if args.mode == "comparative":
        c.equal((decision.get("baseline") or {}).get("run_id"), args.baseline_run_id, "baseline run")
    else:
        c.check(decision.get("baseline") is None, "no baseline in absolute mode", json.dumps(decision.get("baseline")))
    if args.expect == "passed":
        failed = [ch.get("reason") for ch in checks if not ch.get("passed")]
        c.check(not failed, "all four checks passed", "; ".join(map(str, failed)))
    else:
        # failed on the comparison with the baseline: a relative bound exceeded
        rel = [ch for ch in checks if not ch.get("passed") and ch.get("relative_limit") is not None]
        c.check(bool(rel), "a check failed against the baseline's relative bound",
                json.dumps([ch.get("reason") for ch in checks]))
        for ch in rel:
            print(f"  failed check: {ch.get('name')}: {ch.get('reason')}")


def check_mlflow(c, args, decision, results_path):
    ml = Mlflow(args.uri)
    other = "perf-failed" if args.expect == "passed" else "perf-passed"
    c.equal(ml.alias_version(args.model, f"perf-{args.expect}"), args.version, f"alias perf-{args.expect}")
    c.equal(ml.alias_version(args.model, other), None, f"alias {other} (removed from the model)")
    aliases = ml.model_aliases(args.model)
    print(f"  aliases of {args.model}: {aliases}")
    run_id = (decision.get("mlflow") or {}).get("run_id")
    c.check(bool(run_id), "perf_decision.json names the MLflow run")
    if not run_id:
        return None
    mv = ml.model_version(args.model, args.version)
    tags = version_tags(mv)
    c.equal(tags.get("perf_decision"), args.expect, f"version {args.version} tag perf_decision")
    c.equal(tags.get("perf_run_id"), run_id, f"version {args.version} tag perf_run_id")
    c.equal(tags.get("adapter_name"), args.adapter, f"version {args.version} tag adapter_name (the served adapter)")
    c.check(mv.get("source", "").startswith(("runs:/", "s3://")), f"version source {mv.get('source')}")

    run = ml.get_run(run_id)
    info, data = run["info"], run.get("data", {})
    c.equal(info.get("status"), "FINISHED", "run status")
    rtags = {t["key"]: t["value"] for t in data.get("tags", [])}
    params = {p["key"]: p["value"] for p in data.get("params", [])}
    metrics = {m["key"]: m["value"] for m in data.get("metrics", [])}
    c.equal(rtags.get("perf_decision"), args.expect, "run tag perf_decision")
    for key, want in (("model_name", args.model), ("candidate_version", args.version),
                      ("candidate_adapter", args.adapter), ("mode", args.mode),
                      ("concurrency", str(args.concurrency)), ("total_requests", str(args.requests)),
                      ("baseline_run_id", args.baseline_run_id or "none")):
        c.equal(params.get(key), want, f"run param {key}")
    thresholds = [k for k in params if k.startswith(("max_", "min_"))]
    c.check(len(thresholds) >= 4, f"run params hold the thresholds: {sorted(thresholds)}")
    dmetrics = decision.get("metrics", {})
    for key in ("p95_latency_s", "p95_ttft_s", "throughput_rps", "client_success_rate"):
        c.check(close(value(metrics.get(key)), value(dmetrics.get(key))),
                f"run metric {key} = the decision's {value(dmetrics.get(key))}", f"run has {metrics.get(key)}")
    if args.mode == "comparative":
        for key in ("baseline_p95_latency_s", "baseline_p95_ttft_s", "baseline_throughput_rps"):
            c.check(value(metrics.get(key)) is not None, f"run metric {key} logged", f"{metrics.get(key)}")

    inputs = (run.get("inputs") or {}).get("dataset_inputs", [])
    c.equal(len(inputs), 1, "dataset inputs")
    if inputs:
        ds, dtags = inputs[0]["dataset"], {t["key"]: t["value"] for t in inputs[0].get("tags", [])}
        c.equal(ds.get("name"), args.dataset_name, "dataset name")
        c.equal(dtags.get("mlflow.data.context"), "performance-test", "dataset context")
        digest = (read_json(results_path).get("eval_data") or {}).get("digest", "")[:36]
        c.check(bool(digest) and ds.get("digest") == digest, f"dataset digest = the eval file's {digest}",
                f"got {ds.get('digest')}")
        c.check(args.dataset_source in ds.get("source", ""), f"dataset source names {args.dataset_source}",
                f"got {ds.get('source')}")

    files = {f["path"] for f in ml.list_artifacts(run_id)}
    for name in ("load_test_results.json", "perf_decision.json"):
        c.check(name in files, f"artifact {name}", f"artifacts: {sorted(files)}")
    if "load_test_results.json" in files:
        with open(results_path, "rb") as fh:
            local = fh.read()
        c.check(ml.download(info, "load_test_results.json") == local,
                "artifact load_test_results.json = the file load-test wrote, byte for byte")
    if "perf_decision.json" in files:
        remote = json.loads(ml.download(info, "perf_decision.json"))
        c.equal(remote.get("decision"), args.expect, "artifact perf_decision.json decision")
    return run_id


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--expect", choices=["passed", "failed"], required=True)
    ap.add_argument("--mode", choices=["absolute", "comparative"], required=True)
    ap.add_argument("--load-test-dir", required=True)
    ap.add_argument("--decision-dir", required=True)
    ap.add_argument("--baseline-run-id")
    ap.add_argument("--baseline-results", help="the baseline run's load_test_results.json: must be faster")
    ap.add_argument("--adapter", default="candidate")
    ap.add_argument("--served-model", default="tiny-base")
    ap.add_argument("--candidate-alias", default=None,
                    help="the alias the decision records; none when the version was given (resolved)")
    ap.add_argument("--scrape-interval", type=float, help="the scrape interval load-test must have read, seconds")
    ap.add_argument("--job", default="vllm-service")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--dataset-name", required=True)
    ap.add_argument("--dataset-source", required=True)
    args = ap.parse_args()

    c = Checker()
    results_path = os.path.join(args.load_test_dir, "load_test_results.json")
    run_id = None
    try:
        results = read_json(results_path)
        check_results(c, args, results)
        decision = read_json(os.path.join(args.decision_dir, "perf_decision.json"))
        check_decision(c, args, decision)
        if args.baseline_results:
            base = read_json(args.baseline_results)
            b = value(((base.get("server") or {}).get("e2e_latency_s") or {}).get("p95"))
            n = value(((results.get("server") or {}).get("e2e_latency_s") or {}).get("p95"))
            c.check(b is not None and n is not None and n > b,
                    f"the slowed server's P95 E2E latency {n} > the baseline's {b}")
        run_id = check_mlflow(c, args, decision, results_path)
    except (OSError, ValueError, KeyError, MlflowError) as e:
        c.check(False, "checks ran to the end", f"{type(e).__name__}: {e}")
    print(f"checks: {c.passed} passed, {c.failed} failed")
    if run_id:
        print(f"RUN_ID {run_id}")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
