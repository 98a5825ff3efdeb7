"""Checks for the monitoring stack: Prometheus alert rules and their unit tests, and a rendered stack's wiring.

Rules (a rules file, or a PrometheusRule's spec): every alert has `for:`, a `severity` label and `summary` and
`description` annotations, alert names are unique, and `promtool check rules` accepts the file.

Rule unit tests: `promtool test rules` passes, and every alert of the rule files it loads has a test where it
fires (non-empty exp_alerts) and one where it does not (empty exp_alerts).

A rendered kustomization (what `kubectl kustomize` prints), for each container that runs Prometheus
(`--config.file=`) or Grafana: the ConfigMaps are written where the container mounts them, then
- Prometheus: the config file is where `--config.file` says, every rule_files pattern matches a mounted file,
  `promtool check config` accepts the config with those rule files, each rule file passes the rule checks, and
  every scrape job that discovers targets in its own namespace keeps at least one Service of the render;
- Grafana: each provisioned data source URL names a Service (and port) of the render, each dashboard provider's
  path holds dashboards, and each dashboard passes the dashboard checks (its PromQL parsed by promtool).
Every Service of the render selects a pod of the render, and a named targetPort is a port of that pod.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
from urllib.parse import urlsplit

import yaml

import grafana

SEVERITIES = ("critical", "warning", "info")
# Where Grafana reads provisioning files unless GF_PATHS_PROVISIONING says otherwise.
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"


# ---------------------------------------------------------------------------------------------------- rules

def rule_group_errors(groups):
    """Errors of our own rule policy for a list of rule groups."""
    errs, seen = [], set()
    if not isinstance(groups, list) or not groups:
        return ["no rule groups"]
    for g in groups:
        for r in (g or {}).get("rules") or []:
            name = r.get("alert")
            if name is None:
                continue  # a recording rule
            where = f"alert {name}"
            if name in seen:
                errs.append(f"{where}: defined twice")
            seen.add(name)
            if not r.get("for"):
                errs.append(f"{where}: no `for:` (one bad scrape would page)")
            sev = (r.get("labels") or {}).get("severity")
            if sev not in SEVERITIES:
                errs.append(f"{where}: label severity is {sev!r}, expected one of {', '.join(SEVERITIES)}")
            ann = r.get("annotations") or {}
            for key in ("summary", "description"):
                if not str(ann.get(key) or "").strip():
                    errs.append(f"{where}: no {key} annotation")
    return errs


def alert_names(groups):
    return [r["alert"] for g in groups or [] for r in (g or {}).get("rules") or [] if r.get("alert")]


def promtool_rules_errors(path, promtool):
    """`promtool check rules` of one file: error lines, empty when it passes."""
    out = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
        return []
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    return [f"promtool check rules: {' | '.join(lines[-4:])}"]


def rules_file_errors(path, promtool):
    """(errors, notes) for one rules file."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        return [f"does not parse: {e}"], []
    errs = rule_group_errors(doc.get("groups"))
    notes = [f"{len(alert_names(doc.get('groups')))} alerts"]
    if promtool:
        perrs = promtool_rules_errors(path, promtool)
        errs += perrs
        notes.append("" if perrs else "promtool check rules")
    else:
        notes.append("promtool not installed: rules not checked by promtool")
    return errs, notes


