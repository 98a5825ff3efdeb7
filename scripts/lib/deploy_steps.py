#!/usr/bin/env python3
"""Render one step of the gate's deployment manifests into a local command line, so that a test runs the
binaries exactly as Argo or Kubernetes would: the same flags, the same env vars, the same file locations
(mapped to local paths).

  deploy_steps.py argo --workflow workflows/vllm-perf-gate.yaml --step load-test \
      --set vllm-url=http://127.0.0.1:8000 ... --map /data/eval.jsonl=/tmp/e2e/eval.jsonl --map /output=/tmp/e2e/out \
      --bin-dir target/debug
  deploy_steps.py job --kustomization deploy/kustomize/base --step load-test --set VLLM_URL=... --map ...

argo: the WorkflowTemplate's parameters (defaults, overridden by --set NAME=VALUE; an unknown name is an
      error) flow through the entrypoint's step arguments into the step template's inputs, and from there into
      the container's args and env, as Argo substitutes them (`{{workflow.parameters.x}}`,
      `{{inputs.parameters.x}}`, and `{{= expr }}` expressions: the subset of expr-lang the template uses:
      ==, !=, &&, ||, +, ?:, 'strings', inputs.parameters['x']).
job:  the Job's container command, and its env from the kustomization's configMapGenerator literals
      (overridden by --set NAME=VALUE; an unknown name is an error), as the Kubernetes Jobs run.
Both: env from optional Secrets (secretKeyRef) is left out, as Kubernetes does when the key is absent; every
path in an arg or env value that starts with a --map SRC is rewritten to DST, and every input artifact and
output file of the step must be under a mapped path (else an error: the test would read the wrong file).

Prints bash array assignments to eval:
  STEP_ENV=(NAME=VALUE ...)        the container's environment (run it with env -i)
  STEP_ARGV=(BIN ARG ...)          command (from --bin-dir) and args
  STEP_OUTPUTS=(NAME=PATH ...)     output parameters' files and output artifacts, mapped
Needs PyYAML (the MLflow venv has it).
"""
import argparse
import os
import re
import shlex
import sys

import yaml


class RenderError(Exception):
    pass


def load_docs(path):
    with open(path) as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


# ---- path mapping -------------------------------------------------------------------------------------

def map_path(value, maps):
    for src, dst in maps:
        if value == src:
            return dst
        if value.startswith(src.rstrip("/") + "/"):
            return dst.rstrip("/") + value[len(src.rstrip("/")):]
    return None


def map_value(value, maps):
    """Rewrites a whole value, or the VALUE of `--flag=VALUE`, when it is under a mapped path."""
    mapped = map_path(value, maps)
    if mapped is not None:
        return mapped
    if value.startswith("--") and "=" in value:
        flag, _, rest = value.partition("=")
        mapped = map_path(rest, maps)
        if mapped is not None:
            return f"{flag}={mapped}"
    return value


def must_map(path, maps, what):
    mapped = map_path(path, maps)
    if mapped is None:
        raise RenderError(f"{what} {path} is not under any --map SRC")
    return mapped


# ---- Argo ---------------------------------------------------------------------------------------------

def split_top(expr, sep):
    """Index of the first `sep` outside quotes and brackets, or -1."""
    depth, quote = 0, None
    for i, ch in enumerate(expr):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and expr.startswith(sep, i):
            return i
    return -1


def to_python(expr):
    """Translates the expr-lang subset to a Python expression."""
    expr = expr.strip()
    q = split_top(expr, "?")
    if q >= 0:
        cond, rest = expr[:q], expr[q + 1:]
        c = split_top(rest, ":")
        if c < 0:
            raise RenderError(f"expression without ':' after '?': {expr}")
        return f"(({to_python(rest[:c])}) if ({to_python(cond)}) else ({to_python(rest[c + 1:])}))"
    out, i, quote = [], 0, None
    while i < len(expr):
        ch = expr[i]
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif expr.startswith("&&", i):
            out.append(" and ")
            i += 1
        elif expr.startswith("||", i):
            out.append(" or ")
            i += 1
        elif ch == "!" and not expr.startswith("!=", i):
            out.append(" not ")
        else:
            out.append(ch)
        i += 1
    py = "".join(out)
    py = re.sub(r"\b(inputs|workflow)\.parameters\.([A-Za-z0-9_-]+)", r"\1['\2']", py)
    py = re.sub(r"\b(inputs|workflow)\.parameters\[", r"\1[", py)
    return py


def substitute(text, scopes):
    """Argo's {{...}} substitution: plain references and {{= expr }} expressions."""

    def repl(m):
        body = m.group(1).strip()
        if body.startswith("="):
            py = to_python(body[1:])
            try:
                return str(eval(py, {"__builtins__": {}}, scopes))  # noqa: S307 (our own manifests)
            except Exception as e:  # noqa: BLE001
                raise RenderError(f"cannot evaluate {{{{{body}}}}} (as {py}): {e}") from e
        scope, _, name = body.partition(".parameters.")
        if scope not in scopes or not name:
            raise RenderError(f"unsupported reference {{{{{body}}}}}")
        if name not in scopes[scope]:
            raise RenderError(f"{{{{{body}}}}}: no such parameter")
        if scopes[scope][name] is None:
            raise RenderError(f"{{{{{body}}}}} has no value (a required parameter: --set {name}=...)")
        return scopes[scope][name]

    return re.sub(r"\{\{(.*?)\}\}", repl, text, flags=re.S)


