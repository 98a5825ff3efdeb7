"""Offline validation of the gate's deployment artifacts: workflows/, deploy/, the Dockerfile.

usage: python validate_deploy.py [--root DIR] [--no-self-test] [--self-test-only]

Prints one line per file (or rendered overlay) and a final `N passed, N failed` line; exits 1 on any
failure. Run through scripts/validate-deploy.sh, which provides the pinned tools in a venv.

The sharded gate's shard count must agree wherever it is written (shards.py: the Indexed Job, the merge
Job's directory list, the Argo merge steps against the `shards` enum).

The flags and env vars the manifests pass to the gate's binaries are not checked here: the Rust test
crates/test-support/tests/manifests.rs checks them against each binary's own command line (clap).
"""

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import check_jsonschema.builtin_schemas as compose_schemas
import jsonschema
import yaml

import argo
import grafana
import monitoring
import schemas
import shards

# The shell scripts that belong to the deployment story.
SHELL_SCRIPTS = ("scripts/local-stack.sh", "scripts/validate-deploy.sh")
YAMLLINT_CONFIG = "{extends: relaxed, rules: {line-length: {max: 120}}}"
BIN = os.path.dirname(sys.executable)  # the venv's bin: kubectl, hadolint, yamllint


def tool(name):
    p = os.path.join(BIN, name)
    return p if os.access(p, os.X_OK) else shutil.which(name)


class Report:
    def __init__(self, quiet=False):
        self.passed = self.failed = 0
        self.quiet = quiet
        self.results = []

    def add(self, label, errs, notes=()):
        self.results.append((label, list(errs)))
        if errs:
            self.failed += 1
        else:
            self.passed += 1
        if self.quiet:
            return
        note = f" ({'; '.join(n for n in notes if n)})" if any(notes) else ""
        print(("FAIL " if errs else "ok   ") + label + note)
        for e in errs:
            print("       " + e)
        sys.stdout.flush()


# The gate's binaries (a container runs one when its command's base name is one of these).
GATE_BINARIES = ("load-test", "perf-decision", "vllm-sim")


def gate_binary(container):
    """The gate binary a container runs, or None."""
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if not argv or not isinstance(argv[0], str):
        return None
    name = os.path.basename(argv[0])
    return name if name in GATE_BINARIES else None


class Context:
    def __init__(self, root):
        self.root = root
        self.wft_index = {}
        self.promtool = tool("promtool")
        # In CI (CI set, as every CI system does) a missing promtool fails the run instead of skipping its checks.
        self.require_promtool = bool(os.environ.get("CI"))
        self.yamllint = {}

    def lint(self, path):
        """(errors, notes) yamllint found in a file."""
        found = self.yamllint.get(path, [])
        return ([m for level, m in found if level == "error"],
                [f"{m} (warning)" for level, m in found if level != "error"])

    def rel(self, path):
        return os.path.relpath(path, self.root)


# ---------------------------------------------------------------------------------------------- manifests

def _pod_containers(doc):
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if doc.get("kind") in ("Job", "CronJob", "Deployment", "StatefulSet", "DaemonSet"):
        spec = ((spec.get("template") or {}).get("spec")) or {}
    elif doc.get("kind") != "Pod":
        return None, []
    return spec, list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


# Images allowed to run as root, and why. Such a container still may not be privileged, may add no capability
# but SYS_ADMIN, and its pod may not share the host's network or PIDs nor mount a host path writable.
ROOT_IMAGES = {
    "nvcr.io/nvidia/k8s/dcgm-exporter":
        "DCGM's host engine refuses to run without root and SYS_ADMIN since 3.6 (NVIDIA/dcgm-exporter#402, #407)",
}


def _image_repo(image):
    image = str(image or "").split("@")[0]
    i = image.rfind(":")
    return image[:i] if i > image.rfind("/") else image


def root_container_errors(pod, c, where):
    """The terms on which a container of ROOT_IMAGES runs as root."""
    errs = []
    csc = c.get("securityContext") or {}
    if csc.get("privileged"):
        errs.append(f"{where}: privileged (root is allowed for {_image_repo(c.get('image'))}, privileged is not)")
    extra = set((csc.get("capabilities") or {}).get("add") or []) - {"SYS_ADMIN"}
    if extra:
        errs.append(f"{where}: adds capabilities {sorted(extra)} (only SYS_ADMIN is allowed)")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            errs.append(f"{where}: the pod sets {key}")
    host_vols = {v.get("name") for v in pod.get("volumes") or [] if v.get("hostPath")}
    for m in c.get("volumeMounts") or []:
        if m.get("name") in host_vols and not m.get("readOnly"):
            errs.append(f"{where}: host path volume {m.get('name')} is mounted writable")
    return errs


