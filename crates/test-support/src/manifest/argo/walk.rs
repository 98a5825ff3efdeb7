//! The entrypoint run the way Argo runs it, for the subset the gate's templates use:
//!
//! - a steps template runs its groups in order (the steps of a group one after the other here;
//!   Argo starts them together); a step whose `when` is false is `Skipped`; a group with a
//!   `Failed` step that has no `continueOn: {failed: true}` fails the template at once, and a
//!   failed steps template has no outputs (Argo returns before computing them);
//! - a container runs through the [`Executor`]: exit 0 is `Succeeded`, anything else `Failed`;
//!   its output parameters are read from the files it wrote (`valueFrom.path`, one trailing
//!   newline dropped, `default` when the file is missing), its output artifacts are where it
//!   wrote them, and an input artifact passed `from` an earlier step is that step's file;
//! - a `suspend` waits its duration (through the executor);
//! - a steps template's output parameters come from its steps
//!   (`valueFrom.parameter`, `default` when that cannot be resolved);
//! - an output with a `globalName` becomes a workflow output, the last node to set it winning.
//!
//! References are strict (`render::Vars`): a step's outputs are visible only to the
//! groups after it, and a skipped step or a failed steps template has none (Argo would leave the
//! tag unresolved, and a `when` built on it would fail or wait forever). `retryStrategy` is not
//! simulated: each container runs once.

use std::collections::BTreeMap;

use super::super::ManifestError;
use super::super::expr::{self, Ref};
use super::super::when;
use super::doc::{ArgoFile, StepCall, Template};
use super::outcome::{
    ArtifactRef, Executor, InputArtifact, Leaf, NodeKind, NodeRecord, Outcome, Phase, RunError,
};
use super::render::{Bound, Steps, Vars};

/// What a finished node leaves for the steps after it.
#[derive(Debug, Clone)]
pub(super) struct NodeState {
    pub phase: Phase,
    /// A steps template that failed (it has no outputs).
    pub steps_failed: bool,
    pub outputs: BTreeMap<String, String>,
    pub artifacts: BTreeMap<String, ArtifactRef>,
}

impl NodeState {
    fn new(phase: Phase) -> Self {
        NodeState {
            phase,
            steps_failed: false,
            outputs: BTreeMap::new(),
            artifacts: BTreeMap::new(),
        }
    }
}

impl ArgoFile {
    /// Runs the entrypoint with workflow parameters `params` (see [`ArgoFile::parameters`]),
    /// `exec` running the containers and suspends.
    pub fn run(
        &self,
        params: &BTreeMap<String, Option<String>>,
        exec: &mut dyn Executor,
    ) -> Result<Outcome, RunError> {
        let mut w = Walker::new(self, params, Some(exec));
        w.out.phase = w.entrypoint()?.phase;
        Ok(w.out)
    }

    /// Every container the entrypoint can reach, whatever the conditions, rendered with `params`
    /// and nothing run: a value that comes from an earlier step's output stays as written
    /// (`{{steps.S.outputs.parameters.P}}`), known only at run time.
    pub fn container_leaves(
        &self,
        params: &BTreeMap<String, Option<String>>,
    ) -> Result<Vec<Leaf>, ManifestError> {
        let mut w = Walker::new(self, params, None);
        match w.entrypoint() {
            Ok(_) => Ok(w.leaves),
            Err(RunError::Manifest(e)) => Err(e),
            Err(e @ RunError::Executor { .. }) => {
                unreachable!("invariant: listing runs no executor: {e}")
            }
        }
    }
}

struct Walker<'a, 'e> {
    file: &'a ArgoFile,
    params: &'a BTreeMap<String, Option<String>>,
    /// `None`: list the containers, run nothing.
    exec: Option<&'e mut dyn Executor>,
    out: Outcome,
    leaves: Vec<Leaf>,
    /// The templates being run (no recursion).
    stack: Vec<String>,
}

fn child(node: &str, name: &str) -> String {
    if node.is_empty() {
        name.to_string()
    } else {
        format!("{node}.{name}")
    }
}

