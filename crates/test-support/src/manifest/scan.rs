//! Every command line the repository's manifests give a container of the gate's image, found by
//! reading every YAML file under `workflows/` and `deploy/`:
//!
//! - Argo: each WorkflowTemplate template as written (flags and env names; values are
//!   templates), and each Workflow that references a WorkflowTemplate rendered with its
//!   arguments, every container its entrypoint can reach (final values, but for those that come
//!   from an earlier step's output at run time, which stay as written);
//! - kustomize: each kustomization directory (base and overlays) built, each container rendered
//!   with its ConfigMap env (final values); the resource files it includes are not read again;
//! - other workloads (Job, Pod, ...) outside a kustomization, as written;
//! - Compose files: each service of the gate's image.
//!
//! Containers of other images are listed in [`Scan::foreign`]; a gate-image container must run
//! one of the gate's binaries, which [`crate::clicheck`] checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::argo::{self, ArgoFile};
use super::k8s::{self, is_gate_image};
use super::step::RenderedStep;
use super::{ManifestError, compose, kustomize, yaml};

/// One container's command line and environment as a manifest gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// File, document and container, for messages.
    pub origin: String,
    /// The program: base name of `argv[0]`.
    pub program: String,
    /// The arguments after `argv[0]`.
    pub args: Vec<String>,
    /// The environment: name, and value when the manifest gives one (`None`: from a Secret, or
    /// from a ConfigMap created at deploy time).
    pub env: Vec<(String, Option<String>)>,
    /// `true`: arguments and values are final; `false`: they may hold `{{...}}` templates.
    pub rendered: bool,
}

impl From<RenderedStep> for Invocation {
    fn from(s: RenderedStep) -> Self {
        let mut argv = s.argv.into_iter();
        let first = argv.next().unwrap_or_default();
        Invocation {
            origin: s.origin,
            program: first.rsplit('/').next().unwrap_or(&first).to_string(),
            args: argv.collect(),
            env: s
                .env
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .chain(s.secret_env.into_iter().map(|k| (k, None)))
                .chain(s.deploy_env.into_iter().map(|k| (k, None)))
                .collect(),
            rendered: true,
        }
    }
}

/// What [`scan`] found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Containers of the gate's image.
    pub invocations: Vec<Invocation>,
    /// Containers and services of other images (`origin (image …)`).
    pub foreign: Vec<String>,
    /// The YAML files read.
    pub files: Vec<PathBuf>,
}

/// Reads every manifest under `root/workflows` and `root/deploy`.
pub fn scan(root: &Path) -> Result<Scan, ManifestError> {
    let root = &root.canonicalize().map_err(|source| ManifestError::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for dir in ["workflows", "deploy"] {
        walk(&root.join(dir), &mut files)?;
    }
    files.sort();
    let mut out = Scan {
        files: files.clone(),
        ..Scan::default()
    };

    let mut in_kustomize = BTreeSet::new();
    for k in files.iter().filter(|f| {
        matches!(
            f.file_name().and_then(|n| n.to_str()),
            Some("kustomization.yaml" | "kustomization.yml")
        )
    }) {
        let dir = k.parent().unwrap_or(root);
        let build = kustomize::build(dir)?;
        in_kustomize.extend(build.files.iter().cloned());
        in_kustomize.insert(k.clone());
        for (file, label, c) in &build.containers {
            let image = c.image.clone().unwrap_or_default();
            if is_gate_image(&image) {
                out.invocations.push(build.render(&c.name, &[])?.into());
            } else {
                out.foreign.push(format!(
                    "{} (kustomize {}): {label} container {} (image {image})",
                    file.display(),
                    dir.display(),
                    c.name
                ));
            }
        }
    }

    let mut argo_files: Vec<ArgoFile> = Vec::new();
    for f in files.iter().filter(|f| !in_kustomize.contains(*f)) {
        let docs = yaml::load_docs(f)?;
        for doc in &docs {
            if compose::is_compose(doc) {
                let (ours, foreign) = compose::services(f, doc)?;
                out.invocations.extend(ours);
                out.foreign.extend(foreign);
            } else if let Some(cs) = kustomize::workload_containers(f, doc)? {
                for c in cs {
                    raw_container(f, &yaml::label(doc), &c, None, &mut out)?;
                }
            }
        }
        if docs.iter().any(argo::is_argo) {
            argo_files.extend(argo::load(f)?);
        }
    }

    for a in &argo_files {
        for t in &a.doc.spec.templates {
            if t.script.is_some() {
                return Err(ManifestError::invalid(
                    &a.path,
                    format!(
                        "{}: template {}: script templates are not read",
                        a.label(),
                        t.name
                    ),
                ));
            }
            if let Some(c) = &t.container {
                let image = a.default_image(t)?;
                raw_container(
                    &a.path,
                    &format!("{} template {}", a.label(), t.name),
                    c,
                    image,
                    &mut out,
                )?;
            }
        }
        if a.doc.kind != "Workflow" {
            continue;
        }
        let (wft, params) = match &a.doc.spec.workflow_template_ref {
            Some(r) => {
                let wft = argo_files
                    .iter()
                    .find(|w| {
                        w.doc.kind == "WorkflowTemplate"
                            && w.doc.metadata.name.as_deref() == Some(&r.name)
                    })
                    .ok_or_else(|| {
                        ManifestError::invalid(
                            &a.path,
                            format!(
                                "{}: WorkflowTemplate {} is not in workflows/ or deploy/",
                                a.label(),
                                r.name
                            ),
                        )
                    })?;
                (wft, argo::workflow_arguments(a, wft)?)
            }
            None => (a, a.parameters(&[])?),
        };
        for leaf in wft.container_leaves(&params)? {
            if !leaf.step.image.as_deref().is_some_and(is_gate_image) {
                continue;
            }
            let mut s = leaf.step;
            s.origin = format!("{}: {} runs {}", a.path.display(), a.label(), s.origin);
            out.invocations.push(s.into());
        }
    }
    Ok(out)
}

/// A container as written: gate image → an unrendered invocation; other image → foreign.
fn raw_container(
    path: &Path,
    what: &str,
    c: &k8s::Container,
    image: Option<String>,
    out: &mut Scan,
) -> Result<(), ManifestError> {
    let origin = match c.name.as_str() {
        "" => format!("{}: {what}", path.display()),
        name => format!("{}: {what} container {name}", path.display()),
    };
    let image = image.or_else(|| c.image.clone()).unwrap_or_default();
    if !is_gate_image(&image) {
        out.foreign.push(format!("{origin} (image {image})"));
        return Ok(());
    }
    if !c.env_from.is_empty() {
        return Err(ManifestError::invalid(
            path,
            format!(
                "{what} container {}: envFrom outside a kustomization cannot be resolved",
                c.name
            ),
        ));
    }
    let (program, args) = k8s::program(c).ok_or_else(|| {
        ManifestError::invalid(
            path,
            format!(
                "{what} container {}: runs the gate's image without a command",
                c.name
            ),
        )
    })?;
    if program.contains("{{") {
        return Err(ManifestError::invalid(
            path,
            format!("{what} container {}: the command is a template", c.name),
        ));
    }
    let rendered = !args
        .iter()
        .chain(c.env.iter().filter_map(|e| e.value.as_ref()))
        .any(|s| s.contains("{{"));
    out.invocations.push(Invocation {
        origin,
        program,
        args,
        env: c
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect(),
        rendered,
    });
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ManifestError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let p = e
            .map_err(|source| ManifestError::Read {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    Ok(())
}
