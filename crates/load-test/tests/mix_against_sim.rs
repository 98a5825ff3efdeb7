//! Mixes against `vllm-sim`: two simulators of different speeds in one target mix (seed 002's
//! mixed warfare, from a config file), and three adapters of different speeds and load times
//! plus the base model on one simulator (`--lora-mix`): the weights honoured, each member's
//! figures its own, each adapter's cold load timed apart from its percentiles.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{
    load_test, load_test_against, load_test_results, most_in_flight, request_records, run, stderr,
};
use vllm_sim::{LatencyScale, LoadTime, LoraModule, SimConfig};

fn member<'a>(results: &'a Value, name: &str) -> &'a Value {
    results["mix"]["members"]
        .as_array()
        .expect("mix.members")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("member {name} in {}", results["mix"]))
}

/// A simulator with this TTFT and inter-token latency (ms), the rest default.
fn sim(ttft_ms: u64, itl_ms: u64) -> Sim {
    Sim::start(SimConfig {
        ttft: Duration::from_millis(ttft_ms),
        itl: Duration::from_millis(itl_ms),
        ..Default::default()
    })
}

fn ms(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}")) * 1e3
}

#[test]
fn serial_two_servers_of_different_speeds_get_their_weights_and_their_own_figures() {
    let fast = sim(5, 2);
    let slow = sim(80, 10);
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 20);
    // seed 002's `servers:` list, as the config file's `target:` list of mappings
    let config = dir.path().join("mixed.yaml");
    std::fs::write(
        &config,
        format!(
            "target:\n  - {{name: Flash, url: '{}', model: candidate, weight: 0.75}}\n  - name: Thinker\n    url: '{}'\n    model: candidate\n    weight: 0.25\nconcurrency: 8\nmax_tokens: 8\nnum_requests: 80\npoll_interval: 0s\nprogress_interval: 0s\n",
            fast.url, slow.url
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = run(load_test()
        .arg("--config")
        .arg(&config)
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out));
    assert!(output.status.success(), "{}", stderr(&output));
    let r = load_test_results(&out);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["mix"]["kind"], "targets");
    let (flash, thinker) = (member(&r, "Flash"), member(&r, "Thinker"));
    // the smooth round robin: 60 and 20 of the 80 requests, exactly
    assert_eq!(flash["client"]["total_requests"], 60);
    assert_eq!(thinker["client"]["total_requests"], 20);
    assert_eq!(flash["share_sent"], 0.75);
    assert_eq!(flash["share_requested"], 0.75);
    assert_eq!(thinker["error_rate"], 0.0);
    // each server saw its share, and nothing else (no warm-up by default)
    assert_eq!(fast.stats().accepted, 60);
    assert_eq!(slow.stats().accepted, 20);
    // each target's own latency: the slow server's TTFT is ~80 ms, the fast one's ~5 ms
    let (f, s) = (
        ms(&flash["client"]["ttft_s"]["p50"]),
        ms(&thinker["client"]["ttft_s"]["p50"]),
    );
    assert!(s > f + 50.0, "Flash TTFT p50 {f} ms, Thinker {s} ms");
    assert!(s >= 75.0, "Thinker TTFT p50 {s} ms");
    // the pooled figures count both
    assert_eq!(r["client"]["total_requests"], 80);
    // no server figures for a target mix, and no gate measurement
    assert!(r["server"].is_null(), "{}", r["server"]);
    assert_eq!(r["validity"]["valid"], false);
    assert!(
        r["validity"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("target mix")
    );
    assert_eq!(r["config"]["targets"].as_array().unwrap().len(), 2);
    assert!(
        r["mix"]["server_note"]
            .as_str()
            .unwrap()
            .contains("no server-side")
    );
    // every record names its target
    let recs = request_records(&out);
    assert_eq!(recs.len(), 80);
    let to = |name: &str| recs.iter().filter(|r| r["target"] == name).count();
    assert_eq!((to("Flash"), to("Thinker")), (60, 20));
    // the pooled figures are named for the mix, never for its first member alone
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let summary: Value = serde_json::from_str(&read("step_summary.json")).unwrap();
    assert_eq!(summary["adapter"], "mix:Flash+Thinker");
    assert!(read("summary.md").contains("Adapter **mix:Flash+Thinker**"));
    let html = read("load_test_report.html");
    assert!(
        html.contains("candidate (mix:Flash+Thinker)"),
        "report labels"
    );
    assert!(!html.contains("candidate (Flash)"));
}

