//! The Argo documents, typed strictly: `deny_unknown_fields` everywhere the control flow or a
//! command line could hide (spec, templates, steps, inputs, outputs, arguments), so a field this
//! reader does not run is an error naming it rather than something a test silently skips. Fields
//! that change neither (deadlines, retry strategies, volumes, the mutex, pod GC) are read as
//! untyped values and left alone; containers are [`super::super::k8s::Container`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use super::super::k8s::Container;
use super::super::{ManifestError, yaml};

/// An Argo `Workflow` or `WorkflowTemplate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgoDoc {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `Workflow` or `WorkflowTemplate`.
    pub kind: String,
    /// `metadata` (names and labels only matter for messages).
    #[serde(default)]
    pub metadata: Metadata,
    /// `spec`.
    #[serde(default)]
    pub spec: WorkflowSpec,
}

/// `metadata` (other fields, labels and annotations, are not read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Metadata {
    /// `name`.
    pub name: Option<String>,
    /// `generateName`.
    pub generate_name: Option<String>,
}

/// `spec` of a Workflow or WorkflowTemplate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The template the workflow starts with.
    pub entrypoint: Option<String>,
    /// Workflow parameters.
    pub arguments: Arguments,
    /// The templates.
    pub templates: Vec<Template>,
    /// A Workflow that runs a WorkflowTemplate.
    pub workflow_template_ref: Option<TemplateRef>,
    // Below: fields that change neither a command line nor the order or outcome of the steps
    // (serde's `flatten` does not mix with `deny_unknown_fields`, hence inline).
    /// The pods' service account.
    pub service_account_name: Option<String>,
    /// The workflow's deadline.
    pub active_deadline_seconds: Option<Value>,
    /// The mutex (one gate per deployment).
    pub synchronization: Option<Value>,
    /// Pod garbage collection.
    #[serde(rename = "podGC")]
    pub pod_gc: Option<Value>,
    /// How long a finished workflow is kept.
    pub ttl_strategy: Option<Value>,
    /// The pods' security context.
    pub security_context: Option<Value>,
    /// Volumes the workflow creates for its steps to share (the sharded gate's results).
    pub volume_claim_templates: Option<Value>,
    /// When those volumes are deleted.
    #[serde(rename = "volumeClaimGC")]
    pub volume_claim_gc: Option<Value>,
}

/// `workflowTemplateRef`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TemplateRef {
    /// The WorkflowTemplate's name.
    pub name: String,
}

/// `arguments` of a workflow or of a step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Arguments {
    /// `parameters`.
    pub parameters: Vec<Parameter>,
    /// `artifacts` (a step's, passed `from` an earlier step).
    pub artifacts: Vec<ArtifactArgument>,
}

/// A parameter: a name and maybe a value. A number or boolean value is an error (quote it):
/// Argo passes strings, and the renderer does not guess how YAML spelled a number.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Parameter {
    /// `name`.
    pub name: String,
    /// `value` (absent: required; for an input, the default).
    pub value: Option<String>,
    /// `description` (for people).
    pub description: Option<String>,
    /// `enum`: the allowed values (checked by scripts/validate-deploy.sh).
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<String>>,
}

/// An artifact a step passes to the template it runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ArtifactArgument {
    /// `name`: an input artifact of the template.
    pub name: String,
    /// `from`: `{{steps.STEP.outputs.artifacts.NAME}}`.
    pub from: Option<String>,
}

/// A template: a steps, container or suspend body (a `script` is read only to be refused).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Template {
    /// `name`.
    pub name: String,
    /// `inputs`.
    pub inputs: Inputs,
    /// `outputs`.
    pub outputs: Outputs,
    /// `steps`: groups of steps run in sequence (the steps of a group in parallel).
    pub steps: Option<Vec<Vec<StepCall>>>,
    /// `container`.
    pub container: Option<Container>,
    /// `suspend`: a wait.
    pub suspend: Option<Suspend>,
    /// `script` (never rendered: its source is a program, not a command line).
    pub script: Option<Value>,
    // Below: fields that change neither a command line nor the order or outcome of the steps.
    /// The template's deadline.
    pub active_deadline_seconds: Option<Value>,
    /// Argo's retries of a container. Not simulated: the walk runs each container once (the
    /// retries only repeat a step on the exit codes its expression names).
    pub retry_strategy: Option<Value>,
    /// The pod's volumes (their mounts are what the renderer maps).
    pub volumes: Option<Value>,
}

