//! A kustomization as `kubectl kustomize` builds it, for the features the gate's use: resources
//! (files and base directories), `configMapGenerator` literals and files with `behavior`
//! create / merge / replace, and the fields that do not change a container's command line or
//! environment (`namespace`, `labels`, `images`). A container's env may come from a literal, an
//! optional `secretKeyRef` (name only) or a `configMapKeyRef`: a key of a generated ConfigMap is
//! its value, a ConfigMap the kustomization does not hold is created at deploy time (name only,
//! [`RenderedStep::deploy_env`]). Any other kustomize feature (patches,
//! replacements, secretGenerator, ...) is an error naming it, so a test never runs a Job that
//! the real build would change.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use super::k8s::Container;
use super::step::RenderedStep;
use super::{ManifestError, yaml};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kustomization {
    #[serde(rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(rename = "kind")]
    _kind: Option<String>,
    #[serde(rename = "namespace")]
    _namespace: Option<String>,
    #[serde(rename = "labels")]
    _labels: Option<Value>,
    #[serde(rename = "images")]
    _images: Option<Value>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    config_map_generator: Vec<Generator>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Generator {
    name: String,
    behavior: Option<String>,
    #[serde(default)]
    literals: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
}

/// A built kustomization: its workloads' containers and its ConfigMaps.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// The kustomization directory.
    pub dir: PathBuf,
    /// Every resource file included (directly or through a base).
    pub files: Vec<PathBuf>,
    /// (file, `Kind/name`, container) of every workload container.
    pub containers: Vec<(PathBuf, String, Container)>,
    /// ConfigMaps: name → (key, value) in order. A key from `files` has the file's path as value.
    pub config_maps: Vec<(String, Vec<(String, String)>)>,
}

/// Kinds whose pod template holds containers, with the path to the pod spec.
const WORKLOADS: &[(&str, &[&str])] = &[
    ("Pod", &["spec"]),
    ("Job", &["spec", "template", "spec"]),
    (
        "CronJob",
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ),
    ("Deployment", &["spec", "template", "spec"]),
    ("StatefulSet", &["spec", "template", "spec"]),
    ("DaemonSet", &["spec", "template", "spec"]),
];

/// The containers (init containers first) of a workload document; `None` for other kinds.
pub fn workload_containers(
    path: &Path,
    doc: &Value,
) -> Result<Option<Vec<Container>>, ManifestError> {
    let Some(kind) = yaml::kind(doc) else {
        return Ok(None);
    };
    let Some((_, spec_path)) = WORKLOADS.iter().find(|(k, _)| *k == kind) else {
        return Ok(None);
    };
    let pod = spec_path.iter().try_fold(doc, |v, k| v.get(*k));
    let Some(pod) = pod else {
        return Err(ManifestError::invalid(
            path,
            format!("{}: no {}", yaml::label(doc), spec_path.join(".")),
        ));
    };
    let mut out = Vec::new();
    for key in ["initContainers", "containers"] {
        if let Some(list) = pod.get(key) {
            let what = format!("{}: {key}", yaml::label(doc));
            let cs: Vec<Container> = yaml::typed(path, &what, list.clone())?;
            out.extend(cs);
        }
    }
    Ok(Some(out))
}

