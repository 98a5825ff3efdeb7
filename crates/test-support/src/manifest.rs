//! The deployment manifests (`workflows/`, `deploy/`) read the way Argo, kustomize and Compose
//! read them: one reader and one strict renderer, shared by the manifest checks
//! ([`crate::clicheck`]), the end-to-end test (which runs the steps as the manifests do) and the
//! `vpg-render` tool the scripts call.
//!
//! Strict means: anything the renderer does not understand (an expression outside the subset in
//! [`expr`] or [`when`], an Argo field [`argo`] does not run, a kustomize feature, an env source)
//! is an error naming the file and the expression or field, never a guess.

pub mod argo;
pub mod compose;
mod error;
pub mod expr;
pub mod k8s;
pub mod kustomize;
pub mod scan;
pub mod step;
pub mod when;
pub mod yaml;

pub use error::ManifestError;
pub use scan::{Invocation, Scan, scan};
pub use step::RenderedStep;