/// One step of a `steps` template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct StepCall {
    /// Step name.
    pub name: String,
    /// The template it runs.
    pub template: String,
    /// Its arguments.
    pub arguments: Arguments,
    /// `when`: run only if this condition holds ([`crate::manifest::when`]).
    pub when: Option<String>,
    /// `continueOn`: the group goes on when this step fails.
    pub continue_on: Option<ContinueOn>,
    /// `withSequence`: the step fanned out over `{{item}}` = 0..count-1 (the sharded gate's shards).
    /// Read so that each template's command line is checked as written; the walk refuses it.
    pub with_sequence: Option<Value>,
}

/// `continueOn` (only `failed`: a step whose pod failed; `error` is not rendered).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ContinueOn {
    /// Continue when the step failed.
    pub failed: bool,
}

/// `suspend`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Suspend {
    /// How long (`2m`, `30s`, bare seconds); without it, until resumed by hand (not rendered).
    pub duration: Option<String>,
}

/// `inputs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Inputs {
    /// Input parameters (a `value` is the default).
    pub parameters: Vec<Parameter>,
    /// Input artifacts.
    pub artifacts: Vec<InputArtifactSpec>,
}

/// An input artifact: where it lands in the pod, and maybe its own source in an artifact
/// repository (else a step passes it `from` another step).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct InputArtifactSpec {
    /// `name`.
    pub name: String,
    /// Where it lands in the pod.
    pub path: Option<String>,
    /// An S3 source (the executor maps its path).
    pub s3: Option<Value>,
}

/// `outputs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Outputs {
    /// Output parameters.
    pub parameters: Vec<OutputParameter>,
    /// Output artifacts (containers only).
    pub artifacts: Vec<OutputArtifact>,
}

/// An output artifact of a container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OutputArtifact {
    /// `name`.
    pub name: String,
    /// Also a workflow output under this name (the last node to set it wins).
    pub global_name: Option<String>,
    /// The file in the pod.
    pub path: Option<String>,
    /// `archive` (how it is stored; inert).
    pub archive: Option<Value>,
    /// `optional`: a missing file is not an error.
    pub optional: bool,
}

/// An output parameter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct OutputParameter {
    /// `name`.
    pub name: String,
    /// Also a workflow output under this name (the last node to set it wins).
    pub global_name: Option<String>,
    /// `valueFrom`.
    pub value_from: Option<ValueFrom>,
}

/// `valueFrom` of an output parameter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ValueFrom {
    /// A container's file holding the value (one trailing newline is dropped, as Argo does).
    pub path: Option<String>,
    /// A steps template's: `{{steps.STEP.outputs.parameters.NAME}}`.
    pub parameter: Option<String>,
    /// The value when the file is missing or the reference cannot be resolved.
    pub default: Option<String>,
}

/// An Argo document with its file.
#[derive(Debug, Clone)]
pub struct ArgoFile {
    /// The file.
    pub path: PathBuf,
    /// The document.
    pub doc: ArgoDoc,
}

/// Whether a document is an Argo workflow kind this module reads.
pub fn is_argo(doc: &Value) -> bool {
    doc.get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("argoproj.io/"))
        && matches!(
            yaml::kind(doc),
            Some("Workflow" | "WorkflowTemplate" | "ClusterWorkflowTemplate")
        )
}

/// The Argo documents of `path`.
pub fn load(path: &Path) -> Result<Vec<ArgoFile>, ManifestError> {
    let mut out = Vec::new();
    for doc in yaml::load_docs(path)? {
        if is_argo(&doc) {
            let label = yaml::label(&doc);
            let doc: ArgoDoc = yaml::typed(path, &label, doc)?;
            out.push(ArgoFile {
                path: path.to_path_buf(),
                doc,
            });
        } else if doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("argoproj.io/"))
        {
            return Err(ManifestError::invalid(
                path,
                format!(
                    "{}: an Argo kind this reader does not render",
                    yaml::label(&doc)
                ),
            ));
        }
    }
    Ok(out)
}

impl ArgoFile {
    /// `Kind/name` for messages.
    pub fn label(&self) -> String {
        let m = &self.doc.metadata;
        let name = m
            .name
            .as_deref()
            .or(m.generate_name.as_deref())
            .unwrap_or("?");
        format!("{}/{name}", self.doc.kind)
    }

