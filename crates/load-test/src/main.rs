//! `load-test`: step 1 of the vLLM LoRA performance gate (see `--help`).

use std::process::ExitCode;

use load_test::cli::Cli;
use perf_gate::loadtest::{self, LoadTestConfig, LoadTestOutcome};
use perf_gate::step::Exit;
use perf_gate_cli::{config_file, env, logging, signals};

fn main() -> ExitCode {
    // before the parse: the listing needs none of the run's flags
    if std::env::args_os().skip(1).any(|a| a == "--list-scenarios") {
        print!("{}", perf_gate::loadtest::scenarios::listing());
        return ExitCode::SUCCESS;
    }
    // `load-test merge SHARD_DIR...`: the shards of a scaled-out load into one results file
    if std::env::args_os().nth(1).is_some_and(|a| a == "merge") {
        return merge_main();
    }
    let (cli, effective): (Cli, _) =
        match config_file::try_parse_with(Some(&load_test::cli::SCENARIOS)) {
            Ok(parsed) => parsed,
            Err(e) => env::exit_with(e),
        };
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // --batch-window: lets network events gather before a worker sleeps (while the load runs)
        .on_thread_park(perf_gate::client::batch_window::before_park)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load-test: cannot start the async runtime: {e}");
            return Exit::Dependency.into();
        }
    };
    match runtime.block_on(run(cli, effective)) {
        Ok(exit) => exit.into(),
        Err((exit, e)) => {
            eprintln!(
                "load-test: {}",
                perf_gate::secrets::scrub(&format!("{e:#}"))
            );
            exit.into()
        }
    }
}

async fn run(cli: Cli, effective: serde_json::Value) -> Result<Exit, (Exit, anyhow::Error)> {
    let mut config = LoadTestConfig::try_from(cli).map_err(|e| (Exit::BadInput, e))?;
    config.effective_config = Some(effective);
    let output_dir = config.output_dir.clone();
    let cancel = signals::cancel_on_signal(move || {
        loadtest::mark_killed(&output_dir);
        std::process::exit(Exit::Aborted.code().into())
    });
    let outcome = loadtest::run(config, cancel).await.map_err(|e| {
        use perf_gate::step::StepFailure;
        (e.exit(), e.into())
    })?;
    print_summary(&outcome);
    print_thresholds(&outcome.results);
    Ok(outcome.exit)
}

fn merge_main() -> ExitCode {
    use clap::Parser as _;
    let cli = match load_test::merge_cli::MergeCli::try_parse_from(
        std::iter::once(std::ffi::OsString::from("load-test merge"))
            .chain(std::env::args_os().skip(2)),
    ) {
        Ok(cli) => cli,
        Err(e) => env::exit_with(e),
    };
    logging::init(cli.log_format);
    let config = match perf_gate::loadtest::merge::MergeConfig::try_from(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "load-test merge: {}",
                perf_gate::secrets::scrub(&format!("{e:#}"))
            );
            return Exit::BadInput.into();
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load-test merge: cannot start the async runtime: {e}");
            return Exit::Dependency.into();
        }
    };
    let output_dir = config.output_dir.clone();
    let outcome = runtime.block_on(async move {
        let cancel = signals::cancel_on_signal(move || {
            loadtest::mark_killed(&output_dir);
            std::process::exit(Exit::Aborted.code().into())
        });
        perf_gate::loadtest::merge::merge(config, cancel).await
    });
    match outcome {
        Ok(o) => {
            println!("status: {}", o.status.as_str());
            if let Some(e) = &o.error {
                println!("error: {e}");
            }
            if let Some(c) = o.results.as_ref().and_then(|r| r.client.as_ref()) {
                let fmt =
                    |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}s"));
                println!(
                    "client (merged): {} requests, {} ok, {:.2} req/s, ttft p50 {} p95 {}, e2e p95 {}",
                    c.total_requests,
                    c.successful_requests,
                    c.requests_per_s.unwrap_or(0.0),
                    fmt(c.ttft_s.p50),
                    fmt(c.ttft_s.p95),
                    fmt(c.e2e_s.p95)
                );
            }
            if o.results.is_some() {
                println!("results: {}", o.results_path.display());
            }
            o.exit.into()
        }
        Err(e) => {
            use perf_gate::step::StepFailure as _;
            eprintln!(
                "load-test merge: {}",
                perf_gate::secrets::scrub(&format!("{e:#}"))
            );
            e.exit().into()
        }
    }
}