def render_argo(args):
    docs = [d for d in load_docs(args.workflow) if d.get("kind") == "WorkflowTemplate"]
    if len(docs) != 1:
        raise RenderError(f"{args.workflow}: expected one WorkflowTemplate, found {len(docs)}")
    spec = docs[0]["spec"]
    wf = {p["name"]: p.get("value") for p in spec.get("arguments", {}).get("parameters", [])}
    for name, value in args.set:
        if name not in wf:
            raise RenderError(f"the WorkflowTemplate has no parameter {name!r} (has: {', '.join(wf)})")
        wf[name] = value
    templates = {t["name"]: t for t in spec["templates"]}
    entry = templates[spec["entrypoint"]]
    step = next((s for group in entry.get("steps", []) for s in group if s.get("template") == args.step), None)
    if step is None:
        raise RenderError(f"the entrypoint {spec['entrypoint']!r} has no step running template {args.step!r}")
    tmpl = templates[args.step]

    wf_scope = dict(wf)
    step_args = {p["name"]: substitute(str(p.get("value", "")), {"workflow": wf_scope})
                 for p in step.get("arguments", {}).get("parameters", [])}
    inputs = {}
    for p in tmpl.get("inputs", {}).get("parameters", []):
        if p["name"] in step_args:
            inputs[p["name"]] = step_args[p["name"]]
        elif "value" in p:
            inputs[p["name"]] = str(p["value"])
        else:
            raise RenderError(f"input {p['name']!r} of {args.step!r} gets no value from the step")
    scopes = {"workflow": wf_scope, "inputs": inputs}
    container = tmpl["container"]
    maps = args.map
    for art in tmpl.get("inputs", {}).get("artifacts", []):
        must_map(art["path"], maps, f"input artifact {art['name']!r} at")
    argv = [substitute(str(a), scopes) for a in container.get("command", []) + container.get("args", [])]
    argv = [map_value(a, maps) for a in argv]
    env = []
    for e in container.get("env", []):
        if "value" in e:
            env.append((e["name"], map_value(substitute(str(e["value"]), scopes), maps)))
        elif not e.get("valueFrom", {}).get("secretKeyRef", {}).get("optional"):
            raise RenderError(f"env {e['name']!r} comes from a required source the test cannot provide")
    outputs = []
    out = tmpl.get("outputs", {})
    for p in out.get("parameters", []):
        path = p.get("valueFrom", {}).get("path")
        if path:
            outputs.append((p["name"], must_map(path, maps, f"output parameter {p['name']!r} at")))
    for a in out.get("artifacts", []):
        outputs.append((a["name"], must_map(a["path"], maps, f"output artifact {a['name']!r} at")))
    return env, argv, outputs


# ---- Kubernetes Jobs (kustomize base) -----------------------------------------------------------------

def render_job(args):
    base = args.kustomization
    kfile = os.path.join(base, "kustomization.yaml")
    kust = load_docs(kfile)[0]
    generators = {g["name"]: g for g in kust.get("configMapGenerator", [])}
    job = None
    for res in kust.get("resources", []):
        for d in load_docs(os.path.join(base, res)):
            if d.get("kind") != "Job":
                continue
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c.get("name") == args.step:
                    job, container = d, c
    if job is None:
        raise RenderError(f"{kfile}: no Job with a container named {args.step!r}")
    maps = args.map
    env = []
    for src in container.get("envFrom", []):
        name = src.get("configMapRef", {}).get("name")
        gen = generators.get(name)
        if gen is None:
            raise RenderError(f"envFrom configMap {name!r} is not generated by {kfile}")
        values = dict(lit.split("=", 1) for lit in gen.get("literals", []))
        for key, value in args.set:
            if key not in values:
                raise RenderError(f"configMap {name!r} has no key {key!r} (has: {', '.join(values)})")
            values[key] = value
        env.extend((k, map_value(v, maps)) for k, v in values.items())
    for e in container.get("env", []):
        if "value" in e:
            env.append((e["name"], map_value(str(e["value"]), maps)))
        elif not e.get("valueFrom", {}).get("secretKeyRef", {}).get("optional"):
            raise RenderError(f"env {e['name']!r} comes from a required source the test cannot provide")
    for vm in container.get("volumeMounts", []):
        if vm["mountPath"] not in ("/tmp",):
            must_map(vm["mountPath"], maps, f"volume {vm['name']!r} mounted at")
    argv = [map_value(str(a), maps) for a in container.get("command", []) + container.get("args", [])]
    return env, argv, []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("style", choices=["argo", "job"])
    ap.add_argument("--step", required=True, help="template / container name: load-test or perf-decision")
    ap.add_argument("--workflow", default="workflows/vllm-perf-gate.yaml")
    ap.add_argument("--kustomization", default="deploy/kustomize/base")
    ap.add_argument("--bin-dir", required=True, help="where the binaries named by `command` are")

    def pair(s):
        k, sep, v = s.partition("=")
        if not sep or not k:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {s!r}")
        return k, v

    ap.add_argument("--set", type=pair, action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--map", type=pair, action="append", default=[], metavar="SRC=DST")
    args = ap.parse_args()
    try:
        env, argv, outputs = (render_argo if args.style == "argo" else render_job)(args)
        if not argv:
            raise RenderError("the container has no command")
        binary = os.path.join(os.path.abspath(args.bin_dir), os.path.basename(argv[0]))
        if not os.access(binary, os.X_OK):
            raise RenderError(f"{binary} (the container's command) is not an executable")
        argv[0] = binary
    except (RenderError, KeyError, OSError, yaml.YAMLError) as e:
        print(f"deploy_steps.py: {args.style} {args.step}: {e}", file=sys.stderr)
        return 1
    q = shlex.quote
    print("STEP_ENV=(" + " ".join(q(f"{k}={v}") for k, v in env) + ")")
    print("STEP_ARGV=(" + " ".join(q(a) for a in argv) + ")")
    print("STEP_OUTPUTS=(" + " ".join(q(f"{k}={v}") for k, v in outputs) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
