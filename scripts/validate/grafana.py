"""Checks for Grafana dashboard JSON (no schema package validates one offline).

The file parses; schemaVersion, uid and title are set; panel ids are unique (rows' nested panels
included) and every panel has a gridPos; every query panel has targets, every target an `expr` and a
unique refId; every panel and target datasource uses the datasource template variable; every `$var` in an
expression is a declared variable or a Grafana built-in; no metric uses a name vLLM has removed. When
promtool exists, every expression (variables substituted) is parsed by Prometheus's own PromQL parser, and a
rejected one is named by its panel.
"""

import json
import os
import re
import subprocess
import tempfile

import yaml

BUILTIN_VARS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__name",
                "__all", "__dashboard", "__from", "__to", "__org", "__user", "__timeFilter"}
# Renamed or removed by vLLM (facts note, D.3): a panel on these shows nothing on a current server.
REMOVED_METRICS = {
    "vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "vllm:time_per_output_token_seconds": "vllm:inter_token_latency_seconds",
    "vllm:avg_generation_throughput_toks_per_s": "rate(vllm:generation_tokens_total[...])",
    "vllm:avg_prompt_throughput_toks_per_s": "rate(vllm:prompt_tokens_total[...])",
    "vllm:num_requests_swapped": None,
    "vllm:cpu_cache_usage_perc": None,
}
_VAR_RE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def _walk_panels(panels):
    for p in panels or []:
        yield p
        yield from _walk_panels(p.get("panels"))


def _ds_uses_var(ds, var_names):
    if isinstance(ds, str):
        return ds.lstrip("$").strip("{}") in var_names
    if isinstance(ds, dict):
        uid = str(ds.get("uid", ""))
        return uid.startswith("$") and uid.lstrip("$").strip("{}") in var_names
    return False


def dashboard_errors(path, promtool=None):
    """(errors, notes) for one dashboard file."""
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        return [f"does not parse as JSON: {e}"], []
    errs = []
    if not isinstance(dash.get("schemaVersion"), int):
        errs.append("schemaVersion is missing or not an integer")
    for key in ("uid", "title"):
        if not dash.get(key):
            errs.append(f"{key} is missing")
    variables = (dash.get("templating") or {}).get("list") or []
    var_names = {v.get("name") for v in variables}
    ds_vars = {v.get("name") for v in variables if v.get("type") == "datasource"}
    if not ds_vars:
        errs.append("no datasource template variable (type: datasource)")
    for v in variables:
        if v.get("type") == "query" and not _ds_uses_var(v.get("datasource"), ds_vars):
            errs.append(f"variable {v.get('name')}: datasource does not use the datasource variable")

    seen, exprs = {}, []
    for p in _walk_panels(dash.get("panels")):
        pid = p.get("id")
        where = f"panel {pid} ({p.get('title')!r})"
        if not isinstance(pid, int):
            errs.append(f"{where}: id is missing or not an integer")
        elif pid in seen:
            errs.append(f"{where}: id {pid} is also used by {seen[pid]!r}")
        else:
            seen[pid] = p.get("title")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            errs.append(f"{where}: gridPos needs integer x, y, w, h")
        if p.get("type") == "row":
            continue
        if not _ds_uses_var(p.get("datasource"), ds_vars):
            errs.append(f"{where}: datasource does not use the datasource variable")
        targets = p.get("targets") or []
        if not targets:
            errs.append(f"{where}: no targets")
        refids = set()
        for t in targets:
            if t.get("refId") in refids:
                errs.append(f"{where}: duplicate refId {t.get('refId')}")
            refids.add(t.get("refId"))
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                errs.append(f"{where}: target {t.get('refId')} has no expr")
                continue
            if "datasource" in t and not _ds_uses_var(t["datasource"], ds_vars):
                errs.append(f"{where}: target {t.get('refId')} datasource does not use the datasource variable")
            for var in _VAR_RE.findall(expr):
                if var not in var_names and var not in BUILTIN_VARS:
                    errs.append(f"{where}: expr uses undeclared variable ${var}")
            for old, new in REMOVED_METRICS.items():
                if re.search(re.escape(old) + r"(?![A-Za-z0-9_:])", expr):
                    errs.append(f"{where}: {old} was removed from vLLM" + (f"; use {new}" if new else ""))
            exprs.append((where, expr))
    notes = [f"{len(seen)} panels, {len(exprs)} queries"]
    if promtool and exprs:
        perrs = _promql_errors(exprs, var_names, promtool)
        errs += perrs
        if not perrs:
            notes.append("PromQL parsed by promtool")
    return errs, notes


def _substitute(expr, var_names):
    expr = re.sub(r"\$\{?__(rate_)?interval\}?", "1m", expr)
    expr = re.sub(r"\$\{?__range\}?", "15m", expr)
    return _VAR_RE.sub(lambda m: "x" if m.group(1) in var_names else m.group(0), expr)


def _promtool_check(exprs, promtool):
    """promtool's complaint about a list of expressions (as recording rules), or None when it accepts them."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "rules.yml")
        with open(f, "w", encoding="utf-8") as fh:
            yaml.safe_dump(rules, fh)
        out = subprocess.run([promtool, "check", "rules", f], capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
        return None
    text = [line.strip() for line in (out.stdout + out.stderr).strip().splitlines() if line.strip()]
    return text[-1].split(": ", 1)[-1] if text else f"rc={out.returncode}"


def _promql_errors(exprs, var_names, promtool):
    """Every expression parsed by promtool: one call for all; when it fails, one per expression to name the
    panels whose queries Prometheus rejects."""
    subst = [(where, _substitute(e, var_names)) for where, e in exprs]
    if _promtool_check([e for _, e in subst], promtool) is None:
        return []
    errs = []
    for where, e in subst:
        why = _promtool_check([e], promtool)
        if why is not None:
            errs.append(f"{where}: promtool rejects the query {e!r}: {why}")
    return errs or ["promtool rejects the queries together but none alone"]
