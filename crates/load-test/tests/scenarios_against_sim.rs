//! `--scenario` presets end to end against `vllm-sim`: a preset's flags sit under the command
//! line, env vars and the config file, a user's length replaces the preset's, `config.json`
//! says which values came from the preset, and `--list-scenarios` needs no other flag.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{
    load_test, load_test_against, load_test_results as results, run, stderr,
};

fn scenario(sim: &Sim, dir: &Path, args: &[&str]) -> (std::process::Output, Value, Value) {
    let run = load_test_against(&sim.url, dir, 10, &[&["--max-tokens", "2"], args].concat());
    let config = std::fs::read_to_string(run.out.join("config.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (run.output, results(&run.out), config)
}

fn source<'a>(config: &'a Value, flag: &str) -> &'a str {
    config["values"][flag]["source"].as_str().unwrap_or("?")
}

#[test]
fn a_preset_sits_under_the_user_s_flags() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // stress: 100 users, 15 min, ramp 5 s, the aggressive class; ours: 4 users for 1 s
    let (o, r, config) = scenario(
        &sim,
        dir.path(),
        &[
            "--scenario",
            "stress",
            "--duration",
            "1s",
            "--concurrency",
            "4",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = &r["config"];
    assert_eq!(c["scenario"], "stress");
    assert_eq!(c["concurrency"], 4);
    assert_eq!(c["duration_s"], 1.0);
    assert_eq!(c["think"], "high");
    assert_eq!(c["ramp_up_s"], 5.0);
    assert_eq!(source(&config, "concurrency"), "cli");
    assert_eq!(source(&config, "duration"), "cli");
    assert_eq!(source(&config, "user-class"), "preset");
    assert_eq!(source(&config, "ramp-up"), "preset");
    // 0.1 to 0.5 s pauses, at most 4 users, 1 s: a handful of requests, not thousands
    let n = r["client"]["total_requests"].as_u64().unwrap();
    assert!((1..=40).contains(&n), "{n}");
}

#[test]
fn a_request_count_replaces_the_preset_s_duration() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (o, r, config) = scenario(
        &sim,
        dir.path(),
        &[
            "--scenario",
            "smoke",
            "--num-requests",
            "5",
            "--think-time",
            "0s",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = &r["config"];
    assert!(c["duration_s"].is_null(), "{c}");
    assert_eq!(c["num_requests"], 5);
    assert_eq!(c["concurrency"], 5);
    assert_eq!(source(&config, "concurrency"), "preset");
    // --think-time of ours stands for --user-class: the preset's class is dropped, no clash
    assert_eq!(c["think"], "0s");
    assert_eq!(r["client"]["total_requests"], 5);
}

#[test]
fn unknown_scenarios_are_refused_and_the_list_needs_no_flags() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(load_test()
        .args(["--vllm-url", "http://127.0.0.1:9", "--adapter-name", "a"])
        .arg("--eval-data-path")
        .arg(eval_file(dir.path(), 1))
        .arg("--output-dir")
        .arg(dir.path().join("out"))
        .args(["--scenario", "smoky"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown scenario \"smoky\": use one of smoke, baseline"),
        "{}",
        stderr(&o)
    );
    let o = run(load_test().arg("--list-scenarios"));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    for name in [
        "smoke",
        "baseline",
        "medium",
        "ramp",
        "high",
        "burst",
        "stress",
        "endurance",
    ] {
        assert!(text.contains(name), "{text}");
    }
}

/// `config.json` records a switch as the run read it: `IGNORE_EOS=y` is on (clap's boolish
/// words), not only `true`, so the record and the results agree.
#[test]
fn a_switch_set_by_a_boolish_env_word_is_recorded_on() {
    let sim = Sim::start(vllm_sim::SimConfig::default());
    for (word, on) in [("y", true), ("Yes", true), ("off", false), ("0", false)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = run(load_test()
            .env("IGNORE_EOS", word)
            .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
            .arg("--eval-data-path")
            .arg(eval_file(dir.path(), 2))
            .arg("--output-dir")
            .arg(&out)
            .args(["--num-requests", "2", "--max-tokens", "2"])
            .args(["--progress-interval", "0"]));
        assert!(o.status.success(), "{word}: {}", stderr(&o));
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(
            config["values"]["ignore-eos"]["value"], on,
            "{word}: {config}"
        );
        assert_eq!(source(&config, "ignore-eos"), "env", "{word}");
        // the results leave a switch that is off out
        let used = results(&out)["config"]["ignore_eos"]
            .as_bool()
            .unwrap_or(false);
        assert_eq!(used, on, "{word}");
    }
}