/// Builds the kustomization in `dir`.
pub fn build(dir: &Path) -> Result<Build, ManifestError> {
    let kfile = ["kustomization.yaml", "kustomization.yml"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| ManifestError::invalid(dir, "no kustomization.yaml"))?;
    let docs = yaml::load_docs(&kfile)?;
    let [doc] = <[Value; 1]>::try_from(docs).map_err(|d| {
        ManifestError::invalid(&kfile, format!("{} documents, expected one", d.len()))
    })?;
    let k: Kustomization = yaml::typed(&kfile, "kustomization", doc)?;
    let mut out = Build {
        dir: dir.to_path_buf(),
        ..Build::default()
    };
    for res in &k.resources {
        let p = normalize(&dir.join(res));
        if p.is_dir() {
            let base = build(&p)?;
            out.files.extend(base.files);
            out.containers.extend(base.containers);
            for (name, data) in base.config_maps {
                if out.config_maps.iter().any(|(n, _)| *n == name) {
                    return Err(ManifestError::invalid(
                        &kfile,
                        format!("ConfigMap {name} generated twice"),
                    ));
                }
                out.config_maps.push((name, data));
            }
        } else if p.is_file() {
            for doc in yaml::load_docs(&p)? {
                if let Some(cs) = workload_containers(&p, &doc)? {
                    let label = yaml::label(&doc);
                    out.containers
                        .extend(cs.into_iter().map(|c| (p.clone(), label.clone(), c)));
                }
            }
            out.files.push(p);
        } else {
            return Err(ManifestError::invalid(
                &kfile,
                format!("resource {res} is neither a file nor a directory"),
            ));
        }
    }
    for g in &k.config_map_generator {
        let mut data = Vec::new();
        for lit in &g.literals {
            let (key, value) = lit.split_once('=').ok_or_else(|| {
                ManifestError::invalid(
                    &kfile,
                    format!(
                        "configMapGenerator {}: literal `{lit}` is not KEY=VALUE",
                        g.name
                    ),
                )
            })?;
            upsert(&mut data, key, value);
        }
        for f in &g.files {
            let (key, file) = f
                .split_once('=')
                .unwrap_or((f.rsplit('/').next().unwrap_or(f), f));
            let file = dir.join(file);
            if !file.is_file() {
                return Err(ManifestError::invalid(
                    &kfile,
                    format!(
                        "configMapGenerator {}: file {} does not exist",
                        g.name,
                        file.display()
                    ),
                ));
            }
            upsert(&mut data, key, &file.display().to_string());
        }
        let existing = out.config_maps.iter_mut().find(|(n, _)| *n == g.name);
        match (g.behavior.as_deref().unwrap_or("create"), existing) {
            ("create", None) => out.config_maps.push((g.name.clone(), data)),
            ("merge", Some((_, old))) => {
                for (k, v) in data {
                    upsert(old, &k, &v);
                }
            }
            ("replace", Some((_, old))) => *old = data,
            (behavior, existing) => {
                return Err(ManifestError::invalid(
                    &kfile,
                    format!(
                        "configMapGenerator {}: behavior {behavior} {}",
                        g.name,
                        if existing.is_some() {
                            "of a ConfigMap a base already generates"
                        } else {
                            "of a ConfigMap no base generates"
                        }
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// `a/b/../c` → `a/c` (lexically: messages name `base/job.yaml`, not `overlay/../base/job.yaml`).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn upsert(data: &mut Vec<(String, String)>, key: &str, value: &str) {
    match data.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value.to_string(),
        None => data.push((key.to_string(), value.to_string())),
    }
}

impl Build {
    /// The ConfigMap `name`'s data.
    pub fn config_map(&self, name: &str) -> Option<&[(String, String)]> {
        self.config_maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
    }

    /// Renders the container named `container`: its command, and its environment from the
    /// `envFrom` ConfigMaps (with `set` overriding keys they hold; a key they do not hold is an
    /// error) and `env`.
    pub fn render(
        &self,
        container: &str,
        set: &[(String, String)],
    ) -> Result<RenderedStep, ManifestError> {
        let matches: Vec<_> = self
            .containers
            .iter()
            .filter(|(_, _, c)| c.name == container)
            .collect();
        let [(file, label, c)] = matches.as_slice() else {
            return Err(ManifestError::invalid(
                &self.dir,
                format!(
                    "{} containers named `{container}`, expected one",
                    matches.len()
                ),
            ));
        };
        let origin = format!(
            "{} (kustomize {}): {label} container {}",
            file.display(),
            self.dir.display(),
            c.name
        );
        let invalid = |what: String| {
            ManifestError::invalid(file, format!("{label} container {}: {what}", c.name))
        };
        let mut env: Vec<(String, String)> = Vec::new();
        let mut unused: Vec<&(String, String)> = set.iter().collect();
        for from in &c.env_from {
            let (Some(cm), None, None) = (&from.config_map_ref, &from.secret_ref, &from.prefix)
            else {
                return Err(invalid(
                    "envFrom: only configMapRef without a prefix is rendered".into(),
                ));
            };
            let data = self.config_map(&cm.name).ok_or_else(|| {
                invalid(format!(
                    "envFrom: ConfigMap {} is not generated by {}",
                    cm.name,
                    self.dir.display()
                ))
            })?;
            for (k, v) in data {
                let v = match set.iter().find(|(sk, _)| sk == k) {
                    Some(s) => {
                        unused.retain(|u| u.0 != *k);
                        s.1.clone()
                    }
                    None => v.clone(),
                };
                upsert(&mut env, k, &v);
            }
        }
        if let Some((k, _)) = unused.first() {
            return Err(invalid(format!(
                "no envFrom ConfigMap holds `{k}` (has: {})",
                env.iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut secret_env = Vec::new();
        let mut deploy_env = Vec::new();
        for e in &c.env {
            let cm_ref = e
                .value_from
                .as_ref()
                .and_then(|f| f.config_map_key_ref.as_ref());
            match (&e.value, &e.value_from, cm_ref) {
                (Some(v), None, _) => upsert(&mut env, &e.name, v),
                (None, Some(from), _)
                    if from
                        .secret_key_ref
                        .as_ref()
                        .is_some_and(|s| s.optional == Some(true)) =>
                {
                    secret_env.push(e.name.clone());
                }
                // a key of a ConfigMap this kustomization generates: its value
                (None, Some(_), Some(r)) if self.config_map(&r.name).is_some() => {
                    let data = self.config_map(&r.name).unwrap_or_default();
                    match data.iter().find(|(k, _)| *k == r.key) {
                        Some((_, v)) => upsert(&mut env, &e.name, v),
                        None if r.optional == Some(true) => {}
                        None => {
                            return Err(invalid(format!(
                                "env {}: ConfigMap {} has no key {}",
                                e.name, r.name, r.key
                            )));
                        }
                    }
                }
                // a ConfigMap created when the gate is deployed: known at run time only
                (None, Some(_), Some(_)) => deploy_env.push(e.name.clone()),
                _ => {
                    return Err(invalid(format!(
                        "env {} comes from a source this renderer cannot provide (only literal values, optional secretKeyRefs and configMapKeyRefs)",
                        e.name
                    )));
                }
            }
        }
        if env.iter().any(|(_, v)| v.contains("{{")) || c.args.iter().any(|a| a.contains("{{")) {
            return Err(invalid(
                "holds `{{`: Argo templates do not render in a Job".into(),
            ));
        }
        Ok(RenderedStep {
            origin,
            image: c.image.clone(),
            argv: c.command.iter().chain(&c.args).cloned().collect(),
            env,
            secret_env,
            deploy_env,
            paths: c
                .volume_mounts
                .iter()
                .map(|m| (format!("volume {}", m.name), m.mount_path.clone()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base");
        let overlay = d.path().join("overlay");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&overlay).unwrap();
        std::fs::write(
            base.join("kustomization.yaml"),
            "resources: [job.yaml]\nconfigMapGenerator:\n  - name: env\n    literals: [A=1, B=2]\n",
        )
        .unwrap();
        std::fs::write(
            base.join("job.yaml"),
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers:\n        - name: step\n          command: [load-test]\n          envFrom: [{configMapRef: {name: env}}]\n          env: [{name: C, value: '3'}]\n          volumeMounts: [{name: out, mountPath: /results}]\n",
        )
        .unwrap();
        std::fs::write(
            overlay.join("kustomization.yaml"),
            "resources: [../base]\nconfigMapGenerator:\n  - name: env\n    behavior: merge\n    literals: [B=20, D=4]\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn an_overlay_merges_its_literals_into_the_base() {
        let d = tree();
        let b = build(&d.path().join("overlay")).unwrap();
        let s = b.render("step", &[("A".into(), "10".into())]).unwrap();
        let env: Vec<_> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(env, ["A=10", "B=20", "D=4", "C=3"]);
        assert_eq!(s.argv, ["load-test"]);
        assert_eq!(
            s.paths,
            [("volume out".to_string(), "/results".to_string())]
        );
        let e = b
            .render("step", &[("NOPE".into(), "1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no envFrom ConfigMap holds `NOPE` (has: A, B, D)"),
            "{e}"
        );
    }

    #[test]
    fn config_map_key_refs_read_a_generated_map_or_are_known_at_deploy_time() {
        let d = tree();
        let job = d.path().join("base/job.yaml");
        let text = std::fs::read_to_string(&job).unwrap().replace(
            "env: [{name: C, value: '3'}]",
            "env: [{name: C, valueFrom: {configMapKeyRef: {name: env, key: B}}}, {name: T, valueFrom: {configMapKeyRef: {name: made-later, key: T}}}]",
        );
        std::fs::write(&job, &text).unwrap();
        let s = build(&d.path().join("overlay"))
            .unwrap()
            .render("step", &[])
            .unwrap();
        let env: Vec<_> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // C: the overlay's B; T: from a ConfigMap the kustomization does not generate
        assert_eq!(env, ["A=1", "B=20", "D=4", "C=20"]);
        assert_eq!(s.deploy_env, ["T"]);
        std::fs::write(&job, text.replace("key: B}", "key: Z}")).unwrap();
        let e = build(&d.path().join("overlay"))
            .unwrap()
            .render("step", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("env C: ConfigMap env has no key Z"), "{e}");
    }

    #[test]
    fn a_feature_it_does_not_build_is_an_error() {
        let d = tree();
        let k = d.path().join("overlay/kustomization.yaml");
        std::fs::write(&k, "resources: [../base]\npatches: [{path: p.yaml}]\n").unwrap();
        let e = build(&d.path().join("overlay")).unwrap_err();
        let text = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(text.starts_with(&k.display().to_string()), "{text}");
        assert!(text.contains("unknown field `patches`"), "{text}");
        std::fs::write(&k, "resources: [../base]\nconfigMapGenerator: [{name: other, behavior: merge, literals: [X=1]}]\n").unwrap();
        let e = build(&d.path().join("overlay")).unwrap_err().to_string();
        assert!(
            e.contains("behavior merge of a ConfigMap no base generates"),
            "{e}"
        );
    }
}
