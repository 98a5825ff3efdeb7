//! Argo WorkflowTemplates and Workflows: reading them, and rendering one step of the entrypoint
//! the way Argo does: the workflow's parameters (defaults, overridden by a Workflow's arguments
//! or by `set`) flow through the step's arguments into the step template's inputs, and from
//! there into the container's image, command, args and env ([`super::expr`] renders every
//! `{{...}}`, and fails on anything it does not understand).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use super::expr::{self, Scope};
use super::k8s::Container;
use super::step::RenderedStep;
use super::{ManifestError, yaml};

/// An Argo `Workflow` or `WorkflowTemplate` (the fields the renderer reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgoDoc {
    /// `Workflow` or `WorkflowTemplate`.
    pub kind: String,
    /// `metadata`.
    #[serde(default)]
    pub metadata: Metadata,
    /// `spec`.
    #[serde(default)]
    pub spec: WorkflowSpec,
}

/// `metadata`.
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
#[serde(rename_all = "camelCase", default)]
pub struct WorkflowSpec {
    /// The template the workflow starts with.
    pub entrypoint: Option<String>,
    /// Workflow parameters.
    pub arguments: Arguments,
    /// The templates.
    pub templates: Vec<Template>,
    /// A Workflow that runs a WorkflowTemplate.
    pub workflow_template_ref: Option<TemplateRef>,
}

/// `workflowTemplateRef`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TemplateRef {
    /// The WorkflowTemplate's name.
    pub name: String,
}

/// `arguments` (parameters only; artifacts are not rendered).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Arguments {
    /// `parameters`.
    pub parameters: Vec<Parameter>,
}

/// A parameter: a name and maybe a value. A number or boolean value is an error (quote it):
/// Argo passes strings, and the renderer does not guess how YAML spelled a number.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Parameter {
    /// `name`.
    pub name: String,
    /// `value` (absent: required).
    pub value: Option<String>,
}

/// A template (container or steps; other bodies are not rendered).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Template {
    /// `name`.
    pub name: String,
    /// `inputs`.
    pub inputs: Inputs,
    /// `outputs`.
    pub outputs: Outputs,
    /// `steps`: groups of steps run in sequence.
    pub steps: Option<Vec<Vec<StepCall>>>,
    /// `container`.
    pub container: Option<Container>,
    /// `script` (never rendered: its source is a program, not a command line).
    pub script: Option<Value>,
}

/// One step of a `steps` template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StepCall {
    /// Step name.
    pub name: String,
    /// The template it runs.
    pub template: String,
    /// Its arguments.
    pub arguments: Arguments,
}

/// `inputs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Inputs {
    /// Input parameters (a `value` is the default).
    pub parameters: Vec<Parameter>,
    /// Input artifacts.
    pub artifacts: Vec<Artifact>,
}

/// `outputs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Outputs {
    /// Output parameters.
    pub parameters: Vec<OutputParameter>,
    /// Output artifacts.
    pub artifacts: Vec<Artifact>,
}

/// An input or output artifact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Artifact {
    /// `name`.
    pub name: String,
    /// Where it lives in the pod.
    pub path: Option<String>,
}

/// An output parameter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutputParameter {
    /// `name`.
    pub name: String,
    /// `valueFrom`.
    pub value_from: Option<ValueFrom>,
}