#[test]
fn serial_three_adapters_and_the_base_model_share_one_server_with_their_cold_loads_apart() {
    let adapters = ["fast-lora", "mid-lora", "slow-lora"];
    let sim = Sim::start(SimConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(2),
        lora_modules: adapters
            .iter()
            .map(|a| LoraModule::new(*a, format!("/models/{a}")))
            .collect(),
        adapter_latency_scale: vec![
            LatencyScale::new("mid-lora", 3.0),
            LatencyScale::new("slow-lora", 6.0),
        ],
        lora_load_time: vec![
            LoadTime {
                name: "fast-lora".into(),
                time: Duration::from_millis(1000),
            },
            LoadTime {
                name: "slow-lora".into(),
                time: Duration::from_millis(1500),
            },
        ],
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 10);
    let out = dir.path().join("out");
    let output = run(load_test()
        .args(["--vllm-url", &sim.url])
        .args(["--lora-mix", "fast-lora=2,mid-lora=1,slow-lora=1"])
        .args(["--base-model-weight", "1"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args([
            "--num-requests",
            "100",
            "--concurrency",
            "4",
            "--max-tokens",
            "4",
        ])
        .args(["--progress-interval", "0", "--poll-interval", "0"])
        // the pooled TTFT p50 (most requests at 10 ms) meets it; slow-lora's (60 ms) does not
        .args(["--threshold", "ttft_p50<45ms"]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let r = load_test_results(&out);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["thresholds"][0]["passed"], true, "{}", r["thresholds"]);
    assert_eq!(member(&r, "slow-lora")["thresholds"][0]["passed"], false);
    assert_eq!(member(&r, "fast-lora")["thresholds"][0]["passed"], true);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("adapter slow-lora (slow-lora, 20% asked, 20 sent)"),
        "{stdout}"
    );
    assert_eq!(r["mix"]["kind"], "adapters");
    // the adapter under test defaults to the mix's first
    assert_eq!(r["config"]["adapter_name"], "fast-lora");
    assert_eq!(
        r["config"]["lora_mix"],
        "fast-lora=2,mid-lora=1,slow-lora=1"
    );
    let names: Vec<&str> = r["mix"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast-lora", "mid-lora", "slow-lora", "base"]);
    let base = member(&r, "base");
    assert_eq!(base["role"], "base");
    assert_eq!(base["model"], "tiny-base", "the adapters' parent");
    assert!(base.get("cold_load").is_none());
    for (name, n) in [
        ("fast-lora", 40),
        ("mid-lora", 20),
        ("slow-lora", 20),
        ("base", 20),
    ] {
        assert_eq!(member(&r, name)["client"]["total_requests"], n, "{name}");
        assert_eq!(
            member(&r, name)["client"]["successful_requests"],
            n,
            "{name}"
        );
    }
    // each adapter's speed: TTFT 10 / 30 / 60 ms
    let p50 = |name: &str| ms(&member(&r, name)["client"]["ttft_s"]["p50"]);
    let (f, m, s) = (p50("fast-lora"), p50("mid-lora"), p50("slow-lora"));
    assert!(f < m && m < s, "TTFT p50 {f} < {m} < {s} ms");
    assert!(s >= 55.0, "slow-lora TTFT p50 {s} ms");
    // the cold loads: the first request waited for the load; the load's requests did not
    let cold = |name: &str| ms(&member(&r, name)["cold_load"]["ttft_s"]);
    assert!(cold("fast-lora") >= 1000.0, "{}", cold("fast-lora"));
    assert!(cold("slow-lora") >= 1500.0, "{}", cold("slow-lora"));
    assert!(
        cold("mid-lora") < cold("fast-lora"),
        "mid-lora has no load time"
    );
    assert!(ms(&member(&r, "fast-lora")["cold_load"]["extra_ttft_over_p50_s"]) >= 900.0);
    for (name, load_ms) in [("fast-lora", 1000.0), ("slow-lora", 1500.0)] {
        assert_eq!(member(&r, name)["cold_load"]["ok"], true);
        let max = ms(&member(&r, name)["client"]["ttft_s"]["max"]);
        assert!(
            max < load_ms,
            "{name}: the cold load is not in the figures (max {max} ms)"
        );
    }
    // a member's figures carry no copy of the pooled samples
    assert!(member(&r, "base")["client"].get("samples").is_none());
    // the server's figures pool every member (vLLM labels by base model), and say so
    assert!(
        r["mix"]["server_note"]
            .as_str()
            .unwrap()
            .contains("base model")
    );
    assert_eq!(r["server"]["requests_finished"]["value"], 100.0);
    // three cold loads before the window, 100 in it
    assert_eq!(sim.stats().accepted, 103);
    assert_eq!(r["validity"]["valid"], false);
    let recs = request_records(&out);
    assert_eq!(recs.iter().filter(|r| r["target"] == "base").count(), 20);
}

#[test]
fn a_warm_up_warms_every_member() {
    let sim = Sim::start(SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        lora_modules: vec![
            LoraModule::new("a", "/models/a"),
            LoraModule::new("b", "/models/b"),
        ],
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 4);
    let out = dir.path().join("out");
    let output = run(load_test()
        .args(["--vllm-url", &sim.url, "--lora-mix", "a=9,b=1"])
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--num-requests", "10", "--warmup-requests", "2"])
        .args([
            "--max-tokens",
            "2",
            "--progress-interval",
            "0",
            "--poll-interval",
            "0",
        ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let r = load_test_results(&out);
    // 2 cold loads, 2 warm-up requests per member, 10 measured
    assert_eq!(r["warmup"]["requests"], 4, "{}", r["warmup"]);
    assert_eq!(sim.stats().accepted, 2 + 4 + 10);
    assert_eq!(member(&r, "a")["client"]["total_requests"], 9);
}

fn refused(args: &[&str], dir: &Path) -> String {
    let out = run(load_test()
        .args(args)
        .arg("--output-dir")
        .arg(dir.join("out"))
        .args(["--prompt-text", "hi"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn bad_mixes_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            &["--target", "name=a,url=http://u:secret@h:1"][..],
            "--target #1: no model= given",
        ),
        (
            &["--target", "url=http://h:1,model=m,weight=-2"],
            "weight \"-2\" is not a number above 0",
        ),
        (
            &[
                "--target",
                "url=http://h:1,model=m",
                "--prometheus-url",
                "http://p:9090",
            ],
            "--target cannot be used with --prometheus-url",
        ),
        (
            &[
                "--target",
                "name=x,url=http://h:1,model=m;name=x,url=http://h:2,model=m",
            ],
            "\"x\" is named twice",
        ),
        (
            &[
                "--vllm-url",
                "http://h:1",
                "--lora-mix",
                "a,b",
                "--adapter-name",
                "c",
            ],
            "--adapter-name \"c\" is not in --lora-mix",
        ),
        (
            &["--vllm-url", "http://h:1", "--lora-mix", "a=0"],
            "--lora-mix \"a=0\": a: weight \"0\" is not a number above 0",
        ),
        (
            &[
                "--vllm-url",
                "http://h:1",
                "--adapter-name",
                "a",
                "--base-model-weight",
                "1",
            ],
            "--lora-mix",
        ),
    ] {
        let text = refused(args, dir.path());
        assert!(text.contains(want), "{args:?}: {text}");
        assert!(!text.contains("secret"), "{text}");
    }
}

#[test]
fn an_adapter_of_the_mix_that_is_not_served_fails_naming_it() {
    let sim = Sim::start(SimConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let run = load_test_against(
        &sim.url,
        dir.path(),
        4,
        &[
            "--lora-mix",
            "candidate=1,missing-lora=1",
            "--poll-interval",
            "0",
        ],
    );
    assert_eq!(run.output.status.code(), Some(3), "{}", stderr(&run.output));
    let text = stderr(&run.output);
    assert!(
        text.contains("mix member \"missing-lora\" (--lora-mix)") && text.contains("not served"),
        "{text}"
    );
    assert_eq!(
        sim.stats().accepted,
        0,
        "nothing sent before every member is checked"
    );
}

#[test]
fn serial_an_open_loop_timed_mix_keeps_its_weights_and_no_target_credential() {
    let (a, b) = (sim(2, 1), sim(2, 1));
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 3);
    let out = dir.path().join("out");
    // credentials in a target's URL (the simulator ignores them), targets from the env
    let with_creds = |url: &str| url.replacen("http://", "http://user:Tgt-Secret-9@", 1);
    let output = run(load_test()
        .env(
            "LOAD_TEST_TARGETS",
            format!(
                "name=a,url={},model=candidate,weight=3;name=b,url={},model=candidate",
                with_creds(&a.url),
                with_creds(&b.url)
            ),
        )
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--rate", "40", "--duration", "2s", "--max-tokens", "2"])
        .args(["--progress-interval", "0", "--poll-interval", "0"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let r = load_test_results(&out);
    let count = |name: &str| {
        member(&r, name)["client"]["total_requests"]
            .as_u64()
            .unwrap()
    };
    let (na, nb) = (count("a"), count("b"));
    // ~80 requests at 3:1
    assert!((70..=90).contains(&(na + nb)), "{na} + {nb}");
    assert!((na as f64 - 3.0 * nb as f64).abs() <= 4.0, "{na} vs {nb}");
    assert_eq!(a.stats().accepted, na);
    // every member walked the prompts: each saw all three
    let recs = request_records(&out);
    for name in ["a", "b"] {
        let mut prompts: Vec<u64> = recs
            .iter()
            .filter(|r| r["target"] == name)
            .map(|r| r["prompt_index"].as_u64().unwrap())
            .collect();
        prompts.sort_unstable();
        prompts.dedup();
        assert_eq!(prompts, [0, 1, 2], "{name}");
    }
    // the password is nowhere
    let mut texts = vec![
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr(&output),
    ];
    for f in std::fs::read_dir(&out).unwrap() {
        texts.push(std::fs::read_to_string(f.unwrap().path()).unwrap_or_default());
    }
    for t in &texts {
        assert!(!t.contains("Tgt-Secret-9"), "{t}");
    }
    assert!(
        r["config"]["targets"][0]
            .as_str()
            .unwrap()
            .starts_with("name=a,url=http://"),
        "{}",
        r["config"]["targets"]
    );
}

#[test]
fn a_target_mix_can_load_vllm_and_llama_cpp_together() {
    let vllm = sim(2, 1);
    let llama = Sim::start(SimConfig {
        api: vllm_sim::SimApi::Llamacpp,
        served_model_name: "tiny-llama".into(),
        lora_modules: Vec::new(),
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 4);
    let out = dir.path().join("out");
    let output = run(load_test()
        .arg("--target")
        .arg(format!("name=vllm,url={},model=candidate", vllm.url))
        .arg("--target")
        .arg(format!(
            "name=llama,url={},model=tiny-llama,api=llamacpp",
            llama.url
        ))
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args([
            "--num-requests",
            "20",
            "--concurrency",
            "4",
            "--max-tokens",
            "3",
        ])
        .args(["--progress-interval", "0", "--poll-interval", "0"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let r = load_test_results(&out);
    for (name, api) in [("vllm", "openai"), ("llama", "llamacpp")] {
        let m = member(&r, name);
        assert_eq!(m["api"], api);
        assert_eq!(
            m["client"]["successful_requests"], 10,
            "{name}: {}",
            m["client"]
        );
        assert_eq!(
            m["client"]["output_tokens"], 30,
            "{name}: the stream's own token counts"
        );
    }
    assert_eq!((vllm.stats().accepted, llama.stats().accepted), (10, 10));
    assert!(
        r["config"]["targets"][1]
            .as_str()
            .unwrap()
            .ends_with(",api=llamacpp")
    );
}

#[test]
fn serial_targets_with_their_own_concurrency_keep_their_own_slots() {
    let fast = sim(5, 2);
    let slow = sim(150, 20);
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 4);
    let out = dir.path().join("out");
    let output = run(load_test()
        .arg("--target")
        .arg(format!(
            "name=fast,url={},model=candidate,concurrency=2",
            fast.url
        ))
        .arg("--target")
        .arg(format!(
            "name=slow,url={},model=candidate,concurrency=3",
            slow.url
        ))
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out)
        .args(["--duration", "2s", "--max-tokens", "4"])
        .args(["--progress-interval", "0", "--poll-interval", "0"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let r = load_test_results(&out);
    assert_eq!(r["config"]["concurrency"], 5, "the targets' sum");
    let recs = request_records(&out);
    let of = |name: &str| {
        recs.iter()
            .filter(|r| r["target"] == name)
            .collect::<Vec<_>>()
    };
    let (f, s) = (of("fast"), of("slow"));
    assert!(
        most_in_flight(f.iter().copied()) <= 2,
        "fast: {}",
        most_in_flight(f.iter().copied())
    );
    assert!(
        most_in_flight(s.iter().copied()) <= 3,
        "slow: {}",
        most_in_flight(s.iter().copied())
    );
    // the slow target's requests never hold the fast one's slots: the fast one completes
    // many times more (~2 / 13 ms vs ~3 / 210 ms)
    assert!(
        f.len() > 5 * s.len(),
        "fast {} vs slow {}",
        f.len(),
        s.len()
    );
    assert_eq!(member(&r, "fast")["concurrency"], 2);
    // the fast target's pool is its own 2, not the run's 5: the pre-flight opens 2 or 3
    // connections of its own (4 or 5 in all, seen), 5 pre-opened would make 7 at least
    let stats = fast.stats();
    assert!(stats.connections < 5 + 2, "{stats:?}");
}
