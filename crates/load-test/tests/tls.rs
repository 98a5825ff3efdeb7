//! `load-test` over TLS: the simulator and a REAL Prometheus (Debian's, scraping the simulator
//! every second) each behind a TLS front whose certificate a CA made here signed. Without the
//! CA a call fails at once, naming the server and the certificate problem; with
//! `--vllm-ca-cert` / `--prometheus-ca-cert` the run completes over the pooled keep-alive
//! client (a handful of TLS handshakes for the whole load), on the own client and on reqwest;
//! with `--*-insecure-tls` it completes too, and a warning says the certificates were not
//! checked.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use test_support::prometheus::PrometheusServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, load_test_results as results, run, stderr};
use test_support::tls::{TestCa, TlsFront};

const CONCURRENCY: u64 = 4;
const REQUESTS: usize = 40;

fn quick_sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(2),
        ..Default::default()
    })
}

fn load(vllm_url: &str, dir: &Path, name: &str, extra: &[&str]) -> (Output, PathBuf) {
    let eval = eval_file(dir, REQUESTS);
    let out = dir.join(name);
    let o = run(load_test()
        .args(["--vllm-url", vllm_url, "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args([
            "--concurrency",
            &CONCURRENCY.to_string(),
            "--max-tokens",
            "4",
        ])
        .args(["--progress-interval", "0"])
        .args(extra));
    (o, out)
}

