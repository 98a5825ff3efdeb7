"""Strict, offline schema validation of Kubernetes documents.

Core kinds (Job, ConfigMap, PVC, RBAC, ...) go through kubernetes-validate with --strict semantics (unknown
fields are errors). Argo (WorkflowTemplate, Workflow, CronWorkflow) and prometheus-operator (ServiceMonitor,
PodMonitor, PrometheusRule) have no bundled schema anywhere; their JSON Schema is generated from pydantic
models (hera's, generated from Argo's swagger; cloudcoil's, from prometheus-operator's CRDs) and made strict:
Optional[X] becomes X, every object that declares its properties rejects others, and a Quantity may be a
string or a number (as Kubernetes accepts `cpu: 1`).
"""

import importlib

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils

K8S_VERSION = "1.37.0"

CRD_MODELS = {
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): "hera.workflows.models:WorkflowTemplate",
    ("argoproj.io/v1alpha1", "ClusterWorkflowTemplate"): "hera.workflows.models:ClusterWorkflowTemplate",
    ("argoproj.io/v1alpha1", "Workflow"): "hera.workflows.models:Workflow",
    ("argoproj.io/v1alpha1", "CronWorkflow"): "hera.workflows.models:CronWorkflow",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "cloudcoil.models.prometheus_operator.v1:ServiceMonitor",
    ("monitoring.coreos.com/v1", "PodMonitor"): "cloudcoil.models.prometheus_operator.v1:PodMonitor",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "cloudcoil.models.prometheus_operator.v1:PrometheusRule",
}

# Kinds that are build inputs, not cluster objects: validated by rendering them, not by a schema.
BUILD_KINDS = {("kustomize.config.k8s.io/v1beta1", "Kustomization"), ("kustomize.config.k8s.io/v1alpha1", "Component")}


def _strict(node):
    if isinstance(node, dict):
        alts = node.get("anyOf")
        if isinstance(alts, list) and len(alts) == 2 and {"type": "null"} in alts:
            node.pop("anyOf")
            node.pop("default", None)
            node.update(next(a for a in alts if a != {"type": "null"}))
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            _strict(v)
    elif isinstance(node, list):
        for v in node:
            _strict(v)
    return node


_validators = {}


def _crd_validator(key):
    if key not in _validators:
        mod, cls = CRD_MODELS[key].split(":")
        model = getattr(importlib.import_module(mod), cls)
        schema = model.model_json_schema(by_alias=True, mode="validation")
        if "Quantity" in schema.get("$defs", {}):
            schema["$defs"]["Quantity"] = {"type": ["string", "number"]}
        _validators[key] = jsonschema.Draft202012Validator(_strict(schema))
    return _validators[key]


def _path(parts):
    return ".".join(str(p) for p in parts) or "<root>"


def schema_errors(doc):
    """Schema errors of one document, as 'path: message' strings (empty when valid)."""
    if not isinstance(doc, dict):
        return [f"<root>: expected a mapping, got {type(doc).__name__}"]
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in BUILD_KINDS:
        return []
    if key in CRD_MODELS:
        errs = sorted(_crd_validator(key).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        return [f"{_path(e.absolute_path)}: {e.message}" for e in errs]
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        return []
    except kubernetes_validate.utils.ValidationError as e:
        return [f"{_path(e.absolute_path)}: {e.message}"]
    except kubernetes_validate.utils.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]}: add a model to CRD_MODELS in scripts/validate/schemas.py"]


def warm_up():
    """Builds every CRD schema once (most of the start-up time)."""
    for key in CRD_MODELS:
        _crd_validator(key)