/// One line per `--threshold`, after the summary (seed 002's PASS/WARNING wording).
fn print_thresholds(r: &perf_gate::results::LoadTestResults) {
    if r.config.thresholds.is_empty() {
        return;
    }
    if r.thresholds.is_empty() {
        println!(
            "thresholds: not evaluated (status {}: only a completed run is judged)",
            r.status.as_str()
        );
    }
    for o in &r.thresholds {
        println!("{}", loadtest::thresholds::line(o));
    }
    // a sweep's steps: each must meet them too (a crossed one exits 1)
    if r.status == perf_gate::results::RunStatus::Completed {
        for step in &r.steps {
            for o in &step.thresholds {
                println!("step {}: {}", step.index, loadtest::thresholds::line(o));
            }
        }
    }
}

fn print_summary(outcome: &LoadTestOutcome) {
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
    for step in &r.steps {
        let c = &step.client;
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}s"));
        let level = match (step.concurrency, step.rate) {
            (Some(n), _) => format!("c={n}"),
            (None, Some(r)) => format!("rate={r}/s"),
            (None, None) => "?".into(),
        };
        let server = step
            .server
            .as_ref()
            .and_then(|s| s.requests_finished.get())
            .map_or_else(|| "n/a".into(), |n| format!("{n:.0}"));
        println!(
            "step {} ({level}): {} requests, {} failed, {:.2} req/s, ttft p95 {}, e2e p95 {}; server counted {server}",
            step.index,
            c.total_requests,
            c.failed_requests,
            c.requests_per_s.unwrap_or(0.0),
            fmt(c.ttft_s.p95),
            fmt(c.e2e_s.p95)
        );
    }
    if let Some(mix) = &r.mix {
        // seed 002's per-endpoint breakdown: each member under the shared load
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}s"));
        for m in &mix.members {
            let c = &m.client;
            println!(
                "{} {} ({}, {:.0}% asked, {} sent): {} ok, {} failed, error rate {}, ttft p50/p90/p99 {}/{}/{}, e2e p50/p90/p99 {}/{}/{}, {:.1} tokens/s{}",
                match m.role {
                    perf_gate::mix::Role::Target => "target",
                    perf_gate::mix::Role::Adapter => "adapter",
                    perf_gate::mix::Role::Base => "base model",
                },
                m.name,
                m.model,
                m.share_requested * 100.0,
                c.total_requests,
                c.successful_requests,
                c.failed_requests,
                m.error_rate
                    .map_or_else(|| "n/a".into(), |e| format!("{:.2}%", e * 100.0)),
                fmt(c.ttft_s.p50),
                fmt(c.ttft_s.p90),
                fmt(c.ttft_s.p99),
                fmt(c.e2e_s.p50),
                fmt(c.e2e_s.p90),
                fmt(c.e2e_s.p99),
                c.output_tokens_per_s.unwrap_or(0.0),
                m.cold_load.as_ref().map_or_else(String::new, |cl| format!(
                    ", cold load: first request ttft {}",
                    fmt(cl.ttft_s)
                ))
            );
        }
    }
    for p in &r.probes {
        println!(
            "task {} ({}): {} sent, {} ok, p50 {}",
            p.task,
            p.path,
            p.requests,
            p.successful_requests,
            p.latency_s
                .p50
                .map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}s"))
        );
    }
    if let Some(b) = &r.baseline_arm {
        let c = &b.client;
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}s"));
        println!(
            "baseline {}: {} requests, {} ok, ttft p95 {}, e2e p95 {} (client figures; the server's cover both adapters)",
            b.adapter.name,
            c.total_requests,
            c.successful_requests,
            fmt(c.ttft_s.p95),
            fmt(c.e2e_s.p95)
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
    if outcome.results_written {
        println!("results: {}", outcome.results_path.display());
    } else {
        println!(
            "results: not written ({} could not be written; see the error line)",
            outcome.results_path.display()
        );
    }
}