#[test]
fn vllm_over_tls_needs_its_ca_or_the_insecure_flag() {
    let sim = quick_sim();
    let ca = TestCa::new();
    let front = TlsFront::start(&sim.url, &ca);
    let dir = tempfile::tempdir().unwrap();
    let ca_path = ca.ca_path();
    let ca_arg = ca_path.to_str().unwrap();

    // the system's roots only: refused at once, naming vLLM and the certificate
    let (o, out) = load(front.url(), dir.path(), "untrusted", &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let error = results(&out)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!("vLLM at {} is unreachable", front.url()))
            && error.contains("invalid peer certificate: UnknownIssuer")
            && error.contains("give --vllm-ca-cert with its CA (PEM), or --vllm-insecure-tls"),
        "{error}"
    );
    assert!(stderr(&o).contains(&error), "{}", stderr(&o));
    assert!(front.refused() >= 1);
    // waiting for vLLM to come up does not wait for a certificate to change
    let started = std::time::Instant::now();
    let (o, out) = load(front.url(), dir.path(), "waiting", &["--wait-ready", "60s"]);
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(results(&out)["error"].as_str(), Some(error.as_str()));
    println!("untrusted vLLM with --wait-ready 60s refused in {took:?}");
    assert!(took < Duration::from_secs(30), "waited {took:?}");

    // with the CA: every request over a few pooled connections (keep-alive through TLS)
    let before = front.handshakes();
    let (o, out) = load(front.url(), dir.path(), "ca", &["--vllm-ca-cert", ca_arg]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["client"]["successful_requests"], REQUESTS, "{r}");
    let handshakes = front.handshakes() - before;
    println!("{REQUESTS} requests at concurrency {CONCURRENCY} over {handshakes} TLS connections");
    // one connection per request (40, plus the probes) without keep-alive; with it, about the
    // concurrency (a request sent while a finished one's connection is not yet back in the
    // pool opens another, so a few more)
    assert!(
        (1..=2 * CONCURRENCY + 2).contains(&handshakes),
        "{handshakes} TLS handshakes for {REQUESTS} requests: the pool is not reused"
    );
    assert!(!stderr(&o).contains("not checked"), "{}", stderr(&o));
    // sent by the own client (rustls over its timed sockets), not reqwest
    assert_eq!(r["config"]["http_client"], "native", "{r}");
    // reqwest, asked for, reaches the same server with the same CA
    let (o, out) = load(
        front.url(),
        dir.path(),
        "ca-reqwest",
        &["--vllm-ca-cert", ca_arg, "--http-client", "reqwest"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["client"]["successful_requests"], REQUESTS, "{r}");
    assert_eq!(r["config"]["http_client"], "reqwest", "{r}");

    // the same through the env var
    let o = run(load_test()
        .env("VLLM_CA_CERT", ca_arg)
        .args(["--vllm-url", front.url(), "--adapter-name", "candidate"])
        .arg("--eval-data-path")
        .arg(eval_file(dir.path(), 2))
        .arg("--output-dir")
        .arg(dir.path().join("by-env")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // insecure: it works, and says so
    let (o, out) = load(
        front.url(),
        dir.path(),
        "insecure",
        &["--vllm-insecure-tls"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(results(&out)["client"]["successful_requests"], REQUESTS);
    assert_eq!(results(&out)["config"]["http_client"], "native");
    let warning = stderr(&o)
        .lines()
        .find(|l| {
            l.contains("WARN")
                && l.contains("vLLM: TLS certificates are not checked (--vllm-insecure-tls)")
        })
        .map(str::to_string);
    assert!(warning.is_some(), "{}", stderr(&o));

    // a CA file that is not one: bad input, before anything is sent
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let before = front.handshakes() + front.refused();
    let (o, _) = load(
        front.url(),
        dir.path(),
        "bad-ca",
        &["--vllm-ca-cert", not_pem.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!(
            "load-test: --vllm-ca-cert {}: holds no PEM certificate",
            not_pem.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(front.handshakes() + front.refused(), before);
}

#[test]
fn a_real_prometheus_over_tls_needs_its_ca_or_the_insecure_flag() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(5),
        ..Default::default()
    });
    let target = sim.url.trim_start_matches("http://").to_string();
    let prom = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
    prom.wait_for_targets_up("vllm-service", Duration::from_secs(30));
    let ca = TestCa::new();
    let front = TlsFront::start(&prom.url(), &ca);
    let ca_path = ca.ca_path();
    let dir = tempfile::tempdir().unwrap();
    let with = |extra: &[&str]| {
        let mut v = vec!["--prometheus-url", front.url(), "--scrape-interval", "1s"];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };

    // untrusted: the preflight fails, naming Prometheus and the certificate
    let started = std::time::Instant::now();
    let args = with(&[]);
    let (o, out) = load(
        &sim.url,
        dir.path(),
        "untrusted",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let error = results(&out)["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!(
            "Prometheus at {} is unreachable after 1 attempt(s)",
            front.url()
        )) && error.contains("invalid peer certificate: UnknownIssuer")
            && error.contains(
                "give --prometheus-ca-cert with its CA (PEM), or --prometheus-insecure-tls"
            ),
        "{error}"
    );
    println!("untrusted Prometheus refused in {:?}", started.elapsed());

    for (name, flag) in [
        (
            "ca",
            vec!["--prometheus-ca-cert", ca_path.to_str().unwrap()],
        ),
        ("insecure", vec!["--prometheus-insecure-tls"]),
    ] {
        let args = with(&flag);
        let (o, out) = load(
            &sim.url,
            dir.path(),
            name,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let r = results(&out);
        assert_eq!(r["status"], "completed", "{name}: {r}");
        assert_eq!(r["server"]["source"], "prometheus", "{name}");
        assert_eq!(
            r["server"]["requests_finished"]["value"], REQUESTS as f64,
            "{name}: {}",
            r["server"]
        );
        let warned = stderr(&o)
            .contains("Prometheus: TLS certificates are not checked (--prometheus-insecure-tls)");
        assert_eq!(warned, name == "insecure", "{name}: {}", stderr(&o));
    }
}

/// Over `https` a stream the server cuts is never a success, on either client: cut cleanly
/// (the chunked body ends without `[DONE]`) or reset mid-body (the TLS session then ends
/// without `close_notify`, which the own client reads as the end of the stream: the HTTP
/// framing then shows the body incomplete, as on plain `http`).
#[test]
fn over_tls_a_cut_stream_is_incomplete_on_both_clients() {
    let ca = TestCa::new();
    let ca_path = ca.ca_path();
    let dir = tempfile::tempdir().unwrap();
    for mode in [vllm_sim::CutMode::Eof, vllm_sim::CutMode::Reset] {
        let sim = Sim::start(vllm_sim::SimConfig {
            ttft: Duration::from_millis(2),
            itl: Duration::from_millis(1),
            cut_rate: 1.0,
            cut_mode: mode,
            ..Default::default()
        });
        let front = TlsFront::start(&sim.url, &ca);
        for client in ["native", "reqwest"] {
            let name = format!("{mode:?}-{client}");
            let (o, out) = load(
                front.url(),
                dir.path(),
                &name,
                &[
                    "--vllm-ca-cert",
                    ca_path.to_str().unwrap(),
                    "--http-client",
                    client,
                    "--max-tokens",
                    "16",
                ],
            );
            assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
            let r = results(&out);
            assert_eq!(r["config"]["http_client"], client, "{name}: {r}");
            assert_eq!(r["client"]["successful_requests"], 0, "{name}: {r}");
            assert_eq!(
                r["client"]["errors_by_kind"]["stream_incomplete"], REQUESTS,
                "{name}: {r}"
            );
        }
    }
}

/// A target mix with one server behind TLS and one on plain `http`: both sent by the own
/// client (rustls for the first, trusting `--vllm-ca-cert`), each getting its weight, with the
/// TLS member's connections kept (a handful of handshakes for all its requests).
#[test]
fn a_target_mix_over_https_and_http_runs_on_the_own_client() {
    let tls_sim = quick_sim();
    let plain_sim = quick_sim();
    let ca = TestCa::new();
    let front = TlsFront::start(&tls_sim.url, &ca);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mix.yaml");
    std::fs::write(
        &config,
        format!(
            "target:\n  - {{name: Secure, url: '{}', model: candidate, weight: 0.5}}\n  - {{name: Plain, url: '{}', model: candidate, weight: 0.5}}\nconcurrency: 4\nmax_tokens: 4\nnum_requests: 40\npoll_interval: 0s\nprogress_interval: 0s\n",
            front.url(),
            plain_sim.url
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(load_test()
        .arg("--config")
        .arg(&config)
        .arg("--vllm-ca-cert")
        .arg(ca.ca_path())
        .arg("--eval-data-path")
        .arg(eval_file(dir.path(), 10))
        .arg("--output-dir")
        .arg(&out));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = results(&out);
    assert_eq!(r["config"]["http_client"], "native", "{r}");
    assert_eq!(r["client"]["successful_requests"], 40, "{r}");
    let members = r["mix"]["members"].as_array().unwrap();
    for m in members {
        assert_eq!(m["client"]["successful_requests"], 20, "{m}");
    }
    assert_eq!(tls_sim.stats().accepted, 20);
    assert_eq!(plain_sim.stats().accepted, 20);
    let handshakes = front.handshakes();
    assert!(
        (1..=2 * CONCURRENCY + 2).contains(&handshakes),
        "{handshakes} TLS handshakes for 20 requests: the pool is not reused"
    );
}

/// The server behind `https` restarts in the middle of the load, behind a load balancer:
/// every TLS session ends at once without `close_notify`, and new connections reach the new
/// server. On either client only the streams in flight at that moment fail (and at most one
/// request a slot sent on a session in the instant it was dropped); the kept sessions that
/// ended are not used again, new sessions open, and the rest of the load completes on them,
/// kept.
#[test]
fn over_tls_a_server_restarted_mid_load_fails_only_the_streams_in_flight() {
    const TOTAL: usize = 240;
    let ca = TestCa::new();
    let ca_path = ca.ca_path();
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), TOTAL);
    for client in ["native", "reqwest"] {
        let sim = Sim::start(vllm_sim::SimConfig {
            ttft: Duration::from_millis(5),
            itl: Duration::from_millis(2),
            ..Default::default()
        });
        let front = TlsFront::start(&sim.url, &ca);
        let out = dir.path().join(client);
        let child = load_test()
            .args(["--vllm-url", front.url(), "--adapter-name", "candidate"])
            .arg("--eval-data-path")
            .arg(&eval)
            .arg("--output-dir")
            .arg(&out)
            .args(["--concurrency", &CONCURRENCY.to_string()])
            .args(["--max-tokens", "16", "--progress-interval", "0"])
            .args(["--http-client", client, "--vllm-ca-cert"])
            .arg(&ca_path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sim.stats().accepted < 60 {
            assert!(std::time::Instant::now() < deadline, "{client}: no load");
            std::thread::sleep(Duration::from_millis(5));
        }
        let before = front.handshakes();
        front.drop_connections();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{client}: {}", stderr(&o));
        let r = results(&out);
        assert_eq!(r["config"]["http_client"], client, "{client}: {r}");
        let c = &r["client"];
        assert_eq!(c["total_requests"], TOTAL, "{client}: {c}");
        // the streams in flight when the sessions ended; at most one more a slot: a request
        // its slot sent on a kept session in the instant the server dropped it (the session
        // looked open; reqwest meets this race now and then)
        let failed = c["failed_requests"].as_u64().unwrap();
        let errors = c["errors_by_kind"].as_object().unwrap();
        let count = |k: &str| errors.get(k).map_or(0, |n| n.as_u64().unwrap());
        let cut = count("stream_incomplete");
        assert!((1..=CONCURRENCY).contains(&cut), "{client}: {c}");
        // (or a handshake it caught: `connect`)
        assert_eq!(
            cut + count("transport") + count("connect"),
            failed,
            "{client}: {c}"
        );
        assert!(failed <= 2 * CONCURRENCY, "{client}: {c}");
        // new sessions for the rest of the load, kept
        let after = front.handshakes() - before;
        assert!(
            (1..=2 * CONCURRENCY + 2).contains(&after),
            "{client}: {after} TLS handshakes after the restart: the pool is not reused"
        );
    }
}
