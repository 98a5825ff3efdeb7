//! A rendered step: the exact command line and environment a pod would run, and the paths in the
//! pod it reads or writes; plus mapping those paths to local ones, so a test runs the binary as
//! the cluster would, on local files.

use std::path::Path;

/// One container of a manifest, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedStep {
    /// Where it comes from (file, document, template or container), for messages.
    pub origin: String,
    /// The container's image, rendered (`None` when the manifest names none).
    pub image: Option<String>,
    /// `command` + `args`, rendered; `argv[0]` as the manifest names it.
    pub argv: Vec<String>,
    /// The environment the container gets: literal values, ConfigMap keys. Variables from
    /// optional Secrets are left out, as Kubernetes does when the key is absent.
    pub env: Vec<(String, String)>,
    /// Names of the variables from optional Secrets (left out of `env`).
    pub secret_env: Vec<String>,
    /// Names of the variables from a ConfigMap the manifests do not hold (created when the gate is
    /// deployed, e.g. the sharded Jobs' START_AT): set at run time, their values unknown here.
    pub deploy_env: Vec<String>,
    /// Paths in the pod the step reads or writes (`what`, path): input artifacts, output
    /// parameters and artifacts, volume mounts.
    pub paths: Vec<(String, String)>,
}

impl RenderedStep {
    /// Rewrites every path under a `maps` source (`/output` → `/tmp/x/out`) in the arguments
    /// (whole values and the value of `--flag=VALUE`) and env values. Every path in
    /// [`RenderedStep::paths`] must be under a map (else the step would read or write a file
    /// the test does not look at); `/tmp` is left alone.
    pub fn map_paths(mut self, maps: &[(String, String)]) -> Result<Self, String> {
        for (what, path) in &self.paths {
            if path != "/tmp" && map_path(path, maps).is_none() {
                return Err(format!(
                    "{}: {what} {path} is not under any mapped path ({})",
                    self.origin,
                    maps.iter()
                        .map(|(s, _)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        for a in self.argv.iter_mut().skip(1) {
            *a = map_value(a, maps);
        }
        for (_, v) in &mut self.env {
            *v = map_value(v, maps);
        }
        for (_, p) in &mut self.paths {
            if let Some(m) = map_path(p, maps) {
                *p = m;
            }
        }
        Ok(self)
    }

    /// Replaces `argv[0]` by `bin_dir/<its base name>`, which must be an executable file.
    pub fn with_bin_dir(mut self, bin_dir: &Path) -> Result<Self, String> {
        let name = self
            .argv
            .first()
            .ok_or_else(|| format!("{}: no command", self.origin))?;
        let name = name.rsplit('/').next().unwrap_or(name).to_string();
        let bin = bin_dir.join(&name);
        if !bin.is_file() {
            return Err(format!(
                "{}: {} (the container's command) is not built; run `cargo build --bins`",
                self.origin,
                bin.display()
            ));
        }
        self.argv[0] = bin.display().to_string();
        Ok(self)
    }
}

/// `value` (a path in the pod) under the first map whose source contains it, or `None`.
pub fn map_path(value: &str, maps: &[(String, String)]) -> Option<String> {
    maps.iter().find_map(|(src, dst)| {
        let src = src.trim_end_matches('/');
        if value == src {
            Some(dst.clone())
        } else {
            value
                .strip_prefix(src)
                .filter(|rest| rest.starts_with('/'))
                .map(|rest| format!("{}{rest}", dst.trim_end_matches('/')))
        }
    })
}

fn map_value(value: &str, maps: &[(String, String)]) -> String {
    if let Some(m) = map_path(value, maps) {
        return m;
    }
    if let Some((flag, rest)) = value.split_once('=').filter(|(f, _)| f.starts_with("--"))
        && let Some(m) = map_path(rest, maps)
    {
        return format!("{flag}={m}");
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> RenderedStep {
        RenderedStep {
            origin: "wf.yaml: template t".into(),
            image: None,
            argv: vec![
                "load-test".into(),
                "--eval-data-path=/data/eval.jsonl".into(),
                "--output-dir=/output".into(),
                "/output".into(),
                "--other=/outputs".into(),
            ],
            env: vec![("OUTPUT_DIR".into(), "/output/x".into())],
            secret_env: vec![],
            deploy_env: vec![],
            paths: vec![
                (
                    "input artifact eval-data at".into(),
                    "/data/eval.jsonl".into(),
                ),
                (
                    "output parameter status at".into(),
                    "/output/status.txt".into(),
                ),
                ("volume tmp at".into(), "/tmp".into()),
            ],
        }
    }

    #[test]
    fn maps_whole_values_and_flag_values_under_a_prefix() {
        let maps = vec![
            ("/data/eval.jsonl".to_string(), "/w/eval.jsonl".to_string()),
            ("/output/".to_string(), "/w/out".to_string()),
        ];
        let s = step().map_paths(&maps).unwrap();
        assert_eq!(
            s.argv,
            [
                "load-test",
                "--eval-data-path=/w/eval.jsonl",
                "--output-dir=/w/out",
                "/w/out",
                "--other=/outputs"
            ]
        );
        assert_eq!(s.env, [("OUTPUT_DIR".to_string(), "/w/out/x".to_string())]);
        assert_eq!(s.paths[1].1, "/w/out/status.txt");
    }

    #[test]
    fn an_unmapped_path_is_an_error() {
        let e = step()
            .map_paths(&[("/output".to_string(), "/w/out".to_string())])
            .unwrap_err();
        assert!(
            e.contains("input artifact eval-data at /data/eval.jsonl is not under any mapped path"),
            "{e}"
        );
    }
}
