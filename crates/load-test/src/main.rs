//! `load-test`: step 1 of the vLLM LoRA performance gate (see `--help`).

use load_test::cli;

use std::process::ExitCode;

use perf_gate::{exit, loadtest, logging};

fn main() -> ExitCode {
    let cli: cli::Cli = perf_gate::cli::parse_with_empty_env_as_unset();
    logging::init(cli.log_format == cli::LogFormat::Json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load-test: cannot start the async runtime: {e}");
            return ExitCode::from(exit::DEPENDENCY);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("load-test: {e:#}");
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

async fn run(cli: cli::Cli) -> anyhow::Result<u8> {
    let config = cli.into_config();
    let cancel = logging::cancel_on_signal();
    let outcome = loadtest::run(config, cancel).await?;
    print_summary(&outcome);
    Ok(outcome.exit_code)
}

fn print_summary(outcome: &loadtest::LoadTestOutcome) {
    let r = &outcome.results;
    println!("status: {}", r.status.as_str());
    if let Some(e) = &r.error {
        println!("error: {e}");
    }
    if let Some(c) = &r.client {
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}s"));
        println!(
            "client: {} requests, {} ok, success rate {}, {:.2} req/s",
            c.total_requests,
            c.successful_requests,
            c.success_rate
                .map_or_else(|| "n/a".into(), |s| format!("{:.2}%", s * 100.0)),
            c.requests_per_s.unwrap_or(0.0)
        );
        println!(
            "client: ttft p50 {} p95 {}, e2e p50 {} p95 {}, itl p50 {}",
            fmt(c.ttft_s.p50),
            fmt(c.ttft_s.p95),
            fmt(c.e2e_s.p50),
            fmt(c.e2e_s.p95),
            fmt(c.itl_s.p50)
        );
    }
    if let Some(s) = &r.server {
        let fmt = |m: &perf_gate::results::Measured| {
            m.get()
                .map_or_else(|| "null".to_string(), |v| format!("{v:.3}"))
        };
        println!(
            "server: e2e p95 {}s, ttft p95 {}s, throughput {} req/s",
            fmt(&s.e2e_latency_s.p95),
            fmt(&s.ttft_s.p95),
            fmt(&s.throughput_rps)
        );
    }
    println!("results: {}", outcome.results_path.display());
}
