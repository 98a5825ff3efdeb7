//! The one error type of the manifest reader and renderer: every message starts with the file.

use std::path::PathBuf;

/// Why a manifest could not be read or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{}: cannot read", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML, or a document does not have the shape the reader expects.
    #[error("{}: {what}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Which document or field.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_norway::Error,
    },
    /// The manifest uses something the renderer does not render, or is inconsistent.
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file (or kustomization directory).
        path: PathBuf,
        /// What is wrong, naming the document, field or expression.
        what: String,
    },
}

impl ManifestError {
    /// An [`ManifestError::Invalid`] for `path`.
    pub fn invalid(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        ManifestError::Invalid {
            path: path.into(),
            what: what.into(),
        }
    }
}