/// `valueFrom` of an output parameter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ValueFrom {
    /// The file holding the value.
    pub path: Option<String>,
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

    fn invalid(&self, what: impl std::fmt::Display) -> ManifestError {
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

    /// The names of the steps the entrypoint runs, in order, with the template each runs.
    pub fn entry_steps(&self) -> Result<Vec<&StepCall>, ManifestError> {
        let entry = self
            .doc
            .spec
            .entrypoint
            .as_deref()
            .ok_or_else(|| self.invalid("no spec.entrypoint"))?;
        let tmpl = self.template(entry)?;
        let groups = tmpl.steps.as_ref().ok_or_else(|| {
            self.invalid(format!(
                "entrypoint `{entry}` has no steps (only a steps entrypoint renders)"
            ))
        })?;
        Ok(groups.iter().flatten().collect())
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

    /// Renders the entrypoint's step that runs template `step`, with workflow parameters
    /// `params` (see [`ArgoFile::parameters`]).
    pub fn render_step(
        &self,
        step: &str,
        params: &BTreeMap<String, Option<String>>,
    ) -> Result<RenderedStep, ManifestError> {
        let call = self
            .entry_steps()?
            .into_iter()
            .find(|s| s.template == step)
            .ok_or_else(|| self.invalid(format!("the entrypoint runs no template `{step}`")))?;
        let tmpl = self.template(step)?;
        let where_ = format!("template {step}");
        let wf_lookup = |scope: Scope, name: &str| -> Result<String, String> {
            match scope {
                Scope::Workflow => workflow_param(params, name),
                Scope::Inputs => Err(format!(
                    "inputs.parameters.{name} in a step's arguments (only workflow parameters are in scope there)"
                )),
            }
        };
        let mut args = BTreeMap::new();
        for p in &call.arguments.parameters {
            let text = p.value.as_deref().unwrap_or_default();
            let v = expr::render(text, &wf_lookup).map_err(|e| {
                self.invalid(format!(
                    "step {}: argument {}: cannot render {e}",
                    call.name, p.name
                ))
            })?;
            args.insert(p.name.clone(), v);
        }
        let mut inputs = BTreeMap::new();
        for p in &tmpl.inputs.parameters {
            let v = match (args.remove(&p.name), &p.value) {
                (Some(v), _) => v,
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    return Err(self.invalid(format!(
                        "{where_}: input `{}` gets no value from step {}",
                        p.name, call.name
                    )));
                }
            };
            inputs.insert(p.name.clone(), v);
        }
        if let Some(extra) = args.keys().next() {
            return Err(self.invalid(format!(
                "step {} passes `{extra}`, which {where_} does not declare",
                call.name
            )));
        }
        let lookup = |scope: Scope, name: &str| -> Result<String, String> {
            match scope {
                Scope::Workflow => workflow_param(params, name),
                Scope::Inputs => inputs
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("{where_} declares no input `{name}`")),
            }
        };
        self.render_container(tmpl, &lookup)
    }

    /// Renders `tmpl`'s container with `lookup` resolving parameters.
    fn render_container(
        &self,
        tmpl: &Template,
        lookup: &dyn Fn(Scope, &str) -> Result<String, String>,
    ) -> Result<RenderedStep, ManifestError> {
        let where_ = format!("template {}", tmpl.name);
        let c = tmpl.container.as_ref().ok_or_else(|| {
            self.invalid(format!(
                "{where_} has no container (only containers render)"
            ))
        })?;
        let render = |what: &str, text: &str| {
            expr::render(text, lookup)
                .map_err(|e| self.invalid(format!("{where_}: {what}: cannot render {e}")))
        };
        let image = c.image.as_deref().map(|i| render("image", i)).transpose()?;
        let mut argv = Vec::new();
        for (i, a) in c.command.iter().chain(&c.args).enumerate() {
            argv.push(render(&format!("argv[{i}]"), a)?);
        }
        let mut env = Vec::new();
        let mut secret_env = Vec::new();
        for e in &c.env {
            match (&e.value, &e.value_from) {
                (Some(v), None) => {
                    env.push((e.name.clone(), render(&format!("env {}", e.name), v)?))
                }
                (None, Some(from))
                    if from
                        .secret_key_ref
                        .as_ref()
                        .is_some_and(|s| s.optional == Some(true)) =>
                {
                    secret_env.push(e.name.clone());
                }
                _ => {
                    return Err(self.invalid(format!(
                        "{where_}: env {} comes from a source this renderer cannot provide (only literal values and optional secretKeyRefs)",
                        e.name
                    )));
                }
            }
        }
        if !c.env_from.is_empty() {
            return Err(self.invalid(format!("{where_}: envFrom is not rendered")));
        }
        let mut paths = Vec::new();
        for a in &tmpl.inputs.artifacts {
            if let Some(p) = &a.path {
                paths.push((format!("input artifact {}", a.name), p.clone()));
            }
        }
        for p in &tmpl.outputs.parameters {
            if let Some(path) = p.value_from.as_ref().and_then(|v| v.path.clone()) {
                paths.push((format!("output parameter {}", p.name), path));
            }
        }
        for a in &tmpl.outputs.artifacts {
            if let Some(p) = &a.path {
                paths.push((format!("output artifact {}", a.name), p.clone()));
            }
        }
        for m in &c.volume_mounts {
            paths.push((format!("volume {}", m.name), m.mount_path.clone()));
        }
        Ok(RenderedStep {
            origin: format!("{}: {} {where_}", self.path.display(), self.label()),
            image,
            argv,
            env,
            secret_env,
            paths,
        })
    }

    /// The image of `tmpl`'s container rendered with the workflow's defaults only (e.g.
    /// `{{workflow.parameters.image}}`); `None` without a container or image.
    pub fn default_image(&self, tmpl: &Template) -> Result<Option<String>, ManifestError> {
        let params = self.parameters(&[])?;
        let Some(image) = tmpl.container.as_ref().and_then(|c| c.image.as_deref()) else {
            return Ok(None);
        };
        let lookup = |scope: Scope, name: &str| match scope {
            Scope::Workflow => workflow_param(&params, name),
            Scope::Inputs => Err(format!(
                "an image from inputs.parameters.{name} cannot be told without a run"
            )),
        };
        expr::render(image, &lookup)
            .map(Some)
            .map_err(|e| self.invalid(format!("template {}: image: cannot render {e}", tmpl.name)))
    }
}