def rule_tests_errors(path, promtool):
    """(errors, notes) for one promtool unit-test file."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        return [f"does not parse: {e}"], []
    errs, base = [], os.path.dirname(path)
    alerts = []
    for pattern in doc.get("rule_files") or []:
        files = sorted(glob.glob(os.path.join(base, pattern)))
        if not files:
            errs.append(f"rule_files {pattern} matches no file")
        for rf in files:
            alerts += alert_names(_load(rf).get("groups"))
    fires, silent = set(), set()
    for t in doc.get("tests") or []:
        for a in t.get("alert_rule_test") or []:
            (fires if a.get("exp_alerts") else silent).add(a.get("alertname"))
    for name in alerts:
        if name not in fires:
            errs.append(f"alert {name}: no test where it fires (exp_alerts not empty)")
        if name not in silent:
            errs.append(f"alert {name}: no test where it stays silent (exp_alerts: [])")
    for name in sorted((fires | silent) - set(alerts)):
        errs.append(f"alert {name} is tested but defined in no rule file")
    notes = [f"{len(doc.get('tests') or [])} test groups, {len(alerts)} alerts each shown firing and silent"]
    if promtool:
        out = subprocess.run([promtool, "test", "rules", os.path.basename(path)], cwd=base,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            text = [ln.rstrip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
            errs.append("promtool test rules failed: " + " | ".join(ln.strip() for ln in text[:12]))
        else:
            notes.append("promtool test rules")
    else:
        notes.append("promtool not installed: rules NOT tested")
    return errs, notes


def prometheus_rule_errors(doc, root, promtool):
    """A PrometheusRule CR: the rule policy, promtool on its groups, and equality with the rules file it names
    in the annotation vllm-perf-gate.io/rules-file (a path from the repository root)."""
    groups = (doc.get("spec") or {}).get("groups")
    errs = rule_group_errors(groups)
    if promtool and groups:
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "rules.yml")
            with open(p, "w", encoding="utf-8") as f:
                yaml.safe_dump({"groups": groups}, f, sort_keys=False)
            errs += promtool_rules_errors(p, promtool)
    src = ((doc.get("metadata") or {}).get("annotations") or {}).get("vllm-perf-gate.io/rules-file")
    if src:
        try:
            with open(os.path.join(root, src), encoding="utf-8") as f:
                want = (yaml.safe_load(f) or {}).get("groups")
        except (OSError, yaml.YAMLError) as e:
            return errs + [f"rules file {src}: {e}"]
        if want != groups:
            errs.append(f"spec.groups differs from {src}: keep the two identical")
    return errs


# ------------------------------------------------------------------------------------------- rendered stack

def _load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _pod(doc):
    spec = doc.get("spec") or {}
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return (spec.get("template") or {})
    return None


def _configmaps(docs):
    return {(d.get("metadata") or {}).get("name"): d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}


def _materialize(pod_spec, container, cms, tmp):
    """Writes each ConfigMap volume the container mounts under tmp + mountPath. Returns errors."""
    errs = []
    volumes = {v.get("name"): v for v in pod_spec.get("volumes") or []}
    for m in container.get("volumeMounts") or []:
        vol = volumes.get(m.get("name")) or {}
        cm = vol.get("configMap")
        if not cm:
            continue
        data = cms.get(cm.get("name"))
        if data is None:
            if not cm.get("optional"):
                errs.append(f"volume {m.get('name')}: ConfigMap {cm.get('name')} is not in the render")
            continue
        items = cm.get("items") or [{"key": k, "path": k} for k in data]
        for it in items:
            if it["key"] not in data:
                errs.append(f"volume {m.get('name')}: ConfigMap {cm.get('name')} has no key {it['key']}")
                continue
            rel = it["path"]
            if m.get("subPath"):
                if m["subPath"] != rel:
                    continue
                dest = tmp + m["mountPath"]
            else:
                dest = os.path.join(tmp + m["mountPath"], rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "w", encoding="utf-8") as f:
                f.write(data[it["key"]])
    return errs


def _services(docs):
    return [d for d in docs if d.get("kind") == "Service"]


def _service_meta(svc, port):
    meta = {
        "__meta_kubernetes_namespace": (svc.get("metadata") or {}).get("namespace", ""),
        "__meta_kubernetes_service_name": (svc.get("metadata") or {}).get("name", ""),
        "__meta_kubernetes_endpointslice_port_name": port.get("name", ""),
        "__meta_kubernetes_endpoint_port_name": port.get("name", ""),
        "__meta_kubernetes_service_port_name": port.get("name", ""),
    }
    for k, v in ((svc.get("metadata") or {}).get("labels") or {}).items():
        meta["__meta_kubernetes_service_label_" + re.sub(r"[^A-Za-z0-9_]", "_", k)] = str(v)
    return meta


def _kept(job, meta):
    """Whether the job's keep/drop relabel rules (those over labels modelled in meta) keep this target."""
    for r in job.get("relabel_configs") or []:
        action = r.get("action", "replace")
        src = r.get("source_labels") or []
        if action not in ("keep", "drop") or not src or not all(s in meta for s in src):
            continue
        value = r.get("separator", ";").join(meta[s] for s in src)
        hit = re.fullmatch(str(r.get("regex", "(.*)")), value) is not None
        if hit != (action == "keep"):
            return False
    return True


def _scrape_wiring_errors(cfg, docs):
    """Each job that discovers in its own namespace only must keep a Service of the render."""
    errs = []
    for job in cfg.get("scrape_configs") or []:
        sds = job.get("kubernetes_sd_configs") or []
        if not sds or not all(((sd.get("namespaces") or {}).get("own_namespace")) for sd in sds):
            continue
        ports = [(s, p) for s in _services(docs) for p in (s.get("spec") or {}).get("ports") or []]
        if not any(_kept(job, _service_meta(s, p)) for s, p in ports):
            errs.append(f"scrape job {job.get('job_name')}: its relabel rules keep no Service port of the render")
    return errs


