//! `vllm-sim`: serve the vLLM simulator on a TCP port until SIGINT/SIGTERM.
//!
//! Every flag also reads a `VLLM_SIM_*` environment variable; the command line wins.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use vllm_sim::SimConfig;
use vllm_sim::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
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
    shutdown_signal().await?;
    tracing::info!("shutting down");
    match tokio::time::timeout(cli.shutdown_grace, sim.shutdown()).await {
        Ok(result) => result.context("serving")?,
        Err(_) => tracing::warn!(grace = ?cli.shutdown_grace, "requests still in flight at exit"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
