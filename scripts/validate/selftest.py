"""Negative self-test: deliberately broken copies of the real artifacts must each FAIL.

A validator that passes everything is worse than none; this proves each check can fail. Every case
copies a real file, breaks one thing, and runs the same check the real file went through.
"""

import copy
import json
import os
import shutil
import tempfile

import yaml

import validate_deploy as vd


def _load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _dump(path, docs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)


def _template(docs, name):
    wft = next(d for d in docs if d.get("kind") == "WorkflowTemplate")
    return wft, next(t for t in wft["spec"]["templates"] if t["name"] == name)


def _cases(root):
    """(description, make(tmpdir) -> (checker, path), expected error text) for each case."""
    wft_path = os.path.join(root, "workflows", "vllm-perf-gate.yaml")
    job_path = os.path.join(root, "deploy", "kustomize", "base", "job-load-test.yaml")
    sm_path = os.path.join(root, "deploy", "monitoring", "servicemonitor-vllm.yaml")
    dash_path = os.path.join(root, "deploy", "grafana", "vllm-dashboard.json")
    prom_path = os.path.join(root, "deploy", "prometheus", "prometheus-static.yml")

    def wft_case(mutate):
        def make(tmp):
            docs = _load(wft_path)
            mutate(docs)
            out = os.path.join(tmp, "workflows", "broken.yaml")
            _dump(out, docs)
            return vd.check_manifest_file, out
        return make

    def unknown_field(docs):
        _template(docs, "load-test")[1]["container"]["imagePullPolicyy"] = "Always"

    def undeclared_param(docs):
        _template(docs, "load-test")[1]["container"]["args"].append("--concurrency={{inputs.parameters.nope}}")

    def two_bodies(docs):
        _template(docs, "perf-decision")[1]["script"] = {"image": "x", "source": "true"}

    def bad_expression(docs):
        args = _template(docs, "resolve-candidate")[1]["container"]["args"]
        i = next(k for k, a in enumerate(args) if a.startswith("{{="))
        args[i] = args[i].replace("'candidate-version'", "'candidate-versoin'")

    def empty_flag(docs):
        args = _template(docs, "resolve-candidate")[1]["container"]["args"]
        i = next(k for k, a in enumerate(args) if a.startswith("{{="))
        args[i] = "--candidate-version={{inputs.parameters.candidate-version}}"

    def unresolved_candidate(docs):
        # the attempt given the (maybe empty) parameter instead of the resolved version: empty through gate
        args = _template(docs, "perf-gate")[1]["steps"][1][0]["arguments"]["parameters"]
        p = next(p for p in args if p["name"] == "candidate-version")
        p["value"] = "{{workflow.parameters.candidate-version}}"

    def later_step_read(docs):
        _template(docs, "perf-gate")[1]["steps"][2][0]["when"] = "{{steps.attempt-2.outputs.parameters.perf-status}} == x"

    def retried_load_test(docs):
        _template(docs, "load-test")[1]["retryStrategy"] = {"limit": "2"}

    def missing_template(docs):
        _template(docs, "perf-gate")[1]["steps"][1][0]["template"] = "perf-decison"

    def broken_job(tmp):
        docs = _load(job_path)
        docs[0]["spec"]["template"]["spec"]["contaners"] = docs[0]["spec"]["template"]["spec"]["containers"]
        out = os.path.join(tmp, "deploy", "job.yaml")
        _dump(out, docs)
        return vd.check_manifest_file, out

    def retried_job(tmp):
        docs = _load(job_path)
        docs[0]["spec"]["backoffLimit"] = 2
        out = os.path.join(tmp, "deploy", "job.yaml")
        _dump(out, docs)
        return vd.check_manifest_file, out

    def broken_sm(tmp):
        docs = _load(sm_path)
        docs[0]["spec"]["endpoints"][0]["intervall"] = docs[0]["spec"]["endpoints"][0].pop("interval")
        out = os.path.join(tmp, "deploy", "sm.yaml")
        _dump(out, docs)
        return vd.check_manifest_file, out

    def broken_dash(tmp):
        with open(dash_path, encoding="utf-8") as f:
            dash = json.load(f)
        panels = [p for p in dash["panels"] if p.get("type") != "row"]
        panels[1]["id"] = panels[0]["id"]
        panels[2]["targets"][0]["expr"] = "vllm:gpu_cache_usage_perc"
        out = os.path.join(tmp, "deploy", "dash.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(dash, f)
        return vd.check_dashboard, out

    def broken_prom(tmp):
        with open(prom_path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        cfg["scrape_configs"][0]["scrape_intervall"] = "5s"
        out = os.path.join(tmp, "deploy", "prometheus", "prometheus.yml")
        _dump(out, [cfg])
        return vd.check_prometheus_config, out

    def duplicate_key(tmp):
        with open(os.path.join(root, "deploy", "monitoring", "podmonitor-vllm.yaml"), encoding="utf-8") as f:
            text = f.read()
        out = os.path.join(tmp, "deploy", "dup.yaml")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            f.write(text.replace("kind: PodMonitor\n", "kind: PodMonitor\nkind: PodMonitor\n", 1))
        return vd.check_manifest_file, out

    def broken_overlay(tmp):
        d = os.path.join(tmp, "deploy", "kustomize", "overlays", "broken")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "kustomization.yaml"), "w", encoding="utf-8") as f:
            f.write("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../nope]\n")
        return (lambda path, ctx, report: vd.check_kustomize(path, ctx, report)), d

    def compose_without_allowed_hosts(tmp):
        src = os.path.join(root, "deploy", "compose", "docker-compose.yml")
        with open(src, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        cmd = doc["services"]["mlflow"]["command"]
        doc["services"]["mlflow"]["command"] = [a for a in cmd if not a.startswith("--allowed-hosts")]
        out = os.path.join(tmp, "deploy", "compose", "docker-compose.yml")
        _dump(out, [doc])
        return vd.check_compose, out

    def broken_dockerfile(tmp):
        with open(os.path.join(root, "Dockerfile"), encoding="utf-8") as f:
            text = f.read()
        out = os.path.join(tmp, "Dockerfile")
        with open(out, "w", encoding="utf-8") as f:
            f.write(text.replace("WORKDIR /src", "WORKDIR src").replace("USER 65532:65532", "USER root"))
        return vd.check_dockerfile, out

    stack = os.path.join("deploy", "monitoring-stack")
    rules_rel = os.path.join(stack, "base", "rules", "vllm-alerts.yml")
    tests_rel = os.path.join(stack, "base", "rules", "vllm-alerts.test.yml")
    cr_rel = os.path.join("deploy", "monitoring", "prometheusrule-vllm.yaml")

    def copy_rel(tmp, rel, edit=None):
        """Copies root/rel to tmp/rel, replacing edit=(old, new) once (the old text must be there)."""
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()
        if edit:
            assert edit[0] in text, f"{rel} has no {edit[0]!r}"
            text = text.replace(edit[0], edit[1], 1)
        out = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
        return out

    def rules_case(edit):
        return lambda tmp: (vd.check_rules, copy_rel(tmp, rules_rel, edit))

    def rule_tests_case(rules_edit=None, tests_edit=None):
        def make(tmp):
            copy_rel(tmp, rules_rel, rules_edit)
            return vd.check_rule_tests, copy_rel(tmp, tests_rel, tests_edit)
        return make

    def stack_case(rel, old, new):
        """The whole deploy/ tree copied with one edit, the vllm-monitoring overlay rendered and checked."""
        def make(tmp):
            d = tempfile.mkdtemp(dir=tmp)
            shutil.copytree(os.path.join(root, "deploy"), os.path.join(d, "deploy"))
            src = os.path.join(d, stack, rel)
            with open(src, encoding="utf-8") as f:
                text = f.read()
            assert old in text, f"{rel} has no {old!r}"
            with open(src, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))
            return vd.check_kustomize, os.path.join(d, stack, "overlays", "vllm-monitoring")
        return make

    def manifest_case(rel, old, new):
        return lambda tmp: (vd.check_manifest_file, copy_rel(tmp, rel, (old, new)))

    def diverged_rule_cr(tmp):
        copy_rel(tmp, rules_rel)
        return vd.check_manifest_file, copy_rel(tmp, cr_rel, ("DCGM_FI_DEV_GPU_UTIL > 90", "DCGM_FI_DEV_GPU_UTIL > 80"))

    sharded_wft_rel = os.path.join("workflows", "vllm-perf-gate-sharded.yaml")

    def sharded_case(rel, old, new):
        """deploy/ copied with one edit to the sharded kustomization, rendered and checked."""
        def make(tmp):
            d = tempfile.mkdtemp(dir=tmp)
            shutil.copytree(os.path.join(root, "deploy"), os.path.join(d, "deploy"))
            src = os.path.join(d, "deploy", "kustomize", "sharded", rel)
            with open(src, encoding="utf-8") as f:
                text = f.read()
            assert old in text, f"{rel} has no {old!r}"
            with open(src, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))
            return vd.check_kustomize, os.path.join(d, "deploy", "kustomize", "sharded")
        return make

    return [
        # (description, make, text the errors must contain; None = the unbroken control, which must pass)
        ("unbroken sharded kustomization copy (control)", sharded_case("pvc.yaml", "storage:", "storage:"), None),
        ("sharded merge Job missing a shard directory",
         sharded_case("job-merge.yaml", "            - /results/shard-3\n", ""), "but Job/vllm-perf-gate-sharded-load-test"),
        ("Indexed Job whose completions differ from SHARD_COUNT",
         sharded_case("job-load-test-shards.yaml", "  completions: 4\n", "  completions: 3\n"),
         "SHARD_COUNT 4 != completions 3"),
        ("shards written to one directory (no $(JOB_COMPLETION_INDEX))",
         sharded_case("job-load-test-shards.yaml", '          args: ["--output-dir=/results/shard-$(JOB_COMPLETION_INDEX)"]\n'
                      '          envFrom:\n            - configMapRef:\n                name: vllm-perf-gate-sharded-load-test',
                      '          args: ["--output-dir=/results/shards"]\n'
                      '          envFrom:\n            - configMapRef:\n                name: vllm-perf-gate-sharded-load-test'),
         "is not per shard"),
        ("unbroken sharded WorkflowTemplate copy (control)",
         lambda tmp: (vd.check_manifest_file, copy_rel(tmp, sharded_wft_rel)), None),
        ("sharded template allowing a shard count no merge step handles",
         manifest_case(sharded_wft_rel, 'enum: ["2", "4", "8"]', 'enum: ["2", "4", "6", "8"]'),
         "allows 6, but no merge step runs for it"),
        ("sharded merge template listing the wrong shard directories",
         manifest_case(sharded_wft_rel, "          - /results/shard-3\n          - \"--output-dir=/results/merged\"",
                       "          - \"--output-dir=/results/merged\""),
         "runs with 4 shards but template merge-4 merges"),
        ("unbroken WorkflowTemplate copy (control)", wft_case(lambda docs: None), None),
        ("WorkflowTemplate with an unknown field", wft_case(unknown_field), "imagePullPolicyy"),
        ("WorkflowTemplate using an undeclared input parameter", wft_case(undeclared_param), "inputs.parameters.nope"),
        ("expression using an undeclared parameter", wft_case(bad_expression), "candidate-versoin"),
        ("flag whose value may be empty", wft_case(empty_flag), "may be empty"),
        ("flag that may be empty through a nested template", wft_case(unresolved_candidate), "may be empty"),
        ("step reading a step of a later group", wft_case(later_step_read), "not in an earlier group"),
        ("template with two bodies (container and script)", wft_case(two_bodies), "exactly one of"),
        ("retryStrategy on the load test", wft_case(retried_load_test), "retryStrategy on the load test"),
        ("step calling a template that does not exist", wft_case(missing_template), "perf-decison"),
        ("Job with an unknown field", broken_job, "contaners"),
        ("load-test Job with backoffLimit 2", retried_job, "backoffLimit: 0"),
        ("ServiceMonitor with an unknown field", broken_sm, "intervall"),
        ("dashboard with a duplicate panel id", broken_dash, "also used by"),
        ("dashboard using a metric vLLM removed", broken_dash, "gpu_cache_usage_perc was removed"),
        ("Prometheus config with an unknown field", broken_prom, "scrape_intervall"),
        ("manifest with a duplicated key (yamllint)", duplicate_key, "duplication of key"),
        ("overlay whose base does not exist (kubectl kustomize)", broken_overlay, "kubectl kustomize failed"),
        ("compose MLflow without --allowed-hosts", compose_without_allowed_hosts, "without --allowed-hosts"),
        ("Dockerfile with a relative WORKDIR (hadolint DL3000)", broken_dockerfile, "DL3000"),
        ("Dockerfile ending as USER root", broken_dockerfile, "non-root USER"),
        ("unbroken monitoring stack copy (control)", stack_case("base/kustomization.yaml", "resources:", "resources:"),
         None),
        ("alert rule that does not parse (promtool check rules)",
         rules_case(("expr: DCGM_FI_DEV_GPU_UTIL > 90", "expr: DCGM_FI_DEV_GPU_UTIL > (90")), "promtool check rules"),
        ("alert without a severity label", rules_case(("          severity: warning\n", "")), "label severity is None"),
        ("alert threshold moved under its unit tests (promtool test rules)",
         rule_tests_case(rules_edit=("DCGM_FI_DEV_GPU_UTIL > 90", "DCGM_FI_DEV_GPU_UTIL > 95")),
         "promtool test rules failed"),
        ("alert with no unit test where it stays silent",
         rule_tests_case(tests_edit=(
             "      - eval_time: 4m\n        alertname: VLLMRequestsWaiting\n        exp_alerts: []\n", "")),
         "alert VLLMRequestsWaiting: no test where it stays silent"),
        ("Prometheus rule_files matching no mounted file",
         stack_case("base/prometheus/prometheus.yml", "/etc/prometheus/rules/*.yml", "/etc/prometheus/alerts/*.yml"),
         "matches no file the container mounts"),
        ("Prometheus --config.file outside its ConfigMap mount",
         stack_case("base/prometheus/deployment.yaml", "--config.file=/etc/prometheus/config/prometheus.yml",
                    "--config.file=/etc/prometheus/prometheus.yml"),
         "is in no ConfigMap the container mounts"),
        ("Pushgateway port renamed: the scrape job keeps nothing",
         stack_case("base/pushgateway/pushgateway.yaml", "    - name: http\n      port: 9091",
                    "    - name: web\n      port: 9091"),
         "scrape job pushgateway: its relabel rules keep no Service port"),
        ("Grafana data source naming no Service",
         stack_case("base/grafana/provisioning/datasources.yml", "http://prometheus:9090",
                    "http://prometheus-server:9090"),
         "names no Service of the render"),
        ("Service targetPort that no pod names",
         stack_case("base/dcgm-exporter/dcgm-exporter.yaml", "      targetPort: metrics", "      targetPort: http"),
         "targetPort http is no named port"),
        ("PrometheusRule diverging from the rules file", diverged_rule_cr, "spec.groups differs from"),
        ("DCGM exporter made privileged",
         manifest_case(os.path.join(stack, "base", "dcgm-exporter", "dcgm-exporter.yaml"),
                       "            runAsUser: 0\n", "            runAsUser: 0\n            privileged: true\n"),
         "privileged (root is allowed"),
        ("Prometheus as root (only the DCGM exporter may be)",
         manifest_case(os.path.join(stack, "base", "prometheus", "deployment.yaml"),
                       "        runAsNonRoot: true\n", ""),
         "runAsNonRoot is not set"),
    ]