def _service_selection_errors(docs):
    errs = []
    pods = [(d, _pod(d)) for d in docs if _pod(d) is not None]
    for svc in _services(docs):
        sel = (svc.get("spec") or {}).get("selector")
        name = (svc.get("metadata") or {}).get("name")
        if not sel:
            continue
        hits = [(d, t) for d, t in pods if all(((t.get("metadata") or {}).get("labels") or {}).get(k) == v
                                               for k, v in sel.items())]
        if not hits:
            errs.append(f"Service/{name}: its selector {sel} selects no pod of the render")
            continue
        named = {p.get("name") for _, t in hits for c in (t.get("spec") or {}).get("containers") or []
                 for p in c.get("ports") or []}
        for p in (svc.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort")
            if isinstance(tp, str) and tp not in named:
                errs.append(f"Service/{name}: targetPort {tp} is no named port of the pods it selects")
    return errs


def _container_arg(c, flag):
    for a in list(c.get("command") or []) + list(c.get("args") or []):
        if isinstance(a, str) and a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _prometheus_errors(c, docs, tmp, promtool, promtool_config):
    errs, notes = [], []
    cfg_path = _container_arg(c, "--config.file")
    local = tmp + cfg_path
    if not os.path.isfile(local):
        return [f"--config.file {cfg_path} is in no ConfigMap the container mounts"], notes
    cfg = _load(local)
    resolved, rule_files = [], []
    for pattern in cfg.get("rule_files") or []:
        full = tmp + pattern if pattern.startswith("/") else os.path.join(os.path.dirname(local), pattern)
        found = sorted(glob.glob(full))
        if not found:
            errs.append(f"rule_files {pattern} matches no file the container mounts")
        resolved.append(full)
        rule_files += found
    cfg["rule_files"] = resolved
    for rf in rule_files:
        rerrs, _ = rules_file_errors(rf, promtool)
        errs += [f"{rf[len(tmp):]}: {e}" for e in rerrs]
    errs += _scrape_wiring_errors(cfg, docs)
    if "vllm-service" not in [j.get("job_name") for j in cfg.get("scrape_configs") or []]:
        errs.append("no scrape job named vllm-service (load-test's default --prometheus-job)")
    if promtool:
        checked = os.path.join(tmp, "checked-prometheus.yml")
        with open(checked, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        perrs, _ = promtool_config(checked, cfg, promtool)
        errs += perrs
        notes.append(f"promtool: config with {len(rule_files)} mounted rule file(s)")
    n = sum(len(alert_names(_load(rf).get("groups"))) for rf in rule_files)
    notes.append(f"Prometheus {cfg_path}: {len(cfg.get('scrape_configs') or [])} jobs, {n} alerts mounted")
    return errs, notes


def _grafana_errors(c, docs, tmp, promtool):
    errs, notes = [], []
    env = {e.get("name"): e.get("value") for e in c.get("env") or []}
    prov = tmp + (env.get("GF_PATHS_PROVISIONING") or GRAFANA_PROVISIONING)
    services = {(s.get("metadata") or {}).get("name"): s for s in _services(docs)}
    ds_files = sorted(glob.glob(os.path.join(prov, "datasources", "*.y*ml")))
    if not ds_files:
        errs.append("no data source is provisioned")
    for p in ds_files:
        for ds in _load(p).get("datasources") or []:
            u = urlsplit(ds.get("url") or "")
            host = (u.hostname or "").split(".")[0]
            svc = services.get(host)
            ports = [pt.get("port") for pt in ((svc or {}).get("spec") or {}).get("ports") or []]
            if svc is None:
                errs.append(f"data source {ds.get('name')}: {ds.get('url')} names no Service of the render")
            elif (u.port or 80) not in ports:
                errs.append(f"data source {ds.get('name')}: Service {host} has no port {u.port or 80}")
    dash_count = 0
    prov_files = sorted(glob.glob(os.path.join(prov, "dashboards", "*.y*ml")))
    if not prov_files:
        errs.append("no dashboard provider is provisioned")
    for p in prov_files:
        for prv in _load(p).get("providers") or []:
            path = (prv.get("options") or {}).get("path") or ""
            dashes = sorted(glob.glob(os.path.join(tmp + path, "*.json")))
            if not dashes:
                errs.append(f"dashboard provider {prv.get('name')}: no dashboard mounted at {path}")
            for d in dashes:
                derrs, _ = grafana.dashboard_errors(d, promtool)
                errs += [f"{d[len(tmp):]}: {e}" for e in derrs]
                dash_count += 1
    notes.append(f"Grafana: {len(ds_files)} data source file(s), {dash_count} dashboard(s) as mounted")
    return errs, notes


def rendered_stack_errors(docs, promtool, promtool_config):
    """(errors, notes) of the wiring of a rendered kustomization (see the module doc)."""
    errs, notes = _service_selection_errors(docs), []
    cms = _configmaps(docs)
    for d in docs:
        t = _pod(d)
        if t is None:
            continue
        label = f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
        for c in (t.get("spec") or {}).get("containers") or []:
            is_prom = _container_arg(c, "--config.file") is not None and "prometheus" in str(c.get("image"))
            is_grafana = str(c.get("image") or "").split(":")[0].endswith("grafana/grafana")
            if not (is_prom or is_grafana):
                continue
            tmp = tempfile.mkdtemp(prefix="vpg-stack-")
            try:
                merrs = _materialize(t.get("spec") or {}, c, cms, tmp)
                cerrs, cnotes = (_prometheus_errors(c, docs, tmp, promtool, promtool_config) if is_prom
                                 else _grafana_errors(c, docs, tmp, promtool))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            errs += [f"{label} container {c.get('name')}: {e}" for e in merrs + cerrs]
            notes += cnotes
    return errs, notes
