//! What a template's `{{...}}` see (`Vars`), a step's arguments bound to the inputs of the
//! template it runs (`ArgoFile::bind`), and a container rendered from them
//! (`ArgoFile::render_container`); and a container's image with the workflow's defaults
//! ([`ArgoFile::default_image`]).

use std::collections::BTreeMap;

use super::super::ManifestError;
use super::super::expr::{self, Piece, Ref, Scope};
use super::super::step::RenderedStep;
use super::doc::{ArgoFile, StepCall, Template};
use super::outcome::{ArtifactRef, Phase};
use super::walk::NodeState;

/// The earlier steps a steps template's references may name.
#[derive(Debug, Clone, Copy)]
pub(super) enum Steps<'a> {
    /// In a container or suspend template: no `steps.*`.
    None,
    /// Listing what could run, without running it: a step reference stays as written.
    AsWritten,
    /// The steps of the groups that have run, by name.
    Known(&'a BTreeMap<String, NodeState>),
}

/// The values `{{...}}` resolve to inside one template.
pub(super) struct Vars<'a> {
    /// The workflow's parameters (`None`: required and not given).
    pub params: &'a BTreeMap<String, Option<String>>,
    /// The template's inputs.
    pub inputs: &'a BTreeMap<String, String>,
    /// Earlier steps (steps templates).
    pub steps: Steps<'a>,
    /// The template's name, for messages.
    pub template: &'a str,
}

impl Vars<'_> {
    /// Resolves `r`, or says why it cannot.
    pub fn lookup(&self, r: &Ref) -> Result<String, String> {
        let t = self.template;
        match r {
            Ref::Param(Scope::Workflow, name) => match self.params.get(name) {
                Some(Some(v)) => Ok(v.clone()),
                Some(None) => Err(format!(
                    "workflow parameter `{name}` has no value (it is required: set it)"
                )),
                None => Err(format!("no workflow parameter `{name}`")),
            },
            Ref::Param(Scope::Inputs, name) => self
                .inputs
                .get(name)
                .cloned()
                .ok_or_else(|| format!("template {t} declares no input `{name}`")),
            Ref::StepArtifact { .. } => Err(format!(
                "`{r}` renders only as an artifact argument's `from`"
            )),
            Ref::StepStatus(step) | Ref::StepOutput { step, .. } => match self.steps {
                Steps::None => Err(format!(
                    "template {t} is not a steps template: it has no steps to refer to"
                )),
                Steps::AsWritten => Ok(format!("{{{{{r}}}}}")),
                Steps::Known(states) => step_value(states, t, step, r),
            },
        }
    }
}

fn step_value(
    states: &BTreeMap<String, NodeState>,
    t: &str,
    step: &str,
    r: &Ref,
) -> Result<String, String> {
    let s = states.get(step).ok_or_else(|| {
        format!("no step `{step}` ran in an earlier group of template {t} (a step sees only the groups before its own)")
    })?;
    let Ref::StepOutput { name, .. } = r else {
        return Ok(s.phase.to_string());
    };
    match (s.phase, s.steps_failed) {
        (Phase::Skipped, _) => Err(format!(
            "step `{step}` was skipped: it has no outputs (Argo leaves such a tag unresolved)"
        )),
        (_, true) => Err(format!(
            "step `{step}` runs a steps template that failed: Argo computes no outputs for it"
        )),
        _ => s
            .outputs
            .get(name)
            .cloned()
            .ok_or_else(|| format!("step `{step}` has no output parameter `{name}`")),
    }
}

/// What a call binds: the callee's inputs, and its input artifacts with where each comes from
/// (`None`: the artifact's own repository source, or unknown when listing).
pub(super) struct Bound {
    pub inputs: BTreeMap<String, String>,
    pub artifacts: Vec<(String, Option<ArtifactRef>)>,
}

