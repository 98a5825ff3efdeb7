//! `vpg-render`: one step of the deployment manifests as the exact command line and environment
//! the cluster would run, for the scripts (the tests call `test_support::manifest` directly).
//! Output is NUL-terminated items, never shell code: read it with `mapfile -d ''`.
//!
//! ```text
//! vpg-render argo --workflow workflows/vllm-perf-gate.yaml --step load-test \
//!     --set vllm-url=http://127.0.0.1:8000 ... --map /output=/tmp/out --bin-dir target/debug --print argv
//! vpg-render job --kustomization deploy/kustomize/base --step perf-decision \
//!     --set MODEL_NAME=tiny-lora ... --map /results=/tmp/res --bin-dir target/debug --print env
//! ```
//!
//! `--print argv`: `argv[0]` (the binary in `--bin-dir`) and the arguments; `--print env`:
//! `NAME=VALUE` items (variables from optional Secrets left out). Anything the renderer does not
//! understand fails, naming the file and the expression.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use test_support::manifest::{RenderedStep, argo, kustomize};

#[derive(Parser)]
#[command(
    name = "vpg-render",
    about = "Render one step of the deployment manifests (NUL-separated output)"
)]
struct Cli {
    /// `argo`: a WorkflowTemplate's step; `job`: a kustomization's Job container.
    style: Style,
    /// Template (argo) or container (job) name: load-test or perf-decision.
    #[arg(long)]
    step: String,
    /// The WorkflowTemplate file.
    #[arg(long, default_value = "workflows/vllm-perf-gate.yaml")]
    workflow: PathBuf,
    /// The kustomization directory.
    #[arg(long, default_value = "deploy/kustomize/base")]
    kustomization: PathBuf,
    /// Where the binaries the containers run are.
    #[arg(long)]
    bin_dir: PathBuf,
    /// NAME=VALUE: a workflow parameter (argo) or a ConfigMap key (job); an unknown name is an error.
    #[arg(long = "set", value_parser = pair)]
    set: Vec<(String, String)>,
    /// SRC=DST: a path in the pod and where it is here; every artifact, output and volume path of
    /// the step must be under one.
    #[arg(long = "map", value_parser = pair)]
    map: Vec<(String, String)>,
    /// What to print.
    #[arg(long)]
    print: Print,
}

#[derive(Clone, Copy, ValueEnum)]
enum Style {
    Argo,
    Job,
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
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpg-render: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn render(cli: &Cli) -> anyhow::Result<RenderedStep> {
    Ok(match cli.style {
        Style::Argo => {
            let files = argo::load(&cli.workflow)?;
            let templates: Vec<_> = files
                .iter()
                .filter(|f| f.doc.kind == "WorkflowTemplate")
                .collect();
            let [wft] = templates.as_slice() else {
                bail!(
                    "{}: expected one WorkflowTemplate, found {}",
                    cli.workflow.display(),
                    templates.len()
                );
            };
            wft.render_step(&cli.step, &wft.parameters(&cli.set)?)?
        }
        Style::Job => kustomize::build(&cli.kustomization)?.render(&cli.step, &cli.set)?,
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let step = render(&cli)
        .and_then(|s| s.map_paths(&cli.map).map_err(anyhow::Error::msg))
        .and_then(|s| s.with_bin_dir(&cli.bin_dir).map_err(anyhow::Error::msg))
        .with_context(|| format!("cannot render step {}", cli.step))?;
    let items: Vec<String> = match cli.print {
        Print::Argv => step.argv,
        Print::Env => step.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
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
