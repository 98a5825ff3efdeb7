//! `vllm-sim`: serve the vLLM simulator on a TCP port until SIGINT/SIGTERM.
//!
//! Every flag also reads a `VLLM_SIM_*` environment variable; the command line wins.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use perf_gate_cli::{logging, signals};
use vllm_sim::SimConfig;
use vllm_sim::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.worker_threads {
        builder.worker_threads(n.max(1));
    }
    let result = builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .and_then(|rt| rt.block_on(run(&cli)));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vllm-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = SimConfig::try_from(cli)?;
    let sim = vllm_sim::spawn(config)
        .await
        .context("starting the simulator")?;
    eprintln!("vllm-sim listening on {}", sim.base_url());
    signals::shutdown_signal().await;
    tracing::info!("shutting down");
    match tokio::time::timeout(cli.shutdown_grace, sim.shutdown()).await {
        Ok(result) => result.context("serving")?,
        Err(_) => tracing::warn!(grace = ?cli.shutdown_grace, "requests still in flight at exit"),
    }
    Ok(ExitCode::SUCCESS)
}