impl ArgoFile {
    /// Binds `call`'s arguments (rendered with the caller's `vars`) to `callee`'s inputs: an
    /// argument, else the input's default; an input without either, or an argument the callee
    /// does not declare, is an error. An artifact argument must be one `{{steps.S.outputs.artifacts.A}}`.
    pub(super) fn bind(
        &self,
        vars: &Vars<'_>,
        call: &StepCall,
        callee: &Template,
    ) -> Result<Bound, ManifestError> {
        let at = |what: String| {
            self.invalid(format!(
                "template {}: step {}: {what}",
                vars.template, call.name
            ))
        };
        let mut args = BTreeMap::new();
        for p in &call.arguments.parameters {
            let text = p.value.as_deref().unwrap_or_default();
            let v = expr::render(text, &|r| vars.lookup(r))
                .map_err(|e| at(format!("argument {}: cannot render {e}", p.name)))?;
            args.insert(p.name.clone(), v);
        }
        let mut inputs = BTreeMap::new();
        for p in &callee.inputs.parameters {
            let v = match (args.remove(&p.name), &p.value) {
                (Some(v), _) => v,
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    return Err(at(format!(
                        "template {} needs input `{}`, which the step does not pass",
                        callee.name, p.name
                    )));
                }
            };
            inputs.insert(p.name.clone(), v);
        }
        if let Some(extra) = args.keys().next() {
            return Err(at(format!(
                "passes `{extra}`, which template {} does not declare",
                callee.name
            )));
        }
        let mut passed = BTreeMap::new();
        for a in &call.arguments.artifacts {
            let from = a.from.as_deref().unwrap_or_default();
            let source = artifact_source(vars, from)
                .map_err(|e| at(format!("artifact {}: `{from}`: {e}", a.name)))?;
            passed.insert(a.name.clone(), source);
        }
        let mut artifacts = Vec::new();
        for a in &callee.inputs.artifacts {
            let source = match passed.remove(&a.name) {
                Some(source) => source,
                None if a.s3.is_some() => None,
                None => {
                    return Err(at(format!(
                        "template {} needs input artifact `{}`, which the step does not pass",
                        callee.name, a.name
                    )));
                }
            };
            artifacts.push((a.name.clone(), source));
        }
        if let Some(extra) = passed.keys().next() {
            return Err(at(format!(
                "passes artifact `{extra}`, which template {} does not declare",
                callee.name
            )));
        }
        Ok(Bound { inputs, artifacts })
    }

    /// Renders `tmpl`'s container with `vars`; `node` names it in the origin.
    pub(super) fn render_container(
        &self,
        tmpl: &Template,
        vars: &Vars<'_>,
        node: &str,
    ) -> Result<RenderedStep, ManifestError> {
        let where_ = format!("template {}", tmpl.name);
        let c = tmpl.container.as_ref().ok_or_else(|| {
            self.invalid(format!(
                "{where_} has no container (only containers render)"
            ))
        })?;
        let lookup = |r: &Ref| vars.lookup(r);
        let render = |what: &str, text: &str| {
            expr::render(text, &lookup)
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
        let at = if node.is_empty() {
            String::new()
        } else {
            format!(" at {node}")
        };
        Ok(RenderedStep {
            origin: format!("{}: {} {where_}{at}", self.path.display(), self.label()),
            image,
            argv,
            env,
            secret_env,
            deploy_env: vec![],
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
        let lookup = |r: &Ref| match r {
            Ref::Param(Scope::Workflow, _) => Vars {
                params: &params,
                inputs: &BTreeMap::new(),
                steps: Steps::None,
                template: &tmpl.name,
            }
            .lookup(r),
            other => Err(format!(
                "an image from {other} cannot be told without a run"
            )),
        };
        expr::render(image, &lookup)
            .map(Some)
            .map_err(|e| self.invalid(format!("template {}: image: cannot render {e}", tmpl.name)))
    }
}

/// Where an artifact argument's `from` points: exactly one `{{steps.S.outputs.artifacts.A}}`.
fn artifact_source(vars: &Vars<'_>, from: &str) -> Result<Option<ArtifactRef>, String> {
    let pieces = expr::parse_template(from).map_err(|e| e.to_string())?;
    let [Piece::Ref(Ref::StepArtifact { step, name })] = pieces.as_slice() else {
        return Err("not one {{steps.STEP.outputs.artifacts.NAME}}".into());
    };
    match vars.steps {
        Steps::AsWritten => Ok(None),
        Steps::None => Err(format!(
            "template {} is not a steps template",
            vars.template
        )),
        Steps::Known(states) => {
            let s = states
                .get(step)
                .ok_or_else(|| format!("no step `{step}` ran in an earlier group"))?;
            s.artifacts
                .get(name)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("step `{step}` has no output artifact `{name}`"))
        }
    }
}