def workload_errors(doc, ctx, used, notes=None):
    """The pod policy of core workloads, and the gate's rule for load-test Jobs."""
    pod, containers = _pod_containers(doc)
    if pod is None:
        return []
    errs = []
    psc = pod.get("securityContext") or {}
    for c in containers:
        where = f"container {c.get('name')}"
        binary = gate_binary(c)
        if binary:
            used.add(binary)
        csc = c.get("securityContext") or {}
        repo = _image_repo(c.get("image"))
        if repo in ROOT_IMAGES:
            errs += root_container_errors(pod, c, where)
            if notes is not None:
                notes.append(f"{c.get('name')} runs as root (allowed: ROOT_IMAGES)")
        elif not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            errs.append(f"{where}: runAsNonRoot is not set")
        if csc.get("allowPrivilegeEscalation") is not False:
            errs.append(f"{where}: allowPrivilegeEscalation must be false")
        if not (c.get("resources") or {}).get("requests"):
            errs.append(f"{where}: no resources.requests")
        if binary == "load-test" and doc.get("kind") == "Job" and (doc.get("spec") or {}).get("backoffLimit") != 0:
            errs.append(f"{where}: a Job running load-test needs backoffLimit: 0 (a retry would measure twice)")
    return errs


def docs_errors(docs, ctx):
    """(errors, labels, notes) for a stream of Kubernetes documents."""
    errs, labels, used, root_notes = [], [], set(), []
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or "kind" not in doc:
            errs.append(f"document {i}: not a Kubernetes object (no kind)")
            continue
        meta = doc.get("metadata") or {}
        label = f"{doc.get('kind')}/{meta.get('name') or meta.get('generateName')}"
        labels.append(label)
        derrs = schemas.schema_errors(doc)
        if doc.get("apiVersion") == "argoproj.io/v1alpha1":
            derrs += argo.argo_errors(doc, ctx.wft_index)
            derrs += shards.argo_errors(doc)
            for t in (doc.get("spec") or {}).get("templates") or []:
                binary = gate_binary(t.get("container") or {})
                if binary:
                    used.add(binary)
        else:
            derrs += workload_errors(doc, ctx, used, root_notes)
        if doc.get("kind") == "PrometheusRule":
            derrs += monitoring.prometheus_rule_errors(doc, ctx.root, ctx.promtool)
        errs += [f"{label}: {e}" for e in derrs]
    notes = [f"runs {', '.join(sorted(used))}" if used else ""] + sorted(set(root_notes))
    return errs, labels, notes


