//! `vpg-stack`: the project's Prometheus, MLflow and vllm-sim launchers for the scripts, built on
//! the same code the tests use (`test_support::{prometheus, mlflow, sim, stack}`).
//!
//! ```text
//! vpg-stack up | env | status | down | clean          the local stack (scripts/local-stack.sh)
//! vpg-stack prometheus --dir D --port P --target H:P  one detached Prometheus (PID in D/prometheus.pid)
//! vpg-stack mlflow --dir D --port P                   one detached MLflow (PID in D/mlflow.pid)
//! vpg-stack stop --dir D NAME                         stop what D/NAME.pid names (its process group)
//! vpg-stack wait-scraped --prometheus-url U --after T until every target of the job was scraped up after T
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use test_support::stack::{Stack, absolute, loopback_port};
use test_support::{mlflow, process, prometheus};

#[derive(Parser)]
#[command(
    name = "vpg-stack",
    about = "Start and stop the project's local servers (Prometheus, MLflow, vllm-sim) on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start vllm-sim, Prometheus and MLflow (what is not running yet), then print the env vars.
    Up(StackArgs),
    /// Print the env vars for load-test and perf-decision (`eval "$(vpg-stack env)"`).
    Env(StackArgs),
    /// Which of the three servers run.
    Status(StackArgs),
    /// Stop the servers the stack started; state is kept (the next `up` finds the MLflow runs).
    Down(StackArgs),
    /// Stop them and delete the state.
    Clean(StackArgs),
    /// Start one Prometheus, detached, and print its URL.
    Prometheus {
        /// Config, data, log and PID file (`prometheus.pid`) go here.
        #[arg(long)]
        dir: PathBuf,
        /// Loopback port.
        #[arg(long)]
        port: u16,
        /// The scrape job's name.
        #[arg(long, default_value = "vllm-service")]
        job: String,
        /// Scrape interval.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        scrape_interval: Duration,
        /// `host:port` to scrape (repeatable).
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
    },
    /// Start one MLflow server (sqlite store, proxied artifacts), detached, and print its URL.
    Mlflow {
        /// Store, artifacts, log and PID file (`mlflow.pid`) go here.
        #[arg(long)]
        dir: PathBuf,
        /// Loopback port.
        #[arg(long)]
        port: u16,
    },
    /// Stop the server whose PID is in DIR/NAME.pid (its whole process group).
    Stop {
        /// The directory the server was started with.
        #[arg(long)]
        dir: PathBuf,
        /// `prometheus` or `mlflow`.
        name: String,
    },
    /// Wait until every target of the job answered a scrape taken after a time, with up == 1.
    WaitScraped {
        /// Prometheus base URL (loopback).
        #[arg(long)]
        prometheus_url: String,
        /// The scrape job.
        #[arg(long, default_value = "vllm-service")]
        job: String,
        /// Unix time (seconds, fractions allowed); default now.
        #[arg(long)]
        after: Option<f64>,
        /// Give up after this long.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(Args)]
struct StackArgs {
    /// State, logs, PID files.
    #[arg(long, env = "VPG_STACK_DIR")]
    dir: Option<PathBuf>,
    /// vllm-sim's port.
    #[arg(long, env = "VLLM_SIM_PORT", default_value_t = 18000)]
    sim_port: u16,
    /// Prometheus's port.
    #[arg(long, env = "PROMETHEUS_PORT", default_value_t = 19090)]
    prometheus_port: u16,
    /// MLflow's port.
    #[arg(long, env = "MLFLOW_PORT", default_value_t = 15000)]
    mlflow_port: u16,
    /// Prometheus scrape interval (load-test gets the same).
    #[arg(long, env = "SCRAPE_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    scrape_interval: Duration,
    /// The simulator binary; default: vllm-sim next to this program.
    #[arg(long, env = "VLLM_SIM_BIN")]
    sim_bin: Option<PathBuf>,
    /// Extra simulator flags, space-separated (they win over the stack's defaults).
    #[arg(long, env = "VLLM_SIM_ARGS", default_value = "")]
    sim_args: String,
}

impl StackArgs {
    fn stack(self) -> anyhow::Result<Stack> {
        let dir = match self.dir {
            Some(d) => absolute(&d),
            None => test_support::cache_dir().join("local-stack"),
        };
        let sim_bin = match self.sim_bin {
            Some(b) => b,
            None => {
                let me = std::env::current_exe().context("locating vpg-stack")?;
                test_support::run::sibling_bin(&me, "vllm-sim").map_err(anyhow::Error::msg)?
            }
        };
        Ok(Stack {
            dir,
            sim_port: self.sim_port,
            prometheus_port: self.prometheus_port,
            mlflow_port: self.mlflow_port,
            scrape_interval: self.scrape_interval,
            sim_bin,
            sim_args: self.sim_args.split_whitespace().map(String::from).collect(),
        })
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpg-stack: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Cmd::Up(a) => {
            let s = a.stack()?;
            s.up()?;
            write!(out, "{}", s.env())?;
        }
        Cmd::Env(a) => write!(out, "{}", a.stack()?.env())?,
        Cmd::Status(a) => write!(out, "{}", a.stack()?.status())?,
        Cmd::Down(a) => a.stack()?.down(false)?,
        Cmd::Clean(a) => a.stack()?.down(true)?,
        Cmd::Prometheus {
            dir,
            port,
            job,
            scrape_interval,
            targets,
        } => {
            let dir = absolute(&dir);
            let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
            let config = prometheus::config_yaml(&job, &targets, scrape_interval);
            let launch = prometheus::Launch {
                dir: &dir,
                port,
                config_yaml: &config,
            };
            let mut child = launch.spawn().map_err(anyhow::Error::msg)?;
            if let Err(why) = launch.wait_ready(&mut child) {
                process::stop_group(&mut child);
                anyhow::bail!(why);
            }
            std::fs::write(dir.join("prometheus.pid"), format!("{}\n", child.id()))?;
            writeln!(out, "http://127.0.0.1:{port}")?;
        }
        Cmd::Mlflow { dir, port } => {
            let dir = absolute(&dir);
            std::fs::create_dir_all(&dir)?;
            let child = mlflow::spawn_detached(&dir, port).map_err(anyhow::Error::msg)?;
            std::fs::write(dir.join("mlflow.pid"), format!("{}\n", child.id()))?;
            writeln!(out, "http://127.0.0.1:{port}")?;
        }
        Cmd::Stop { dir, name } => {
            let pidfile = dir.join(format!("{name}.pid"));
            if process::stop_pidfile(&pidfile)? {
                eprintln!("vpg-stack: {name} stopped");
            }
        }
        Cmd::WaitScraped {
            prometheus_url,
            job,
            after,
            timeout,
        } => {
            let port = loopback_port(&prometheus_url)?;
            let after = after.unwrap_or_else(prometheus::unix_now);
            prometheus::wait_scraped_after(port, &job, after, timeout)
                .map_err(anyhow::Error::msg)?;
            eprintln!("vpg-stack: every target of job {job} up and scraped");
        }
    }
    Ok(())
}
