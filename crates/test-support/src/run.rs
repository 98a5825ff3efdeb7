//! Running the gate's binaries from tests as a pod would: a rendered step's exact argv and
//! environment (nothing inherited but `PATH` and `HOME`), a whole Argo walk's containers as
//! local processes ([`LocalPods`]), and finding a binary of another crate of the workspace next
//! to the test's own.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::manifest::RenderedStep;
use crate::manifest::argo::{Executor, Leaf};
use crate::manifest::step::map_path;

/// The workspace binary `name` next to `own` (a `CARGO_BIN_EXE_*` path, i.e. the target dir's
/// profile directory). An error says how to build it when it is missing.
pub fn sibling_bin(own: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = own
        .parent()
        .ok_or_else(|| format!("{} has no directory", own.display()))?;
    let bin = dir.join(name);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is not built: this test runs the workspace's binaries; run `cargo build --bins` (or `cargo nextest run --workspace`) first",
            bin.display()
        ))
    }
}

/// What a step did.
#[derive(Debug, Clone)]
pub struct StepRun {
    /// Exit code (`-1` when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `step` (its `argv[0]` a path: see [`RenderedStep::with_bin_dir`]) with exactly its
/// environment plus `PATH` and `HOME`, and writes the command and its output to `log`. Panics
/// when it cannot be started or the log written (tests).
pub fn run_step(step: &RenderedStep, log: &Path) -> StepRun {
    execute(step, log, None).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_step`], returning what went wrong instead of panicking, and with `echo` copying each
/// output line to stderr, after that prefix, as it comes.
pub fn execute(step: &RenderedStep, log: &Path, echo: Option<&str>) -> Result<StepRun, String> {
    let (bin, args) = step
        .argv
        .split_first()
        .ok_or_else(|| format!("{}: no command", step.origin))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .envs(step.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for keep in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {bin}: {e}"))?;
    let echo = echo.map(str::to_string);
    let collect = |pipe: Option<Box<dyn Read + Send>>| {
        let echo = echo.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(pipe.expect("invariant: the pipe is set up")).lines() {
                let line = line.unwrap_or_else(|e| format!("(unreadable output: {e})"));
                if let Some(prefix) = &echo {
                    eprintln!("{prefix}{line}");
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {bin}: {e}"))?;
    let run = StepRun {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    let env: Vec<String> = step.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = format!(
        "# {}\nenv -i PATH=... HOME=... {} {}\n# exit {}\n--- stdout\n{}--- stderr\n{}",
        step.origin,
        env.join(" "),
        step.argv.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    std::fs::write(log, text).map_err(|e| format!("{}: {e}", log.display()))?;
    Ok(run)
}

/// Runs an Argo walk's containers ([`crate::manifest::argo::ArgoFile::run`]) as local processes,
/// each as its pod would: `work_dir/<node>/` holds the node's volumes (`<node>/<volume>/`, e.g.
/// `attempt-1.load-test/output/`; `/tmp` is left alone) and its `log`; an input artifact passed
/// from an earlier node is that node's file; other pod paths come from `maps` (an S3 input
/// artifact's path → a local file). A suspend sleeps its duration.
#[derive(Debug)]
pub struct LocalPods {
    /// Where the binaries the containers run are.
    pub bin_dir: PathBuf,
    /// One directory per node under it.
    pub work_dir: PathBuf,
    /// Pod path → local path, for what no node writes (e.g. `/data/eval.jsonl`).
    pub maps: Vec<(String, String)>,
    /// Copy each container's output lines to stderr as they come (`    | ` before each).
    pub echo: bool,
    /// Each node's pod paths → local paths, once it has run.
    nodes: BTreeMap<String, Vec<(String, String)>>,
}

impl LocalPods {
    /// Pods for binaries in `bin_dir`, node directories under `work_dir`.
    pub fn new(bin_dir: &Path, work_dir: &Path, maps: Vec<(String, String)>) -> Self {
        LocalPods {
            bin_dir: bin_dir.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            maps,
            echo: false,
            nodes: BTreeMap::new(),
        }
    }

    /// The local directory of `node`'s volume `volume` (e.g. `attempt-1.load-test`, `output`).
    pub fn volume(&self, node: &str, volume: &str) -> PathBuf {
        self.work_dir.join(node).join(volume)
    }

    /// The local path of `path` in `node`'s pod, once the node has run.
    pub fn local(&self, node: &str, path: &str) -> Option<PathBuf> {
        self.nodes
            .get(node)
            .and_then(|maps| map_path(path, maps))
            .map(PathBuf::from)
    }

    fn maps_for(&self, leaf: &Leaf) -> Result<Vec<(String, String)>, String> {
        let mut maps = Vec::new();
        for (volume, mount) in &leaf.mounts {
            if mount != "/tmp" {
                let dir = self.volume(&leaf.node, volume);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                maps.push((mount.clone(), dir.display().to_string()));
            }
        }
        for a in &leaf.inputs {
            let local = match &a.from {
                Some(from) => self.local(&from.node, &from.path).ok_or_else(|| {
                    format!(
                        "input artifact {}: node {} has not run (or did not mount {})",
                        a.name, from.node, from.path
                    )
                })?,
                None => map_path(&a.path, &self.maps).map(PathBuf::from).ok_or_else(|| {
                    format!(
                        "input artifact {} ({}) comes from the artifact repository: give a map for it",
                        a.name, a.path
                    )
                })?,
            };
            maps.push((a.path.clone(), local.display().to_string()));
        }
        maps.extend(self.maps.iter().cloned());
        Ok(maps)
    }
}

impl Executor for LocalPods {
    fn run(&mut self, leaf: &Leaf) -> Result<i32, String> {
        let maps = self.maps_for(leaf)?;
        let step = leaf
            .step
            .clone()
            .map_paths(&maps)
            .and_then(|s| s.with_bin_dir(&self.bin_dir))?;
        self.nodes.insert(leaf.node.clone(), maps);
        let log = self.work_dir.join(&leaf.node).join("log");
        let echo = self.echo.then_some("    | ");
        if self.echo {
            eprintln!("--- {} ({})", leaf.node, step.argv.join(" "));
        }
        Ok(execute(&step, &log, echo)?.code)
    }

    fn read(&mut self, leaf: &Leaf, path: &str) -> Result<Option<String>, String> {
        let local = self
            .local(&leaf.node, path)
            .ok_or_else(|| format!("{path} is under none of the node's volumes"))?;
        match std::fs::read_to_string(&local) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", local.display())),
        }
    }

    fn suspend(&mut self, node: &str, duration: &str) -> Result<(), String> {
        let d = parse_duration(duration).ok_or_else(|| format!("duration {duration:?}"))?;
        if self.echo {
            eprintln!("--- {node}: suspended for {duration}");
        }
        std::thread::sleep(d);
        Ok(())
    }
}

/// Argo's suspend durations: bare seconds (`30`) or a duration (`2m`, `90s`).
fn parse_duration(text: &str) -> Option<Duration> {
    text.parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        .or_else(|| humantime::parse_duration(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::argo::{ArtifactRef, InputArtifact};

    fn leaf(node: &str, inputs: Vec<InputArtifact>) -> Leaf {
        Leaf {
            node: node.into(),
            template: "t".into(),
            step: RenderedStep {
                origin: "wf.yaml: template t".into(),
                image: None,
                argv: vec!["true".into()],
                env: vec![],
                secret_env: vec![],
                deploy_env: vec![],
                paths: vec![("volume output".into(), "/output".into())],
            },
            mounts: vec![
                ("output".into(), "/output".into()),
                ("tmp".into(), "/tmp".into()),
            ],
            inputs,
        }
    }

    #[test]
    fn each_node_gets_its_volumes_and_reads_what_an_earlier_node_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut pods = LocalPods::new(Path::new("/nonexistent"), dir.path(), vec![]);
        let first = leaf("a.first", vec![]);
        let maps = pods.maps_for(&first).unwrap();
        assert_eq!(
            maps,
            [(
                "/output".to_string(),
                dir.path().join("a.first/output").display().to_string()
            )]
        );
        assert!(dir.path().join("a.first/output").is_dir());
        pods.nodes.insert("a.first".into(), maps);
        std::fs::write(dir.path().join("a.first/output/r.json"), "{}\n").unwrap();
        assert_eq!(
            pods.read(&first, "/output/r.json").unwrap().as_deref(),
            Some("{}\n")
        );
        assert_eq!(pods.read(&first, "/output/none").unwrap(), None);

        let from_first = InputArtifact {
            name: "r".into(),
            path: "/input/r.json".into(),
            from: Some(ArtifactRef {
                node: "a.first".into(),
                path: "/output/r.json".into(),
            }),
        };
        let maps = pods.maps_for(&leaf("a.second", vec![from_first])).unwrap();
        assert!(
            maps.contains(&(
                "/input/r.json".to_string(),
                dir.path()
                    .join("a.first/output/r.json")
                    .display()
                    .to_string()
            ))
        );
    }

    #[test]
    fn a_repository_artifact_needs_a_map_and_a_missing_binary_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut pods = LocalPods::new(dir.path(), dir.path(), vec![]);
        let s3 = InputArtifact {
            name: "eval-data".into(),
            path: "/data/eval.jsonl".into(),
            from: None,
        };
        let e = pods.run(&leaf("x", vec![s3.clone()])).unwrap_err();
        assert!(
            e.contains(
                "input artifact eval-data (/data/eval.jsonl) comes from the artifact repository"
            ),
            "{e}"
        );
        pods.maps = vec![("/data/eval.jsonl".into(), "/here/eval.jsonl".into())];
        let e = pods.run(&leaf("x", vec![s3])).unwrap_err();
        assert!(
            e.contains("true (the container's command) is not built"),
            "{e}"
        );
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("soon"), None);
    }
}
