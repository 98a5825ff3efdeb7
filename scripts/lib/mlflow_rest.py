#!/usr/bin/env python3
"""A small MLflow REST client (python3 stdlib only) for the test scripts, and two commands.

  mlflow_rest.py --uri URL register --model NAME --adapter ADAPTER [--adapter-dir DIR]
      Creates registered model NAME with two versions, the way a training pipeline would:
        version 1: source runs:/<run>/adapter, from a run in experiment `<NAME>-training` whose artifacts
                   hold the adapter files (those of DIR, else a generated adapter_config.json)
        version 2: source s3://adapters/<NAME>/v2 (no run)
      (MLflow rejects a local path as a version source.) Each version gets the tags adapter_name=ADAPTER and
      served_adapter=ADAPTER (the adapter vLLM serves it as: perf-decision checks the measured adapter
      against it) and adapter_uri. Prints the versions as JSON.
  mlflow_rest.py --uri URL alias --model NAME --alias ALIAS --version N
      Sets ALIAS on version N (moving it if it is on another version).

Only http://127.0.0.1 servers are expected; every request has a timeout.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class MlflowError(Exception):
    def __init__(self, method, path, status, body):
        self.status = status
        self.body = body
        try:
            self.error_code = json.loads(body).get("error_code")
        except ValueError:
            self.error_code = None
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")


class Mlflow:
    def __init__(self, uri, timeout=30):
        self.uri = uri.rstrip("/")
        self.timeout = timeout

    def _call(self, method, path, body=None, raw=None, query=None):
        url = self.uri + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data, headers = None, {}
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            raise MlflowError(method, path, e.code, e.read().decode(errors="replace")) from None

    def api(self, method, endpoint, body=None, query=None):
        out = self._call(method, "/api/2.0/mlflow/" + endpoint, body=body, query=query)
        return json.loads(out) if out.strip() else {}

    # -- tracking
    def experiment_id(self, name, create=True):
        try:
            exp = self.api("GET", "experiments/get-by-name", query={"experiment_name": name})["experiment"]
            return exp["experiment_id"]
        except MlflowError as e:
            if e.status != 404 or not create:
                raise
        try:
            return self.api("POST", "experiments/create", {"name": name})["experiment_id"]
        except MlflowError as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.experiment_id(name, create=False)

    def get_run(self, run_id):
        return self.api("GET", "runs/get", query={"run_id": run_id})["run"]

    def upload(self, run_info, rel_path, data):
        root = run_info["artifact_uri"]
        if not root.startswith("mlflow-artifacts:/"):
            raise RuntimeError(f"artifact root {root} is not proxied (start the server with --serve-artifacts)")
        path = root[len("mlflow-artifacts:/"):].lstrip("/") + "/" + rel_path
        self._call("PUT", "/api/2.0/mlflow-artifacts/artifacts/" + urllib.parse.quote(path), raw=data)

    def list_artifacts(self, run_id, path=None):
        q = {"run_id": run_id}
        if path:
            q["path"] = path
        return self.api("GET", "artifacts/list", query=q).get("files", [])

    def download(self, run_info, rel_path):
        root = run_info["artifact_uri"][len("mlflow-artifacts:/"):].lstrip("/")
        return self._call("GET", "/api/2.0/mlflow-artifacts/artifacts/" + urllib.parse.quote(root + "/" + rel_path))

    # -- registry
    def alias_version(self, model, alias):
        """The version ALIAS points at, or None (MLflow answers 400 for a missing alias)."""
        try:
            mv = self.api("GET", "registered-models/alias", query={"name": model, "alias": alias})
            return mv["model_version"]["version"]
        except MlflowError as e:
            if e.status in (400, 404) and e.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"):
                return None
            raise

    def model_aliases(self, model):
        rm = self.api("GET", "registered-models/get", query={"name": model})["registered_model"]
        return {a["alias"]: a["version"] for a in rm.get("aliases", [])}

    def model_version(self, model, version):
        return self.api("GET", "model-versions/get", query={"name": model, "version": version})["model_version"]

    def set_alias(self, model, alias, version):
        self.api("POST", "registered-models/alias", {"name": model, "alias": alias, "version": str(version)})


def version_tags(mv):
    return {t["key"]: t["value"] for t in mv.get("tags", [])}


def register(ml, model, adapter, adapter_dir):
    try:
        ml.api("POST", "registered-models/create",
               {"name": model, "description": "tiny LoRA adapter for the perf gate's end-to-end test"})
    except MlflowError as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # version 1: logged by a "training" run; the source points into the run's artifacts
    exp = ml.experiment_id(f"{model}-training")
    now = int(time.time() * 1000)
    run = ml.api("POST", "runs/create", {"experiment_id": exp, "run_name": f"train-{model}-v1", "start_time": now,
                                         "tags": [{"key": "adapter_name", "value": adapter}]})["run"]["info"]
    files = {}
    if adapter_dir:
        for f in sorted(os.listdir(adapter_dir)):
            p = os.path.join(adapter_dir, f)
            if os.path.isfile(p):
                with open(p, "rb") as fh:
                    files[f] = fh.read()
    if not files:
        files["adapter_config.json"] = json.dumps({"peft_type": "LORA", "r": 8}).encode()
    for name, data in files.items():
        ml.upload(run, "adapter/" + name, data)
    ml.api("POST", "runs/update", {"run_id": run["run_id"], "status": "FINISHED", "end_time": now})
    sources = [
        (f"runs:/{run['run_id']}/adapter", run["run_id"]),
        (f"s3://adapters/{model}/v2", None),
    ]
    out = {}
    for source, run_id in sources:
        body = {"name": model, "source": source, "description": f"adapter served as `{adapter}`"}
        if run_id:
            body["run_id"] = run_id
        mv = ml.api("POST", "model-versions/create", body)["model_version"]
        v = mv["version"]
        for key, value in (("adapter_name", adapter), ("served_adapter", adapter), ("adapter_uri", source)):
            ml.api("POST", "model-versions/set-tag", {"name": model, "version": v, "key": key, "value": value})
        out[v] = {"source": source, "run_id": run_id, "status": mv.get("status")}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uri", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("register")
    r.add_argument("--model", required=True)
    r.add_argument("--adapter", required=True)
    r.add_argument("--adapter-dir")
    a = sub.add_parser("alias")
    a.add_argument("--model", required=True)
    a.add_argument("--alias", required=True)
    a.add_argument("--version", required=True)
    args = ap.parse_args()
    ml = Mlflow(args.uri)
    try:
        if args.cmd == "register":
            print(json.dumps(register(ml, args.model, args.adapter, args.adapter_dir), indent=2))
        else:
            ml.set_alias(args.model, args.alias, args.version)
            got = ml.alias_version(args.model, args.alias)
            if got != args.version:
                raise RuntimeError(f"alias {args.alias} reads back as version {got}, not {args.version}")
            print(f"alias {args.alias} -> {args.model} v{got}")
    except (MlflowError, RuntimeError, OSError) as e:
        print(f"mlflow_rest.py {args.cmd}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
