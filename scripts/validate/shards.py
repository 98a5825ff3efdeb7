"""The sharded gate's own rule: the shard count is written in several places, and they must agree.

Kubernetes (a rendered kustomization, deploy/kustomize/sharded): an Indexed Job running load-test has
completions == parallelism (every shard at once, or they would not start together) == its SHARD_COUNT
(ConfigMap or env), writes into a directory named by $(JOB_COMPLETION_INDEX), and a Job running
`load-test merge` lists exactly that directory for indexes 0..N-1.

Argo (workflows/vllm-perf-gate-sharded.yaml): each merge step runs under `when: "{{workflow.parameters.shards}}
== N"` and its template lists exactly the shard directories 0..N-1 the load-shard template writes; the merge
steps cover every value the `shards` parameter allows.
"""

import re



INDEX_VAR = "$(JOB_COMPLETION_INDEX)"


def _pod(doc):
    return (((doc.get("spec") or {}).get("template") or {}).get("spec")) or {}


def _argv(c):
    return [str(a) for a in list(c.get("command") or []) + list(c.get("args") or [])]


def _runs_merge(argv):
    return len(argv) > 1 and argv[0].rsplit("/", 1)[-1] == "load-test" and argv[1] == "merge"


def _runs_load(argv):
    return bool(argv) and argv[0].rsplit("/", 1)[-1] == "load-test" and not _runs_merge(argv)


def _merge_dirs(argv):
    """The positional shard directories of a `load-test merge` command line."""
    out, skip = [], False
    for a in argv[2:]:
        if skip:
            skip = False
        elif a.startswith("--"):
            skip = "=" not in a and a[2:] not in ("prometheus-insecure-tls",)
        else:
            out.append(a)
    return out


def _flag(argv, name):
    for i, a in enumerate(argv):
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
        if a == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _env(c, configmaps, name):
    for e in c.get("env") or []:
        if e.get("name") == name and "value" in e:
            return str(e["value"])
    for src in c.get("envFrom") or []:
        cm = configmaps.get(((src.get("configMapRef") or {}).get("name")))
        if cm and name in cm:
            return str(cm[name])
    return None


def _expected(pattern, n, placeholder):
    return [pattern.replace(placeholder, str(i)) for i in range(n)]


def kubernetes_errors(docs):
    """Errors of the sharded Jobs in one stream of documents (a rendered kustomization)."""
    configmaps = {(d.get("metadata") or {}).get("name"): d.get("data") or {}
                  for d in docs if isinstance(d, dict) and d.get("kind") == "ConfigMap"}
    jobs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Job"]
    errs, shard_sets = [], []
    for j in jobs:
        spec = j.get("spec") or {}
        if spec.get("completionMode") != "Indexed":
            continue
        name = (j.get("metadata") or {}).get("name")
        for c in _pod(j).get("containers") or []:
            argv = _argv(c)
            if not _runs_load(argv):
                continue
            where = f"Job/{name} container {c.get('name')}"
            n = spec.get("completions")
            if spec.get("parallelism") != n:
                errs.append(f"{where}: parallelism {spec.get('parallelism')} != completions {n}: "
                            "the shards would not all run at once, so not start together")
            count = _flag(argv, "shard-count") or _env(c, configmaps, "SHARD_COUNT")
            if str(count) != str(n):
                errs.append(f"{where}: SHARD_COUNT {count} != completions {n}")
            out = _flag(argv, "output-dir") or _env(c, configmaps, "OUTPUT_DIR") or ""
            if INDEX_VAR not in out:
                errs.append(f"{where}: the output directory {out!r} is not per shard (no {INDEX_VAR})")
            elif isinstance(n, int):
                shard_sets.append((where, _expected(out, n, INDEX_VAR)))
    for j in jobs:
        name = (j.get("metadata") or {}).get("name")
        for c in _pod(j).get("containers") or []:
            argv = _argv(c)
            if not _runs_merge(argv):
                continue
            where = f"Job/{name} container {c.get('name')}"
            dirs = _merge_dirs(argv)
            if not shard_sets:
                errs.append(f"{where}: merges {dirs}, but no Indexed Job of load-test shards is in this render")
            for load, want in shard_sets:
                if dirs != want:
                    errs.append(f"{where}: merges {dirs}, but {load} writes {want}")
    return errs


_WHEN_RE = re.compile(r"^\s*\{\{\s*workflow\.parameters\.shards\s*\}\}\s*==\s*(\d+)\s*$")


def argo_errors(doc):
    """Errors of a sharded WorkflowTemplate (one with a `shards` parameter); [] for any other."""
    spec = doc.get("spec") or {}
    params = {p.get("name"): p for p in (spec.get("arguments") or {}).get("parameters") or []}
    if "shards" not in params:
        return []
    templates = {t.get("name"): t for t in spec.get("templates") or []}
    errs = []
    pattern = None
    for t in templates.values():
        argv = _argv(t.get("container") or {})
        if _runs_load(argv):
            out = _flag(argv, "output-dir") or ""
            if "{{inputs.parameters.shard-index}}" not in out:
                errs.append(f"template {t.get('name')}: --output-dir {out!r} is not per shard")
            else:
                pattern = out
    covered = set()
    for t in templates.values():
        for group in t.get("steps") or []:
            for step in group or []:
                target = templates.get(step.get("template")) or {}
                argv = _argv(target.get("container") or {})
                if not _runs_merge(argv):
                    continue
                where = f"template {t.get('name')} step {step.get('name')}"
                m = _WHEN_RE.match(str(step.get("when") or ""))
                if not m:
                    errs.append(f"{where}: a merge step needs when: \"{{{{workflow.parameters.shards}}}} == N\"")
                    continue
                n = int(m.group(1))
                covered.add(str(n))
                dirs = _merge_dirs(argv)
                want = _expected(pattern or "", n, "{{inputs.parameters.shard-index}}")
                if pattern and dirs != want:
                    errs.append(f"{where}: runs with {n} shards but template {target.get('name')} merges {dirs}, "
                                f"not {want}")
    allowed = set(params["shards"].get("enum") or [])
    if not allowed:
        errs.append("parameter shards: needs an enum (one merge step is written per allowed count)")
    for n in sorted(allowed - covered):
        errs.append(f"parameter shards allows {n}, but no merge step runs for it")
    for n in sorted(covered - allowed):
        errs.append(f"a merge step runs for shards == {n}, which the parameter does not allow")
    return errs