    /// An [`ManifestError::Invalid`] naming the file and the document.
    pub(crate) fn invalid(&self, what: impl std::fmt::Display) -> ManifestError {
        ManifestError::invalid(&self.path, format!("{}: {what}", self.label()))
    }

    /// The workflow parameters with their defaults, then `set` applied. A name in `set` that the
    /// workflow does not declare is an error.
    pub fn parameters(
        &self,
        set: &[(String, String)],
    ) -> Result<BTreeMap<String, Option<String>>, ManifestError> {
        let mut params: BTreeMap<String, Option<String>> = self
            .doc
            .spec
            .arguments
            .parameters
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        for (name, value) in set {
            match params.get_mut(name) {
                Some(v) => *v = Some(value.clone()),
                None => {
                    return Err(self.invalid(format!(
                        "no workflow parameter `{name}` (has: {})",
                        params.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
        }
        Ok(params)
    }

    /// The entrypoint template.
    pub fn entrypoint(&self) -> Result<&Template, ManifestError> {
        let entry = self
            .doc
            .spec
            .entrypoint
            .as_deref()
            .ok_or_else(|| self.invalid("no spec.entrypoint"))?;
        self.template(entry)
    }

    /// The template named `name`.
    pub fn template(&self, name: &str) -> Result<&Template, ManifestError> {
        self.doc
            .spec
            .templates
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| self.invalid(format!("no template `{name}`")))
    }
}

/// A Workflow's parameters for the WorkflowTemplate it references: the template's defaults,
/// overridden by the Workflow's own arguments (which the template must declare).
pub fn workflow_arguments(
    wf: &ArgoFile,
    wft: &ArgoFile,
) -> Result<BTreeMap<String, Option<String>>, ManifestError> {
    let set: Vec<(String, String)> = wf
        .doc
        .spec
        .arguments
        .parameters
        .iter()
        .map(|p| (p.name.clone(), p.value.clone().unwrap_or_default()))
        .collect();
    wft.parameters(&set).map_err(|e| match e {
        ManifestError::Invalid { what, .. } => {
            ManifestError::invalid(&wf.path, format!("{}: arguments for {what}", wf.label()))
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Vec<ArgoFile>, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wf.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p)
    }

    const BASE: &str = "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: gate}\nspec:\n  entrypoint: main\n  activeDeadlineSeconds: 60\n  templates:\n    - name: main\n      retryStrategy: {limit: '1'}\n      steps:\n        - - name: a\n            template: t\n            continueOn: {failed: true}\n    - name: t\n      suspend: {duration: '1s'}\n";

    #[test]
    fn the_fields_the_gate_uses_are_read_and_inert_ones_kept() {
        let f = load_text(BASE).unwrap().remove(0);
        assert_eq!(f.label(), "WorkflowTemplate/gate");
        let main = f.entrypoint().unwrap();
        assert!(main.retry_strategy.is_some());
        let call = &main.steps.as_ref().unwrap()[0][0];
        assert!(call.continue_on.as_ref().unwrap().failed);
        assert_eq!(
            f.template("t")
                .unwrap()
                .suspend
                .as_ref()
                .unwrap()
                .duration
                .as_deref(),
            Some("1s")
        );
    }

    #[test]
    fn a_field_the_walk_does_not_run_is_an_error_naming_it() {
        for (from, to, field) in [
            ("  activeDeadlineSeconds: 60\n", "  onExit: t\n", "onExit"),
            (
                "            continueOn: {failed: true}\n",
                "            withItems: [1]\n",
                "withItems",
            ),
            (
                "continueOn: {failed: true}",
                "continueOn: {error: true}",
                "error",
            ),
            (
                "      suspend: {duration: '1s'}\n",
                "      dag: {tasks: []}\n",
                "dag",
            ),
            (
                "      retryStrategy: {limit: '1'}\n",
                "      podSpecPatch: x\n",
                "podSpecPatch",
            ),
            (
                "template: t\n",
                "template: t\n            hooks: {}\n",
                "hooks",
            ),
        ] {
            assert!(BASE.contains(from), "{from}");
            let e = load_text(&BASE.replace(from, to)).unwrap_err();
            let text = format!("{e}: {}", std::error::Error::source(&e).unwrap());
            assert!(
                text.contains(&format!("unknown field `{field}`")),
                "{field}: {text}"
            );
        }
    }
}