impl<'a, 'e> Walker<'a, 'e> {
    fn new(
        file: &'a ArgoFile,
        params: &'a BTreeMap<String, Option<String>>,
        exec: Option<&'e mut dyn Executor>,
    ) -> Self {
        Walker {
            file,
            params,
            exec,
            out: Outcome {
                phase: Phase::Succeeded,
                nodes: Vec::new(),
                outputs: BTreeMap::new(),
                artifacts: BTreeMap::new(),
            },
            leaves: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// The entrypoint, which takes no inputs.
    fn entrypoint(&mut self) -> Result<NodeState, RunError> {
        let entry = self.file.entrypoint()?;
        let none = Bound {
            inputs: BTreeMap::new(),
            artifacts: Vec::new(),
        };
        self.template(entry, &none, "")
    }

    fn record(&mut self, node: &str, tmpl: &str, kind: NodeKind) -> usize {
        self.out.nodes.push(NodeRecord {
            node: node.to_string(),
            template: tmpl.to_string(),
            kind,
            phase: Phase::Succeeded,
            exit_code: None,
            detail: String::new(),
        });
        self.out.nodes.len() - 1
    }

    fn template(
        &mut self,
        tmpl: &Template,
        bound: &Bound,
        node: &str,
    ) -> Result<NodeState, RunError> {
        if self.stack.contains(&tmpl.name) {
            return Err(self
                .file
                .invalid(format!(
                    "template {} calls itself (recursion is not run)",
                    tmpl.name
                ))
                .into());
        }
        self.stack.push(tmpl.name.clone());
        let bodies = [
            tmpl.steps.is_some(),
            tmpl.container.is_some(),
            tmpl.suspend.is_some(),
            tmpl.script.is_some(),
        ];
        let state = match bodies {
            [true, false, false, false] => self.steps(tmpl, bound, node),
            [false, true, false, false] => self.container(tmpl, bound, node),
            [false, false, true, false] => self.suspend(tmpl, bound, node),
            _ => Err(self
                .file
                .invalid(format!(
                    "template {} needs exactly one body of steps, container or suspend (script and others are not run)",
                    tmpl.name
                ))
                .into()),
        };
        self.stack.pop();
        state
    }

    fn steps(&mut self, tmpl: &Template, bound: &Bound, node: &str) -> Result<NodeState, RunError> {
        let rec = self.record(node, &tmpl.name, NodeKind::Steps);
        if !tmpl.outputs.artifacts.is_empty() {
            return Err(self
                .file
                .invalid(format!(
                    "template {}: output artifacts of a steps template are not rendered",
                    tmpl.name
                ))
                .into());
        }
        let listing = self.exec.is_none();
        let mut states: BTreeMap<String, NodeState> = BTreeMap::new();
        for group in tmpl.steps.iter().flatten() {
            let mut done: Vec<(&StepCall, NodeState)> = Vec::new();
            for call in group {
                let path = child(node, &call.name);
                let vars = Vars {
                    params: self.params,
                    inputs: &bound.inputs,
                    steps: if listing {
                        Steps::AsWritten
                    } else {
                        Steps::Known(&states)
                    },
                    template: &tmpl.name,
                };
                let callee = self.file.template(&call.template)?;
                if call.with_sequence.is_some() {
                    return Err(self
                        .file
                        .invalid(format!(
                            "template {}: step {}: withSequence (a fan-out) is not run by the walk",
                            tmpl.name, call.name
                        ))
                        .into());
                }
                if let Some(cond) = &call.when {
                    let at = |e: String| {
                        self.file
                            .invalid(format!("template {}: step {}: {e}", tmpl.name, call.name))
                    };
                    let run = if listing {
                        when::check(cond, &|r| vars.lookup(r)).map_err(at)?;
                        true
                    } else {
                        when::evaluate(cond, &|r| vars.lookup(r)).map_err(at)?
                    };
                    if !run {
                        let r = self.record(&path, &callee.name, kind_of(callee));
                        self.out.nodes[r].phase = Phase::Skipped;
                        self.out.nodes[r].detail = format!("when `{cond}` evaluated false");
                        done.push((call, NodeState::new(Phase::Skipped)));
                        continue;
                    }
                }
                let args = self.file.bind(&vars, call, callee)?;
                let state = self.template(callee, &args, &path)?;
                done.push((call, state));
            }
            let failed = done.iter().any(|(call, s)| {
                s.phase == Phase::Failed && !call.continue_on.as_ref().is_some_and(|c| c.failed)
            });
            states.extend(done.into_iter().map(|(c, s)| (c.name.clone(), s)));
            if failed {
                self.out.nodes[rec].phase = Phase::Failed;
                return Ok(NodeState {
                    steps_failed: true,
                    ..NodeState::new(Phase::Failed)
                });
            }
        }
        let mut state = NodeState::new(Phase::Succeeded);
        if listing {
            return Ok(state);
        }
        let vars = Vars {
            params: self.params,
            inputs: &bound.inputs,
            steps: Steps::Known(&states),
            template: &tmpl.name,
        };
        for p in &tmpl.outputs.parameters {
            let vf = p.value_from.clone().unwrap_or_default();
            let at = |what: String| {
                self.file
                    .invalid(format!("template {}: output {}: {what}", tmpl.name, p.name))
            };
            let (Some(text), None) = (&vf.parameter, &vf.path) else {
                return Err(
                    at("a steps template's output needs valueFrom.parameter (only)".into()).into(),
                );
            };
            let value = match expr::render(text, &|r| vars.lookup(r)) {
                Ok(v) => v,
                Err(e) => match &vf.default {
                    // Argo's rule: a reference that cannot be resolved takes the default
                    Some(d) if expr::parse_template(text).is_ok() => d.clone(),
                    _ => return Err(at(format!("cannot render {e}")).into()),
                },
            };
            if let Some(g) = &p.global_name {
                self.out.outputs.insert(g.clone(), value.clone());
            }
            state.outputs.insert(p.name.clone(), value);
        }
        Ok(state)
    }

    fn container(
        &mut self,
        tmpl: &Template,
        bound: &Bound,
        node: &str,
    ) -> Result<NodeState, RunError> {
        let vars = Vars {
            params: self.params,
            inputs: &bound.inputs,
            steps: Steps::None,
            template: &tmpl.name,
        };
        let step = self.file.render_container(tmpl, &vars, node)?;
        let mut inputs = Vec::new();
        for (name, from) in &bound.artifacts {
            let spec = tmpl
                .inputs
                .artifacts
                .iter()
                .find(|a| &a.name == name)
                .expect("invariant: bound artifacts are the template's inputs");
            let path = spec.path.clone().ok_or_else(|| {
                self.file.invalid(format!(
                    "template {}: input artifact {name} has no path",
                    tmpl.name
                ))
            })?;
            inputs.push(InputArtifact {
                name: name.clone(),
                path,
                from: from.clone(),
            });
        }
        let leaf = Leaf {
            node: node.to_string(),
            template: tmpl.name.clone(),
            mounts: tmpl
                .container
                .iter()
                .flat_map(|c| &c.volume_mounts)
                .map(|m| (m.name.clone(), m.mount_path.clone()))
                .collect(),
            step,
            inputs,
        };
        let rec = self.record(node, &tmpl.name, NodeKind::Container);
        self.out.nodes[rec].detail = leaf.step.argv.join(" ");
        let Some(exec) = self.exec.as_deref_mut() else {
            self.leaves.push(leaf);
            return Ok(NodeState::new(Phase::Succeeded));
        };
        let fail = |message: String| RunError::Executor {
            node: node.to_string(),
            message,
        };
        let code = exec.run(&leaf).map_err(fail)?;
        let mut state = NodeState::new(if code == 0 {
            Phase::Succeeded
        } else {
            Phase::Failed
        });
        for p in &tmpl.outputs.parameters {
            let vf = p.value_from.clone().unwrap_or_default();
            let (Some(path), None) = (&vf.path, &vf.parameter) else {
                return Err(self
                    .file
                    .invalid(format!(
                        "template {}: output {}: a container's output needs valueFrom.path (only)",
                        tmpl.name, p.name
                    ))
                    .into());
            };
            let value = match (exec.read(&leaf, path).map_err(fail)?, &vf.default) {
                (Some(text), _) => text.strip_suffix('\n').unwrap_or(&text).to_string(),
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    // Argo fails the node: the output cannot be saved
                    state.phase = Phase::Failed;
                    self.out.nodes[rec].detail +=
                        &format!(" (output {}: no file {path} and no default)", p.name);
                    continue;
                }
            };
            if let Some(g) = &p.global_name {
                self.out.outputs.insert(g.clone(), value.clone());
            }
            state.outputs.insert(p.name.clone(), value);
        }
        for a in &tmpl.outputs.artifacts {
            let Some(path) = &a.path else { continue };
            let r = ArtifactRef {
                node: node.to_string(),
                path: path.clone(),
            };
            if let Some(g) = &a.global_name {
                self.out.artifacts.insert(g.clone(), r.clone());
            }
            state.artifacts.insert(a.name.clone(), r);
        }
        self.out.nodes[rec].phase = state.phase;
        self.out.nodes[rec].exit_code = Some(code);
        Ok(state)
    }

    fn suspend(
        &mut self,
        tmpl: &Template,
        bound: &Bound,
        node: &str,
    ) -> Result<NodeState, RunError> {
        let vars = Vars {
            params: self.params,
            inputs: &bound.inputs,
            steps: Steps::None,
            template: &tmpl.name,
        };
        let text = tmpl
            .suspend
            .as_ref()
            .and_then(|s| s.duration.as_deref())
            .ok_or_else(|| {
                self.file.invalid(format!(
                    "template {}: a suspend without a duration waits for a person (not run)",
                    tmpl.name
                ))
            })?;
        let duration = expr::render(text, &|r: &Ref| vars.lookup(r)).map_err(|e| {
            self.file.invalid(format!(
                "template {}: suspend duration: cannot render {e}",
                tmpl.name
            ))
        })?;
        let rec = self.record(node, &tmpl.name, NodeKind::Suspend);
        self.out.nodes[rec].detail = format!("duration {duration}");
        if let Some(exec) = self.exec.as_deref_mut() {
            exec.suspend(node, &duration)
                .map_err(|message| RunError::Executor {
                    node: node.to_string(),
                    message,
                })?;
        }
        Ok(NodeState::new(Phase::Succeeded))
    }
}

fn kind_of(t: &Template) -> NodeKind {
    if t.steps.is_some() {
        NodeKind::Steps
    } else if t.suspend.is_some() {
        NodeKind::Suspend
    } else {
        NodeKind::Container
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::argo::load;

    /// Pods that exit with the code in their first argument (`code=N`) and write `out` = `text`.
    struct Pods(BTreeMap<String, String>);

    impl Executor for Pods {
        fn run(&mut self, leaf: &Leaf) -> Result<i32, String> {
            let code = leaf.step.argv[1].trim_start_matches("code=");
            code.parse().map_err(|e| format!("{code}: {e}"))
        }
        fn read(&mut self, leaf: &Leaf, path: &str) -> Result<Option<String>, String> {
            Ok(self.0.get(&format!("{}:{path}", leaf.node)).cloned())
        }
        fn suspend(&mut self, _: &str, _: &str) -> Result<(), String> {
            Ok(())
        }
    }

    const WF: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: w}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: code, value: "0"}]
  templates:
    - name: main
      steps:
        - - name: inner
            template: inner
            continueOn: {failed: true}
        - - name: after
            template: pod
            when: "{{steps.inner.outputs.parameters.word}} == x"
            arguments:
              parameters: [{name: code, value: "0"}]
    - name: inner
      outputs:
        parameters:
          - name: word
            globalName: word
            valueFrom: {parameter: "{{steps.pod.outputs.parameters.out}}"}
      steps:
        - - name: pod
            template: pod
            arguments:
              parameters: [{name: code, value: "{{workflow.parameters.code}}"}]
    - name: pod
      inputs:
        parameters: [{name: code}]
      outputs:
        parameters:
          - name: out
            valueFrom: {path: /o/out, default: "dflt"}
      container:
        image: x
        command: [tool, "code={{inputs.parameters.code}}"]
