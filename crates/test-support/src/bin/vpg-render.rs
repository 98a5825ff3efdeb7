//! `vpg-render`: the deployment manifests run as the cluster would run them, for the scripts (the
//! tests call `test_support::manifest` directly).
//!
//! ```text
//! vpg-render job --kustomization deploy/kustomize/base --step perf-decision \
//!     --set MODEL_NAME=tiny-lora ... --map /results=/tmp/res --bin-dir target/debug --print env
//! vpg-render argo-run --workflow workflows/vllm-perf-gate.yaml --set vllm-url=http://127.0.0.1:8000 ... \
//!     --map /data/eval.jsonl=/tmp/eval.jsonl --work-dir /tmp/v1 --bin-dir target/debug
//! ```
//!
//! `job`: one container of a kustomization's Jobs (an init container included), NUL-terminated
//! items, never shell code (read them with `mapfile -d ''`): `--print argv` gives `argv[0]` (the
//! binary in `--bin-dir`) and the arguments, `--print env` `NAME=VALUE` items (variables from
//! optional Secrets left out).
//!
//! `argo-run`: the WorkflowTemplate's entrypoint walked as Argo walks it (`when`, `continueOn`,
//! nested steps templates, `suspend`, outputs), each container run as a local process with its
//! exact command line and environment; node `N` gets `--work-dir/N/` (its volumes, e.g.
//! `attempt-1.load-test/output/`, and its `log`). Prints the nodes as they end and writes
//! `--work-dir/outcome.json` (phase, nodes, workflow outputs). Exit 0 when the workflow
//! succeeded, 1 when it failed, 2 when it could not be rendered or run.
//!
//! Anything the renderer does not understand fails, naming the file and the expression.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use test_support::manifest::argo::{self, Phase};
use test_support::manifest::kustomize;
use test_support::run::LocalPods;

#[derive(Parser)]
#[command(
    name = "vpg-render",
    about = "Run the deployment manifests' steps as the cluster would"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One container of a kustomization's Jobs, as NUL-separated items.
    Job {
        /// Container name: resolve-candidate, load-test or perf-decision.
        #[arg(long)]
        step: String,
        /// The kustomization directory.
        #[arg(long, default_value = "deploy/kustomize/base")]
        kustomization: PathBuf,
        /// Where the binaries the containers run are.
        #[arg(long)]
        bin_dir: PathBuf,
        /// NAME=VALUE: a ConfigMap key (one the ConfigMaps do not hold is an error).
        #[arg(long = "set", value_parser = pair)]
        set: Vec<(String, String)>,
        /// SRC=DST: a path in the pod and where it is here; every volume of the container must
        /// be under one.
        #[arg(long = "map", value_parser = pair)]
        map: Vec<(String, String)>,
        /// What to print.
        #[arg(long)]
        print: Print,
    },
    /// The WorkflowTemplate's entrypoint, every container run as a local process.
    ArgoRun {
        /// The WorkflowTemplate file.
        #[arg(long, default_value = "workflows/vllm-perf-gate.yaml")]
        workflow: PathBuf,
        /// Where the binaries the containers run are.
        #[arg(long)]
        bin_dir: PathBuf,
        /// One directory per node under it, and outcome.json.
        #[arg(long)]
        work_dir: PathBuf,
        /// NAME=VALUE: a workflow parameter (one the template does not declare is an error).
        #[arg(long = "set", value_parser = pair)]
        set: Vec<(String, String)>,
        /// SRC=DST: a pod path no node writes (an S3 input artifact's) and the local file.
        #[arg(long = "map", value_parser = pair)]
        map: Vec<(String, String)>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Print {
    /// The command line.
    Argv,
    /// The environment, NAME=VALUE.
    Env,
}

fn pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Job {
            step,
            kustomization,
            bin_dir,
            set,
            map,
            print,
        } => job(&step, &kustomization, &bin_dir, &set, &map, print).map(|()| ExitCode::SUCCESS),
        Command::ArgoRun {
            workflow,
            bin_dir,
            work_dir,
            set,
            map,
        } => argo_run(&workflow, &bin_dir, &work_dir, &set, map),
    };
    result.unwrap_or_else(|e| {
        eprintln!("vpg-render: error: {e:#}");
        ExitCode::from(2)
    })
}

fn job(
    step: &str,
    kustomization: &std::path::Path,
    bin_dir: &std::path::Path,
    set: &[(String, String)],
    map: &[(String, String)],
    print: Print,
) -> anyhow::Result<()> {
    let rendered = kustomize::build(kustomization)
        .and_then(|b| b.render(step, set))
        .map_err(anyhow::Error::from)
        .and_then(|s| s.map_paths(map).map_err(anyhow::Error::msg))
        .and_then(|s| s.with_bin_dir(bin_dir).map_err(anyhow::Error::msg))
        .with_context(|| format!("cannot render step {step}"))?;
    let items: Vec<String> = match print {
        Print::Argv => rendered.argv,
        Print::Env => rendered
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    for item in items {
        if item.contains('\0') {
            bail!("a rendered value holds a NUL byte: {item:?}");
        }
        out.write_all(item.as_bytes())?;
        out.write_all(b"\0")?;
    }
    Ok(())
}

fn argo_run(
    workflow: &std::path::Path,
    bin_dir: &std::path::Path,
    work_dir: &std::path::Path,
    set: &[(String, String)],
    map: Vec<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let files = argo::load(workflow)?;
    let templates: Vec<_> = files
        .iter()
        .filter(|f| f.doc.kind == "WorkflowTemplate")
        .collect();
    let [wft] = templates.as_slice() else {
        bail!(
            "{}: expected one WorkflowTemplate, found {}",
            workflow.display(),
            templates.len()
        );
    };
    let params = wft.parameters(set)?;
    std::fs::create_dir_all(work_dir).with_context(|| work_dir.display().to_string())?;
    let mut pods = LocalPods::new(bin_dir, work_dir, map);
    pods.echo = true;
    let outcome = wft.run(&params, &mut pods)?;
    for n in &outcome.nodes {
        let exit = n
            .exit_code
            .map(|c| format!(" exit {c}"))
            .unwrap_or_default();
        eprintln!(
            "vpg-render: node {:<28} {:<9}{exit}  {}",
            if n.node.is_empty() {
                "(entrypoint)"
            } else {
                &n.node
            },
            n.phase,
            n.detail
        );
    }
    eprintln!(
        "vpg-render: workflow {} {:?}",
        outcome.phase, outcome.outputs
    );
    let path = work_dir.join("outcome.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&outcome)?)
        .with_context(|| path.display().to_string())?;
    Ok(match outcome.phase {
        Phase::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