fn workflow_param(params: &BTreeMap<String, Option<String>>, name: &str) -> Result<String, String> {
    match params.get(name) {
        Some(Some(v)) => Ok(v.clone()),
        Some(None) => Err(format!(
            "workflow parameter `{name}` has no value (it is required: set it)"
        )),
        None => Err(format!("no workflow parameter `{name}`")),
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

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("wf.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const WFT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: gate}
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: url
      - name: version
        value: ""
      - name: image
        value: "img:1"
  templates:
    - name: main
      steps:
        - - name: run
            template: run
            arguments:
              parameters:
                - name: url
                  value: "{{workflow.parameters.url}}"
                - name: version
                  value: "{{workflow.parameters.version}}"
    - name: run
      inputs:
        parameters: [{name: url}, {name: version}]
        artifacts: [{name: data, path: /data/eval.jsonl}]
      container:
        image: "{{workflow.parameters.image}}"
        command: [load-test]
        args:
          - "--vllm-url={{inputs.parameters.url}}"
          - >-
            {{=inputs.parameters['version'] == ''
            ? '--candidate-alias=x' : '--candidate-version=' + inputs.parameters['version']}}
        env:
          - {name: LOG_FORMAT, value: "json"}
          - name: TOKEN
            valueFrom: {secretKeyRef: {name: s, key: k, optional: true}}
"#;

    #[test]
    fn renders_a_step_through_its_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let f = load(&write(dir.path(), WFT)).unwrap().remove(0);
        let params = f
            .parameters(&[("url".into(), "http://h:1".into())])
            .unwrap();
        let s = f.render_step("run", &params).unwrap();
        assert_eq!(s.image.as_deref(), Some("img:1"));
        assert_eq!(
            s.argv,
            ["load-test", "--vllm-url=http://h:1", "--candidate-alias=x"]
        );
        assert_eq!(s.env, [("LOG_FORMAT".to_string(), "json".to_string())]);
        assert_eq!(s.secret_env, ["TOKEN"]);
        assert_eq!(
            s.paths,
            [(
                "input artifact data".to_string(),
                "/data/eval.jsonl".to_string()
            )]
        );
        let params = f
            .parameters(&[("url".into(), "u".into()), ("version".into(), "3".into())])
            .unwrap();
        assert_eq!(
            f.render_step("run", &params).unwrap().argv[2],
            "--candidate-version=3"
        );
    }

    #[test]
    fn errors_name_the_file_and_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), WFT);
        let f = load(&path).unwrap().remove(0);
        let e = f
            .render_step("run", &f.parameters(&[]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "{}: WorkflowTemplate/gate: step run: argument url",
                path.display()
            )),
            "{e}"
        );
        assert!(e.contains("`url` has no value"), "{e}");
        let e = f
            .parameters(&[("nope".into(), "1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no workflow parameter `nope` (has: image, url, version)"),
            "{e}"
        );

        let bad = WFT.replace("'--candidate-alias=x'", "upper('--candidate-alias=x')");
        let path = write(dir.path(), &bad);
        let f = load(&path).unwrap().remove(0);
        let params = f.parameters(&[("url".into(), "u".into())]).unwrap();
        let e = f.render_step("run", &params).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        assert!(
            e.contains("template run: argv[2]: cannot render `{{=inputs.parameters['version']"),
            "{e}"
        );
        assert!(e.contains("`upper("), "{e}");

        let required = WFT.replace("optional: true", "optional: false");
        let f = load(&write(dir.path(), &required)).unwrap().remove(0);
        let params = f.parameters(&[("url".into(), "u".into())]).unwrap();
        let e = f.render_step("run", &params).unwrap_err().to_string();
        assert!(
            e.contains("env TOKEN comes from a source this renderer cannot provide"),
            "{e}"
        );
    }
}
