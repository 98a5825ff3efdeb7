"""What `argo lint` would check beyond the schema (no argo binary is published on any registry), plus the
gate's own rules for its workflows.

Argo semantics: each template has exactly one body (container, script, steps, dag, ...); the entrypoint,
step and task templates exist; every `{{inputs.parameters.X}}`, `{{inputs.artifacts.X}}`,
`{{workflow.parameters.X}}`, `{{steps.S.outputs...}}` and `{{steps.S.status}}` reference is declared (and a
step reads only steps of earlier groups); arguments passed to a
template are declared by it and its required inputs are supplied; a Workflow's workflowTemplateRef names a
known template and supplies its required parameters; enum parameters hold an allowed value; no flag or
env value of a container can end up empty (clap treats "" as a value, not as unset).

Gate rules: the load test is never retried (a retry measures twice) and runs under a synchronization
mutex; containers run as non-root without privilege escalation and request resources.
"""

import json
import re

BODIES = ("container", "script", "steps", "dag", "resource", "suspend", "data", "http", "containerSet", "plugin")
_REF_RE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
# What `{{steps.NAME.FIELD}}` may read besides outputs.
_NODE_FIELDS = ("status", "exitCode", "id", "ip", "startedAt", "finishedAt", "hostNodeName")
_STEP_REF_RE = re.compile(r"\{\{\s*steps\.([A-Za-z0-9_-]+)\.")
_EXPR_RE = re.compile(r"""\b(inputs|workflow)\.(parameters|artifacts)\[\s*['"]([^'"]+)['"]\s*\]""")
# Variables Argo defines itself (not declared anywhere in the spec).
_BUILTIN_PREFIXES = ("workflow.name", "workflow.namespace", "workflow.uid", "workflow.serviceAccountName",
                     "workflow.creationTimestamp", "workflow.status", "workflow.duration", "workflow.priority",
                     "workflow.labels", "workflow.annotations", "workflow.mainEntrypoint", "workflow.outputs",
                     "workflow.failures", "workflow.scheduledTime", "pod.name", "node.name", "retries",
                     "lastRetry", "item", "tasks.name", "steps.name")


def _names(items):
    return [i.get("name") for i in (items or []) if isinstance(i, dict)]


def _required(params):
    return {p["name"] for p in params or [] if isinstance(p, dict) and "value" not in p and "default" not in p
            and "valueFrom" not in p}


def _params(spec):
    return (spec.get("arguments") or {}).get("parameters") or []


def _enum_errors(params, where):
    errs = []
    for p in params:
        if isinstance(p, dict) and p.get("enum") and "value" in p and "{{" not in str(p["value"]):
            if p["value"] not in p["enum"]:
                errs.append(f"{where}: parameter {p['name']} = {p['value']!r} is not one of {p['enum']}")
    return errs


def _runs(template, binary):
    c = template.get("container") or {}
    cmd = list(c.get("command") or []) + list(c.get("args") or [])
    return bool(cmd) and isinstance(cmd[0], str) and cmd[0].rsplit("/", 1)[-1] == binary


def _check_refs(text, where, t, wf_params, step_names, templates_by_name, step_targets):
    errs = []
    in_params = set(_names((t.get("inputs") or {}).get("parameters")))
    in_arts = set(_names((t.get("inputs") or {}).get("artifacts")))
    refs = []
    for ref in _REF_RE.findall(text):
        if ref.startswith("="):  # an expression: its inputs.parameters['x'] / workflow.parameters['x']
            refs += [f"{scope}.{kind}.{name}" for scope, kind, name in _EXPR_RE.findall(ref)]
        elif not ref.startswith(_BUILTIN_PREFIXES) and re.match(r"^[A-Za-z_.\-0-9]+$", ref):
            refs.append(ref)
    for ref in refs:
        parts = ref.split(".")
        if parts[:2] == ["inputs", "parameters"] and len(parts) == 3:
            if parts[2] not in in_params:
                errs.append(f"{where}: {{{{{ref}}}}} is not declared in inputs.parameters")
        elif parts[:2] == ["inputs", "artifacts"] and len(parts) == 3:
            if parts[2] not in in_arts:
                errs.append(f"{where}: {{{{{ref}}}}} is not declared in inputs.artifacts")
        elif parts[:2] == ["workflow", "parameters"] and len(parts) == 3:
            if parts[2] not in wf_params:
                errs.append(f"{where}: {{{{{ref}}}}} is not declared in spec.arguments.parameters")
        elif parts[0] in ("steps", "tasks") and len(parts) == 3 and parts[2] in _NODE_FIELDS:
            if step_names is None or parts[1] not in step_names:
                errs.append(f"{where}: {{{{{ref}}}}} names no {parts[0][:-1]} of this template")
        elif parts[0] in ("steps", "tasks") and len(parts) >= 3 and parts[2] == "outputs":
            if step_names is None or parts[1] not in step_names:
                errs.append(f"{where}: {{{{{ref}}}}} names no {parts[0][:-1]} of this template")
            elif len(parts) == 5 and parts[3] in ("parameters", "artifacts"):
                target = templates_by_name.get(step_targets.get(parts[1]))
                outs = set(_names(((target or {}).get("outputs") or {}).get(parts[3])))
                if target is not None and parts[4] not in outs:
                    errs.append(f"{where}: {{{{{ref}}}}}: template {target.get('name')} has no output {parts[4]}")
    return errs