def load_yaml_docs(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def check_manifest_file(path, ctx, report):
    try:
        with open(path, encoding="utf-8") as f:
            docs = load_yaml_docs(f.read())
    except (OSError, yaml.YAMLError) as e:
        report.add(ctx.rel(path), [f"does not parse: {e}"])
        return
    errs, labels, notes = docs_errors(docs, ctx)
    lint_errs, lint_notes = ctx.lint(path)
    errs, notes = errs + lint_errs, notes + lint_notes
    report.add(f"{ctx.rel(path)}: {', '.join(labels) or 'no documents'}", errs, notes)


def check_kustomize(dirpath, ctx, report):
    kubectl = tool("kubectl")
    label = f"kustomize {ctx.rel(dirpath)}"
    out = subprocess.run([kubectl, "kustomize", dirpath], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        report.add(label, [f"kubectl kustomize failed: {out.stderr.strip()}"])
        return
    docs = load_yaml_docs(out.stdout)
    errs, labels, notes = docs_errors(docs, ctx)
    errs += shards.kubernetes_errors(docs)  # the shard count, wherever it is written, agrees
    serrs, snotes = monitoring.rendered_stack_errors(docs, ctx.promtool, _promtool_config)
    report.add(f"{label} -> {len(docs)} objects", errs + serrs, notes + snotes)


# ------------------------------------------------------------------------------------------ other files

def check_prometheus_config(path, ctx, report):
    errs, notes = ctx.lint(path)
    try:
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        report.add(ctx.rel(path), [f"does not parse: {e}"])
        return
    jobs = [s.get("job_name") for s in cfg.get("scrape_configs") or []]
    if "vllm-service" not in jobs:
        errs.append("no scrape job named vllm-service (load-test's default --prometheus-job)")
    if ctx.promtool:
        errs_p, note = _promtool_config(path, cfg, ctx.promtool)
        errs += errs_p
        notes.append(note)
    else:
        notes.append("promtool not installed: syntax not checked")
    report.add(f"{ctx.rel(path)}: Prometheus config, jobs {', '.join(map(str, jobs))}", errs, notes)


def _promtool_config(path, cfg, promtool):
    out = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True, timeout=60)
    text = (out.stdout + out.stderr).strip()
    if out.returncode == 0:
        return [], "promtool check config"
    if "kubernetes_sd_configs not found" not in text:
        return [f"promtool: {line.strip()}" for line in text.splitlines() if "FAILED" in line or "line" in line], ""
    # Debian's prometheus is built without Kubernetes service discovery: check the rest of the file with
    # each kubernetes_sd_configs replaced by a static target (the relabel rules are still parsed).
    for sc in cfg.get("scrape_configs") or []:
        if sc.pop("kubernetes_sd_configs", None) is not None:
            sc["static_configs"] = [{"targets": ["placeholder:80"]}]
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, "prometheus.yml")
        with open(copy, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f)
        out = subprocess.run([promtool, "check", "config", copy], capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
        return [], "promtool check config; this promtool lacks kubernetes_sd_configs, checked the rest"
    return [f"promtool: {(out.stdout + out.stderr).strip()}"], ""


def check_compose(path, ctx, report):
    errs, lint_notes = ctx.lint(path)
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    schema_file = os.path.join(os.path.dirname(compose_schemas.__file__), "vendor", "compose-spec.json")
    with open(schema_file, encoding="utf-8") as f:
        schema = json.load(f)
    v = jsonschema.Draft7Validator(schema)
    for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        errs.append(f"{'.'.join(map(str, e.absolute_path))}: {e.message}")
    used = set()
    base = os.path.dirname(path)
    for name, svc in (doc.get("services") or {}).items():
        cmd = svc.get("command")
        if isinstance(cmd, list) and cmd[:2] == ["mlflow", "server"]:
            if not any(str(a).startswith("--allowed-hosts") for a in cmd):
                errs.append(f"services.{name}: mlflow server without --allowed-hosts rejects Host: {name}:PORT (403)")
        binary = gate_binary({"command": cmd if isinstance(cmd, list) else None})
        if binary:
            used.add(binary)
        for vol in svc.get("volumes") or []:
            src = vol.split(":", 1)[0] if isinstance(vol, str) else ""
            if src.startswith(".") and not os.path.exists(os.path.join(base, src)):
                errs.append(f"services.{name}: volume source {src} does not exist")
    notes = ["compose-spec schema", f"runs {', '.join(sorted(used))}" if used else ""] + lint_notes
    report.add(f"{ctx.rel(path)}: compose, services {', '.join(doc.get('services') or {})}", errs, notes)


def check_plain_yaml(path, ctx, report, what):
    errs, notes = ctx.lint(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        report.add(ctx.rel(path), [f"does not parse: {e}"])
        return
    if "grafana/provisioning" in path and (not isinstance(doc, dict) or doc.get("apiVersion") != 1):
        errs.append("Grafana provisioning files need apiVersion: 1")
    report.add(f"{ctx.rel(path)}: {what}", errs, notes)


def check_dockerfile(path, ctx, report, extra_ignores=()):
    hadolint = tool("hadolint")
    errs = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = subprocess.run([hadolint, "--no-color", "--failure-threshold", "error", path],
                         capture_output=True, text=True, timeout=60)
    findings = [line for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0:
        errs += [f"hadolint: {line}" for line in findings] or [f"hadolint: rc={out.returncode} {out.stderr.strip()}"]
    if "cargo build --release --locked --bins" not in text:
        errs.append("the build is not `cargo build --release --locked --bins` (the command CI runs)")
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        errs.append("the final stage does not switch to a non-root USER")
    if "org.opencontainers.image." not in text:
        errs.append("no OCI labels (org.opencontainers.image.*)")
    notes = ["hadolint --failure-threshold error", f"{len(findings)} findings below error" if not errs and findings else ""]
    report.add(f"{ctx.rel(path)}: Dockerfile", errs, notes)


def check_shell(path, ctx, report):
    out = subprocess.run([tool("shellcheck"), "-f", "gcc", path], capture_output=True, text=True, timeout=60)
    errs = [f"shellcheck: {line.split(':', 1)[1].strip()}" for line in out.stdout.splitlines() if ":" in line]
    if out.returncode != 0 and not errs:
        errs = [f"shellcheck rc={out.returncode}: {out.stderr.strip()}"]
    report.add(f"{ctx.rel(path)}: shell script", errs, ["shellcheck"])


def check_rules(path, ctx, report):
    errs, notes = monitoring.rules_file_errors(path, ctx.promtool)
    lint_errs, lint_notes = ctx.lint(path)
    report.add(f"{ctx.rel(path)}: Prometheus alert rules", errs + lint_errs, notes + lint_notes)


def check_rule_tests(path, ctx, report):
    errs, notes = monitoring.rule_tests_errors(path, ctx.promtool)
    lint_errs, lint_notes = ctx.lint(path)
    report.add(f"{ctx.rel(path)}: promtool rule unit tests", errs + lint_errs, notes + lint_notes)


def check_dashboard(path, ctx, report):
    errs, notes = grafana.dashboard_errors(path, ctx.promtool)
    report.add(f"{ctx.rel(path)}: Grafana dashboard", errs, notes)


# -------------------------------------------------------------------------------------------------- run

def run_yamllint(paths):
    """yamllint's relaxed profile (lines up to 120 characters): errors fail the file, warnings are listed."""
    out = subprocess.run([tool("yamllint"), "-d", YAMLLINT_CONFIG, "-f", "parsable", *paths],
                         capture_output=True, text=True, timeout=60)
    found = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(.*?):(\d+):(\d+): \[(error|warning)\] (.*)$", line)
        if m:
            found.setdefault(m.group(1), []).append((m.group(4), f"yamllint {m.group(2)}:{m.group(3)}: {m.group(5)}"))
    return found


def classify(path):
    base = os.path.basename(path)
    if base in ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml"):
        return "compose"
    if "/grafana/provisioning/" in path:
        return "grafana-provisioning"
    if base.startswith("prometheus") and ("/deploy/prometheus/" in path or "/compose/" in path):
        return "prometheus"
    if base in ("kustomization.yaml", "kustomization.yml"):
        return "kustomization"
    # Files without a `kind` (kustomize generator inputs and the like): by what they hold.
    try:
        with open(path, encoding="utf-8") as f:
            doc = next(iter(yaml.safe_load_all(f)), None)
    except (OSError, yaml.YAMLError, StopIteration):
        return "manifest"  # reported by check_manifest_file
    if isinstance(doc, dict) and "kind" not in doc:
        if "tests" in doc and "rule_files" in doc:
            return "rule-tests"
        if "groups" in doc:
            return "rules"
        if "scrape_configs" in doc:
            return "prometheus"
    return "manifest"


def validate_tree(root, report):
    ctx = Context(root)
    if not ctx.promtool:
        missing = "promtool is not installed (Debian: apt-get install prometheus)"
        if ctx.require_promtool:
            report.add("promtool", [f"{missing}: CI (CI is set) needs its checks"])
        else:
            print(f"WARN {missing}: Prometheus configs, alert rules and dashboard queries are NOT checked")
    yamls = sorted(p for d in ("workflows", "deploy") for ext in ("yaml", "yml")
                   for p in glob.glob(os.path.join(root, d, "**", f"*.{ext}"), recursive=True))
    ctx.yamllint = run_yamllint(yamls) if yamls else {}
    for p in yamls:  # index the WorkflowTemplates first: Workflows refer to them by name
        if classify(p) == "manifest":
            try:
                with open(p, encoding="utf-8") as f:
                    for d in load_yaml_docs(f.read()):
                        if isinstance(d, dict) and d.get("kind") == "WorkflowTemplate":
                            ctx.wft_index[(d.get("metadata") or {}).get("name")] = d
            except (OSError, yaml.YAMLError):
                pass  # reported by check_manifest_file
    for p in yamls:
        kind = classify(p)
        if kind == "compose":
            check_compose(p, ctx, report)
        elif kind == "prometheus":
            check_prometheus_config(p, ctx, report)
        elif kind == "grafana-provisioning":
            check_plain_yaml(p, ctx, report, "Grafana provisioning")
        elif kind == "kustomization":
            check_plain_yaml(p, ctx, report, "kustomization (rendered below)")
        elif kind == "rules":
            check_rules(p, ctx, report)
        elif kind == "rule-tests":
            check_rule_tests(p, ctx, report)
        else:
            check_manifest_file(p, ctx, report)
    for k in sorted(glob.glob(os.path.join(root, "deploy", "**", "kustomization.y*ml"), recursive=True)):
        check_kustomize(os.path.dirname(k), ctx, report)
    for p in sorted(glob.glob(os.path.join(root, "deploy", "**", "*.json"), recursive=True)):
        check_dashboard(p, ctx, report)
    for name in SHELL_SCRIPTS:
        p = os.path.join(root, name)
        if os.path.exists(p):
            check_shell(p, ctx, report)
    dockerfile = os.path.join(root, "Dockerfile")
    if os.path.exists(dockerfile):
        check_dockerfile(dockerfile, ctx, report)
    else:
        report.add("Dockerfile", ["missing"])
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("--no-self-test", action="store_true", help="skip the negative self-test")
    ap.add_argument("--self-test-only", action="store_true", help="run only the negative self-test")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    report = Report()
    schemas.warm_up()
    if not a.self_test_only:
        validate_tree(root, report)
    if not a.no_self_test:
        import selftest  # noqa: PLC0415

        selftest.run(root, report)
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
