//! Reading YAML files: every document of a multi-document file, with merge keys (`<<: *anchor`)
//! applied, as untyped values the kind-specific readers then deserialize.

use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_norway::Value;

use super::ManifestError;

/// The non-empty documents of `path`.
pub fn load_docs(path: &Path) -> Result<Vec<Value>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut docs = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let mut value = Value::deserialize(doc).map_err(|source| ManifestError::Yaml {
            path: path.to_path_buf(),
            what: format!("document {i} is not valid YAML"),
            source,
        })?;
        value.apply_merge().map_err(|source| ManifestError::Yaml {
            path: path.to_path_buf(),
            what: format!("document {i}: merge keys"),
            source,
        })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// `kind` of a document, if it has one.
pub fn kind(doc: &Value) -> Option<&str> {
    doc.get("kind").and_then(Value::as_str)
}

/// `Kind/name` of a Kubernetes document (or `generateName`), for messages.
pub fn label(doc: &Value) -> String {
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{}/{name}", kind(doc).unwrap_or("?"))
}

/// Deserializes `value` into `T`, naming `path` and `what` on failure.
pub fn typed<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    value: Value,
) -> Result<T, ManifestError> {
    serde_norway::from_value(value).map_err(|source| ManifestError::Yaml {
        path: path.to_path_buf(),
        what: what.to_string(),
        source,
    })
}