def _check_call(call, where, templates_by_name):
    """A step or DAG task: the template exists, its arguments are declared, its required inputs supplied."""
    if "templateRef" in call or "inline" in call:
        return []
    name = call.get("template")
    target = templates_by_name.get(name)
    if target is None:
        return [f"{where}: template {name!r} does not exist"]
    errs = []
    inputs = target.get("inputs") or {}
    args = call.get("arguments") or {}
    for kind in ("parameters", "artifacts"):
        declared = set(_names(inputs.get(kind)))
        passed = set(_names(args.get(kind)))
        for n in sorted(passed - declared):
            errs.append(f"{where}: passes {kind[:-1]} {n!r}, which template {name} does not declare")
        if kind == "parameters":
            missing = _required(inputs.get(kind)) - passed
        else:  # an input artifact with no source of its own must be passed
            sources = ("from", "fromExpression", "s3", "gcs", "git", "http", "raw", "artifactory", "hdfs", "oss",
                       "azure", "plugin")
            missing = {a["name"] for a in inputs.get(kind) or [] if not any(s in a for s in sources)
                       and not a.get("optional")} - passed
        for n in sorted(missing):
            errs.append(f"{where}: template {name} needs {kind[:-1]} {n!r}, which is not passed")
    return errs


def _pod_policy(t, where, pod_sc):
    c = t.get("container") or t.get("script")
    if not c:
        return []
    errs = []
    csc = c.get("securityContext") or {}
    if not (csc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
        errs.append(f"{where}: runAsNonRoot is not set (pod or container securityContext)")
    if csc.get("allowPrivilegeEscalation") is not False:
        errs.append(f"{where}: container securityContext.allowPrivilegeEscalation must be false")
    if not (c.get("resources") or {}).get("requests"):
        errs.append(f"{where}: container has no resources.requests")
    return errs


def _maybe_empty_inputs(templates, wf_param_values):
    """{template name: input parameters that a caller may set to ""}: "" itself, a workflow parameter whose
    default is "", or (through nested steps templates, to a fixed point) a caller's own input that may be ""."""
    empty_wf = {n for n, v in wf_param_values.items() if v == ""}
    found = {}
    changed = True
    while changed:
        changed = False
        for t in templates:
            calls = [s for g in t.get("steps") or [] for s in g or []] + list((t.get("dag") or {}).get("tasks") or [])
            for call in calls:
                for p in (call.get("arguments") or {}).get("parameters") or []:
                    v = str(p.get("value", ""))
                    wf = re.fullmatch(r"\{\{\s*workflow\.parameters\.([A-Za-z0-9_-]+)\s*\}\}", v)
                    inp = re.fullmatch(r"\{\{\s*inputs\.parameters\.([A-Za-z0-9_-]+)\s*\}\}", v)
                    if (v == "" or (wf and wf.group(1) in empty_wf)
                            or (inp and inp.group(1) in found.get(t.get("name"), set()))):
                        names = found.setdefault(call.get("template"), set())
                        if p.get("name") not in names:
                            names.add(p.get("name"))
                            changed = True
    return found


def _step_order_errors(t, where):
    """A step may read only the steps of earlier groups (Argo resolves a group's references before it runs)."""
    errs = []
    earlier = set()
    for g, group in enumerate(t.get("steps") or []):
        for s, step in enumerate(group or []):
            for name in _STEP_REF_RE.findall(json.dumps(step)):
                if name not in earlier:
                    errs.append(f"{where}.steps.{g}.{s} ({step.get('name')}): reads step {name!r}, "
                                "which is not in an earlier group")
        earlier |= {step.get("name") for step in group or []}
    return errs


def _empty_value_errors(t, where, maybe_empty):
    """A flag or env var whose value may be "": clap takes "" as a value and rejects it."""
    c = t.get("container") or {}
    errs = []
    values = [("arg", a) for a in c.get("args") or []] + [("env " + e.get("name"), e.get("value"))
                                                         for e in c.get("env") or [] if "value" in e]
    for what, v in values:
        if not isinstance(v, str) or v.startswith("{{="):
            continue
        for name in re.findall(r"\{\{\s*inputs\.parameters\.([A-Za-z0-9_-]+)\s*\}\}", v):
            if name in maybe_empty:
                errs.append(f"{where}: {what} {v!r} may be empty ({name} defaults to \"\"); "
                            "an empty flag or env value is an error, not 'unset'")
    return errs


def argo_errors(doc, templates_index):
    """Semantic errors of an Argo Workflow / WorkflowTemplate / CronWorkflow document."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    errs = []
    wf_params = set(_names(_params(spec)))
    templates = list(spec.get("templates") or [])
    ref = spec.get("workflowTemplateRef")
    ref_spec = {}
    if ref:
        ref_doc = templates_index.get(ref.get("name"))
        if ref_doc is None:
            errs.append(f"spec.workflowTemplateRef: WorkflowTemplate {ref.get('name')!r} is not among the validated files")
        else:
            ref_spec = ref_doc.get("spec") or {}
            declared = set(_names(_params(ref_spec)))
            passed = set(_names(_params(spec)))
            for n in sorted(passed - declared):
                errs.append(f"spec.arguments: parameter {n!r} is not declared by WorkflowTemplate {ref.get('name')}")
            for n in sorted(_required(_params(ref_spec)) - passed):
                errs.append(f"spec.arguments: required parameter {n!r} of {ref.get('name')} is not supplied")
            errs += _enum_errors([dict(p, enum=q.get("enum")) for p in _params(spec) for q in _params(ref_spec)
                                  if p.get("name") == q.get("name") and q.get("enum")], "spec.arguments")
        wf_params |= set(_names(_params(ref_spec)))
    errs += _enum_errors(_params(spec), "spec.arguments")

    by_name = {}
    for i, t in enumerate(templates):
        if t.get("name") in by_name:
            errs.append(f"spec.templates.{i}: duplicate template name {t.get('name')!r}")
        by_name[t.get("name")] = t
    entry = spec.get("entrypoint") or ref_spec.get("entrypoint")
    if not ref and entry not in by_name:
        errs.append(f"spec.entrypoint: template {entry!r} does not exist")
    for hook in ("onExit",):
        if spec.get(hook) and spec[hook] not in by_name:
            errs.append(f"spec.{hook}: template {spec[hook]!r} does not exist")

    # workflow.parameters used outside the templates (synchronization, podMetadata, ...).
    rest = {k: v for k, v in spec.items() if k not in ("templates", "arguments")}
    errs += _check_refs(json.dumps(rest), "spec", {}, wf_params, None, by_name, {})

    if spec.get("retryStrategy") and any(_runs(t, "load-test") for t in templates):
        errs.append("spec.retryStrategy: a workflow-level retry would rerun the load test (it measures twice)")
    pod_sc = spec.get("securityContext") or {}
    values = {p.get("name"): p.get("value") for p in _params(ref_spec) + _params(spec) if isinstance(p, dict)}
    maybe_empty = _maybe_empty_inputs(templates, values)
    for i, t in enumerate(templates):
        where = f"spec.templates.{i} ({t.get('name')})"
        bodies = [b for b in BODIES if b in t]
        if len(bodies) != 1:
            errs.append(f"{where}: needs exactly one of {', '.join(BODIES)}; has {bodies or 'none'}")
        step_names, step_targets = None, {}
        if "steps" in t:
            step_names = set()
            for g, group in enumerate(t["steps"] or []):
                for s, step in enumerate(group or []):
                    step_names.add(step.get("name"))
                    step_targets[step.get("name")] = step.get("template")
                    errs += _check_call(step, f"{where}.steps.{g}.{s} ({step.get('name')})", by_name)
            errs += _step_order_errors(t, where)
        if "dag" in t:
            tasks = (t["dag"] or {}).get("tasks") or []
            step_names = {task.get("name") for task in tasks}
            for k, task in enumerate(tasks):
                step_targets[task.get("name")] = task.get("template")
                errs += _check_call(task, f"{where}.dag.tasks.{k} ({task.get('name')})", by_name)
                for dep in task.get("dependencies") or []:
                    if dep not in step_names:
                        errs.append(f"{where}.dag.tasks.{k}: dependency {dep!r} does not exist")
        errs += _check_refs(json.dumps(t), where, t, wf_params, step_names, by_name, step_targets)
        if _runs(t, "load-test"):
            if t.get("retryStrategy"):
                errs.append(f"{where}: retryStrategy on the load test: a retry would measure twice")
            if not (spec.get("synchronization") or ref_spec.get("synchronization") or t.get("synchronization")):
                errs.append(f"{where}: the load test runs without a synchronization mutex")
        errs += _pod_policy(t, where, pod_sc)
        errs += _empty_value_errors(t, where, maybe_empty.get(t.get("name"), set()))
    return errs
