//! The parts of Kubernetes' container spec the gate's manifests use (shared by Argo templates,
//! Jobs and other workloads). Unknown fields are ignored here: schemas are the validators' job.

use serde::Deserialize;

/// A container: what it runs and its environment.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: Option<String>,
    /// `command` (the entrypoint override).
    pub command: Vec<String>,
    /// `args`.
    pub args: Vec<String>,
    /// `env`.
    pub env: Vec<EnvVar>,
    /// `envFrom`.
    pub env_from: Vec<EnvFromSource>,
    /// `volumeMounts`.
    pub volume_mounts: Vec<VolumeMount>,
}

/// One `env` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// A literal value (possibly an Argo template).
    pub value: Option<String>,
    /// A value from a Secret, ConfigMap or field.
    pub value_from: Option<EnvVarSource>,
}

/// `env[].valueFrom`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    /// `secretKeyRef`.
    pub secret_key_ref: Option<KeyRef>,
    /// `configMapKeyRef`.
    pub config_map_key_ref: Option<KeyRef>,
}

/// A `secretKeyRef` / `configMapKeyRef`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyRef {
    /// The Secret or ConfigMap.
    pub name: String,
    /// The key.
    pub key: String,
    /// `optional: true`: a missing key leaves the variable unset.
    pub optional: Option<bool>,
}

/// One `envFrom` entry. Only `configMapRef` without a prefix is rendered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromSource {
    /// `configMapRef`.
    pub config_map_ref: Option<NameRef>,
    /// `secretRef` (its keys are unknown here: not rendered).
    pub secret_ref: Option<NameRef>,
    /// `prefix` (not rendered).
    pub prefix: Option<String>,
}

/// A reference by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NameRef {
    /// The referenced object's name.
    pub name: String,
}

/// One `volumeMounts` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    /// Volume name.
    pub name: String,
    /// Where it is mounted.
    pub mount_path: String,
}

/// Whether `image` is the gate's own image (`…/vllm-perf-gate[:tag]`), whose containers must run
/// one of the gate's binaries.
pub fn is_gate_image(image: &str) -> bool {
    let repo = match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    };
    repo.rsplit('/').next() == Some("vllm-perf-gate")
}

/// The program a container runs: the base name of `command[0]`, else of `args[0]`.
pub fn program(c: &Container) -> Option<(String, Vec<String>)> {
    let mut argv = c.command.iter().chain(&c.args).cloned();
    let first = argv.next()?;
    let name = first.rsplit('/').next().unwrap_or(&first).to_string();
    Some((name, argv.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_image_by_repository_name() {
        for yes in [
            "vllm-perf-gate",
            "vllm-perf-gate:dev",
            "registry.example.com/ml/vllm-perf-gate:0.1.0",
            "localhost:5000/vllm-perf-gate",
        ] {
            assert!(is_gate_image(yes), "{yes}");
        }
        for no in [
            "prom/prometheus:v2.53.4",
            "vllm-perf-gate-sidecar",
            "localhost:5000/x",
        ] {
            assert!(!is_gate_image(no), "{no}");
        }
    }
}
