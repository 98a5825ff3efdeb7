//! `--http-client`: load-test's own HTTP/1.1 client (`native`, the default over `http` and `https`)
//! and reqwest measure the same load the same way, each keeping one connection per slot, and
//! a proxy named in the environment carries the streaming requests (they are left to reqwest).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use test_support::sim::Sim;
use test_support::steps::{load_test_against, load_test_results, stderr};

fn sim() -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(3),
        itl: Duration::from_millis(1),
        ..Default::default()
    })
}

const SLOTS: u64 = 16;
const REQUESTS: usize = 160;

/// Runs 160 requests at 16 in flight with `client`; the results and the sim's connection
/// count.
fn run(client: &str) -> (Value, vllm_sim::SimStats) {
    let sim = sim();
    let dir = tempfile::tempdir().unwrap();
    let run = load_test_against(
        &sim.url,
        dir.path(),
        20,
        &[
            "--num-requests",
            &REQUESTS.to_string(),
            "--concurrency",
            &SLOTS.to_string(),
            "--max-tokens",
            "8",
            "--ignore-eos",
            "--poll-interval",
            "0",
            "--http-client",
            client,
        ],
    );
    let log = stderr(&run.output);
    assert!(run.output.status.success(), "{log}");
    // the batch window opens only where chunks carry the kernel's receive time
    let window = match client {
        "native" if cfg!(target_os = "linux") => "batch_window=Some(200µs)",
        _ => "batch_window=None",
    };
    assert!(log.contains(window), "{client}: {log}");
    assert_eq!(run.records.len(), REQUESTS);
    for r in &run.records {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["content_chunks"], 8, "{r}");
        assert_eq!(r["http_status"], 200, "{r}");
    }
    (load_test_results(&run.out), sim.stats())
}

#[test]
fn both_clients_measure_every_request_on_one_kept_connection_per_slot() {
    for client in ["native", "reqwest"] {
        let (r, stats) = run(client);
        let c = &r["client"];
        assert_eq!(c["successful_requests"], REQUESTS as u64, "{client}: {c}");
        assert_eq!(c["failed_requests"], 0, "{client}");
        assert_eq!(c["output_tokens"], REQUESTS as u64 * 8, "{client}: {c}");
        assert_eq!(r["preconnect"]["connections"], SLOTS, "{client}");
        assert_eq!(r["preconnect"]["failed"], 0, "{client}");
        println!("{client}: {} connections", stats.connections);
        // the pre-flight's connections (reqwest's: one or two), the slots', and none opened
        // during the load (reqwest may race its pool's return of a connection: a few more)
        if client == "native" {
            assert_eq!(
                stats.connections_before_first_generation,
                Some(stats.connections),
                "native: a connection was opened during the load: {stats:?}"
            );
        }
        let most = if client == "native" {
            SLOTS + 2
        } else {
            SLOTS + 2 + SLOTS / 4
        };
        assert!(
            (SLOTS..=most).contains(&stats.connections),
            "{client}: {stats:?}"
        );
    }
}

/// Users who think longer than the server keeps an idle connection (vLLM's uvicorn closes it
/// after 5 s; here 150 ms): every request after a pause finds its slot's kept connection
/// closed by the server. Neither client sends on such a connection: every request succeeds,
/// each pause costing a new connection.
#[test]
fn users_thinking_past_the_servers_keep_alive_timeout_lose_no_request() {
    const USERS: u64 = 4;
    const EACH: u64 = 4;
    for client in ["native", "reqwest"] {
        let sim = Sim::start(vllm_sim::SimConfig {
            ttft: Duration::from_millis(3),
            itl: Duration::from_millis(1),
            keep_alive_timeout: Some(Duration::from_millis(150)),
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let run = load_test_against(
            &sim.url,
            dir.path(),
            20,
            &[
                "--num-requests",
                &(USERS * EACH).to_string(),
                "--concurrency",
                &USERS.to_string(),
                "--max-tokens",
                "4",
                "--think-time",
                "400ms",
                "--poll-interval",
                "0",
                "--http-client",
                client,
            ],
        );
        assert!(run.output.status.success(), "{}", stderr(&run.output));
        let r = load_test_results(&run.out);
        let c = &r["client"];
        assert_eq!(c["successful_requests"], USERS * EACH, "{client}: {c}");
        assert_eq!(c["failed_requests"], 0, "{client}: {c}");
        // the server closed each user's connection in each pause: one new connection per
        // request after the first wave (more than the pool would need without the timeout)
        let stats = sim.stats();
        assert!(
            stats.connections >= USERS * EACH,
            "{client}: kept connections survived the server's timeout: {stats:?}"
        );
    }
}

/// A forward proxy for plain `http` (a byte relay to `upstream`, which reads the absolute-form
/// request targets it is sent); counts the connections it relayed.
fn relay(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (url, count)
}

/// Runs 40 requests at 4 in flight against `sim` with `env`; the results.
fn run_with_env(sim: &Sim, env: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let eval = test_support::sim::eval_file(dir.path(), 8);
    let out = dir.path().join("out");
    let mut cmd = test_support::steps::load_test();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = test_support::steps::run(
        cmd.args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
            .arg("--eval-data-path")
            .arg(&eval)
            .arg("--output-dir")
            .arg(&out)
            .args(["--progress-interval", "0", "--poll-interval", "0"])
            .args([
                "--num-requests",
                "40",
                "--concurrency",
                "4",
                "--max-tokens",
                "4",
            ]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let r = load_test_results(&out);
    assert_eq!(r["client"]["successful_requests"], 40);
    r
}

#[test]
fn a_proxy_in_the_environment_carries_the_streaming_requests() {
    let sim = sim();
    let upstream = sim.url.trim_start_matches("http://").to_string();
    let (proxy, relayed) = relay(upstream);
    let r = run_with_env(&sim, &[("HTTP_PROXY", &proxy)]);
    // every connection went through the proxy: the slots' (one may be the pre-flight's)
    let through = relayed.load(Ordering::SeqCst);
    assert!(through >= 4, "{through} connections through the proxy");
    assert_eq!(sim.stats().connections as usize, through);
    assert_eq!(r["config"]["http_client"], "reqwest");
    let warned = r["warnings"].as_array().unwrap();
    assert!(
        warned.iter().any(|w| w.as_str().unwrap().contains("proxy")),
        "{warned:?}"
    );
    // NO_PROXY spares the server: nothing through the proxy, the own client, no warning
    let sim = self::sim();
    let r = run_with_env(&sim, &[("HTTP_PROXY", &proxy), ("NO_PROXY", "127.0.0.1")]);
    assert_eq!(
        relayed.load(Ordering::SeqCst),
        through,
        "no new connection relayed"
    );
    assert_eq!(r["config"]["http_client"], "native");
    let warned = r["warnings"].as_array().unwrap();
    assert!(
        !warned.iter().any(|w| w.as_str().unwrap().contains("proxy")),
        "{warned:?}"
    );
}