# Cases only promtool can catch (skipped without it; validate_deploy fails a CI run that lacks promtool).
NEEDS_PROMTOOL = {"scrape_intervall", "promtool check rules", "promtool test rules failed"}


def run(root, report):
    wrong = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = vd.Context(tmp)
        with open(os.path.join(root, "workflows", "vllm-perf-gate.yaml"), encoding="utf-8") as f:
            for d in yaml.safe_load_all(f):
                if d and d.get("kind") == "WorkflowTemplate":
                    ctx.wft_index[d["metadata"]["name"]] = copy.deepcopy(d)
        cases = _cases(root)
        for desc, make, expected in cases:
            if expected in NEEDS_PROMTOOL and not ctx.promtool:
                continue  # nothing to catch it without promtool
            checker, path = make(tmp)
            ctx.yamllint = vd.run_yamllint([path]) if path.endswith((".yaml", ".yml")) else {}
            quiet = vd.Report(quiet=True)
            checker(path, ctx, quiet)
            errs = [e for _, es in quiet.results for e in es]
            if expected is None and errs:
                wrong.append(f"{desc}: the control copy failed: {errs[0]}")
            elif expected is not None and not any(expected in e for e in errs):
                wrong.append(f"{desc}: not rejected for it" + (f" (other errors: {errs[0]})" if errs else ""))
    label = f"self-test: {len(cases) - len(wrong)}/{len(cases)} broken copies rejected for the right reason, control passed"
    report.add(label, wrong)
