//! Argo WorkflowTemplates and Workflows, read strictly and run the way Argo runs them.
//!
//! - [`doc`]: the documents. Every field the gate's manifests use is typed; a field this reader
//!   does not know (an `onExit`, a DAG, a `withItems`, a `podSpecPatch`) is an error naming it,
//!   and the few that change neither a command line nor the control flow (deadlines, retry
//!   strategies, volumes, the mutex) are read and left alone.
//! - [`render`]: one container rendered: the workflow's parameters flow through each step's
//!   arguments into the template's inputs, and from there into the container's image, command,
//!   args and env ([`super::expr`] renders every `{{...}}`).
//! - [`walk`]: the entrypoint run step by step: `when` conditions ([`super::when`]), `continueOn`,
//!   nested steps templates and their outputs, `suspend`, output parameters read from the files
//!   the containers wrote, artifacts passed between steps, global outputs. An
//!   [`outcome::Executor`] runs the containers (real processes, or a test's stand-in) and the
//!   walk returns an [`outcome::Outcome`]; every container the entrypoint can reach is also
//!   listed without running anything, for the flag checks.

pub mod doc;
pub mod outcome;
pub mod render;
pub mod walk;

pub use doc::{ArgoDoc, ArgoFile, Template, is_argo, load, workflow_arguments};
pub use outcome::{
    ArtifactRef, Executor, InputArtifact, Leaf, NodeKind, NodeRecord, Outcome, Phase, RunError,
};