"#;

    fn file(text: &str) -> ArgoFile {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p).unwrap().remove(0)
    }

    #[test]
    fn outputs_come_from_files_with_one_newline_dropped_or_the_default() {
        let f = file(WF);
        let params = f.parameters(&[]).unwrap();
        let mut pods = Pods(BTreeMap::from([(
            "inner.pod:/o/out".to_string(),
            "x\n\n".to_string(),
        )]));
        let o = f.run(&params, &mut pods).unwrap();
        assert_eq!(o.outputs["word"], "x\n");
        assert_eq!(o.trace(), ["inner.pod Succeeded", "after Succeeded"]);

        let o = f.run(&params, &mut Pods(BTreeMap::new())).unwrap();
        assert_eq!(o.outputs["word"], "dflt");
        assert_eq!(o.trace(), ["inner.pod Succeeded", "after Skipped"]);
    }

    #[test]
    fn a_failed_steps_template_has_no_outputs_to_read() {
        let f = file(WF);
        let params = f.parameters(&[("code".into(), "1".into())]).unwrap();
        let e = f
            .run(&params, &mut Pods(BTreeMap::new()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("step after: when `{{steps.inner.outputs.parameters.word}} == x`"),
            "{e}"
        );
        assert!(
            e.contains("step `inner` runs a steps template that failed: Argo computes no outputs"),
            "{e}"
        );
        // without continueOn the failure ends the workflow before anything reads them
        let f = file(&WF.replace("            continueOn: {failed: true}\n", ""));
        let o = f.run(&params, &mut Pods(BTreeMap::new())).unwrap();
        assert_eq!(o.phase, Phase::Failed);
        assert_eq!(o.trace(), ["inner.pod Failed"]);
        assert!(o.outputs.is_empty(), "{:?}", o.outputs);
    }

    #[test]
    fn listing_reaches_every_container_whatever_the_conditions() {
        let f = file(WF);
        let leaves = f.container_leaves(&f.parameters(&[]).unwrap()).unwrap();
        let nodes: Vec<_> = leaves.iter().map(|l| l.node.as_str()).collect();
        assert_eq!(nodes, ["inner.pod", "after"]);
        let recursive = WF.replace(
            "            template: pod\n            arguments:\n              parameters: [{name: code, value: \"{{workflow.parameters.code}}\"}]\n",
            "            template: inner\n",
        );
        assert_ne!(recursive, WF);
        let f = file(&recursive);
        let e = f
            .container_leaves(&f.parameters(&[]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("template inner calls itself"), "{e}");
    }
}
