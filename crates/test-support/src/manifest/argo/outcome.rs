//! The walk's contract with its caller: what it hands an [`Executor`] to run (a [`Leaf`], a
//! suspend), and the [`Outcome`] it returns (every node reached, the workflow's phase and
//! outputs).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::super::ManifestError;
use super::super::step::RenderedStep;

/// A node's phase, as Argo spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Ran and succeeded (a steps template: every group passed).
    Succeeded,
    /// A container exited non-zero, or a steps template stopped at a failed group.
    Failed,
    /// Its `when` was false.
    Skipped,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Skipped => "Skipped",
        })
    }
}

/// A file a container wrote: the node (step path, `attempt-1.load-test`) and the path in its pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactRef {
    /// The node that wrote it.
    pub node: String,
    /// Its path in that node's pod.
    pub path: String,
}

/// An input artifact of a container about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputArtifact {
    /// Its name.
    pub name: String,
    /// Where it lands in the pod.
    pub path: String,
    /// The earlier node's file it is; `None`: the artifact's own repository source (S3), which
    /// the executor provides.
    pub from: Option<ArtifactRef>,
}

/// A container about to run (or, when listing, that could run).
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The step path from the entrypoint (`attempt-1.load-test`), unique per run.
    pub node: String,
    /// The template it runs.
    pub template: String,
    /// Its command line and environment.
    pub step: RenderedStep,
    /// Its volume mounts (volume name, path in the pod).
    pub mounts: Vec<(String, String)>,
    /// Its input artifacts.
    pub inputs: Vec<InputArtifact>,
}

/// What runs the containers of a walk.
pub trait Executor {
    /// Runs `leaf` to its end; its exit code. `Err`: it could not be run at all.
    fn run(&mut self, leaf: &Leaf) -> Result<i32, String>;
    /// The text of the file `leaf` wrote at `path` in its pod; `None` when there is none.
    fn read(&mut self, leaf: &Leaf, path: &str) -> Result<Option<String>, String>;
    /// A `suspend` of `duration` at `node`.
    fn suspend(&mut self, node: &str, duration: &str) -> Result<(), String>;
}

/// The kind of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NodeKind {
    /// A steps template.
    Steps,
    /// A container.
    Container,
    /// A suspend.
    Suspend,
}

/// One node of a run, in the order the walk reached it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    /// The step path from the entrypoint (`""` for the entrypoint itself).
    pub node: String,
    /// The template.
    pub template: String,
    /// Its kind.
    pub kind: NodeKind,
    /// How it ended.
    pub phase: Phase,
    /// A container's exit code.
    pub exit_code: Option<i32>,
    /// The command line, the duration, or why it was skipped.
    pub detail: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The workflow's phase: its entrypoint's.
    pub phase: Phase,
    /// Every node reached, skipped ones included.
    pub nodes: Vec<NodeRecord>,
    /// The workflow's output parameters (`globalName`s).
    pub outputs: BTreeMap<String, String>,
    /// The workflow's output artifacts (`globalName`s).
    pub artifacts: BTreeMap<String, ArtifactRef>,
}

impl Outcome {
    /// The node at step path `node`.
    pub fn node(&self, node: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.node == node)
    }

    /// `node phase` of every container and suspend, and of every skipped node (steps nodes
    /// that ran are left out: their steps say it): the run at a glance.
    pub fn trace(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.kind != NodeKind::Steps || n.phase == Phase::Skipped)
            .map(|n| format!("{} {}", n.node, n.phase))
            .collect()
    }
}

/// Why a run could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The manifest holds something the walk does not run, or a reference it cannot resolve.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The executor could not run a node.
    #[error("node {node}: {message}")]
    Executor {
        /// The node.
        node: String,
        /// What the executor said.
        message: String,
    },
}
