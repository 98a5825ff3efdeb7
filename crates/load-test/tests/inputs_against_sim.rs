//! The input sources end to end against `vllm-sim` (issue 11, "Inputs"): synthetic prompts
//! sized with the server's `/tokenize` land on their target lengths (the sim's
//! `usage.prompt_tokens` in `requests.jsonl`) and repeat with the seed; without `/tokenize`
//! the lengths fall back to words and say so; `--ignore-eos` reaches the wire; prompt files,
//! a fixed prompt and the task mix run and are recorded.

use std::path::Path;
use std::time::Duration;

use perf_gate::workload::distribution::SizeDist;
use perf_gate::workload::plan;
use serde_json::Value;
use test_support::sim::Sim;
use test_support::steps::{load_test, load_test_results as results, run, stderr};

fn sim(cfg: vllm_sim::SimConfig) -> Sim {
    Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(2),
        itl: Duration::from_millis(1),
        max_num_seqs: 64,
        ..cfg
    })
}

/// Runs `load-test` against `sim` into `dir/name` with `args`; returns the results and the
/// request records sorted by prompt index.
fn load(sim: &Sim, dir: &Path, name: &str, args: &[&str]) -> (Value, Vec<Value>) {
    let out = dir.join(name);
    let o = run(load_test()
        .args(["--vllm-url", &sim.url, "--adapter-name", "candidate"])
        .arg("--output-dir")
        .arg(&out)
        .args(["--progress-interval", "0", "--concurrency", "8"])
        .args(args));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut records: Vec<Value> = std::fs::read_to_string(out.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    records.sort_by_key(|r| r["prompt_index"].as_u64());
    (results(&out), records)
}

fn prompt_tokens(records: &[Value]) -> Vec<u32> {
    records
        .iter()
        .map(|r| r["prompt_tokens"].as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn synthetic_lengths_follow_their_distribution_with_tokenize_and_repeat_with_the_seed() {
    let sim = sim(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let spec = "normal:120:30:60:180";
    let n = 80;
    let args = [
        "--input-size",
        spec,
        "--num-requests",
        "80",
        "--seed",
        "11",
        "--max-tokens",
        "2",
    ];
    let (r, recs) = load(&sim, dir.path(), "a", &args);
    assert_eq!(recs.len(), n);
    assert_eq!(r["config"]["input_source"], "synthetic");
    assert_eq!(r["config"]["input_size"], spec);
    assert!(r["config"].get("eval_data_path").is_none());
    let inputs = &r["inputs"];
    assert_eq!(inputs["calibration"], "tokenize", "{inputs}");
    assert_eq!(inputs["requests"], n);
    // each prompt within a token or two of its own target (the sim counts 4 bytes a token,
    // so a word boundary may not fall exactly on it), as the server's usage says
    let size: SizeDist = spec.parse().unwrap();
    let targets = plan::synthetic(&size, n as u64, &SizeDist::Fixed(2), 0.0, 11).targets;
    let seen = prompt_tokens(&recs);
    for (i, (got, want)) in seen.iter().zip(&targets).enumerate() {
        assert!(
            got.abs_diff(*want) <= 2,
            "prompt {i}: {got} tokens for {want}"
        );
    }
    // the distribution: mean near 120, clamps respected
    let mean = seen.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    assert!((mean - 120.0).abs() < 10.0, "mean {mean}");
    assert!(seen.iter().all(|&x| (58..=182).contains(&x)), "{seen:?}");
    let measured = inputs["prompt_tokens_measured"]["mean"].as_f64().unwrap();
    assert!((measured - mean).abs() < 0.5, "{measured} vs {mean}");
    assert!(inputs["prompt_tokens_mean_abs_error"].as_f64().unwrap() <= 2.0);

    // same seed: same prompts (digest), same lengths; another seed: other prompts
    let (again, recs2) = load(&sim, dir.path(), "b", &args);
    assert_eq!(again["eval_data"]["sha256"], r["eval_data"]["sha256"]);
    assert_eq!(prompt_tokens(&recs2), seen);
    let mut other = args;
    other[5] = "12";
    let (third, _) = load(&sim, dir.path(), "c", &other);
    assert_ne!(third["eval_data"]["sha256"], r["eval_data"]["sha256"]);
}

/// On the chat endpoint the prompt is counted as a user message, so the chat template's
/// tokens are inside the target, as the server's `usage.prompt_tokens` counts them.
#[test]
fn chat_prompts_are_sized_with_their_template() {
    let sim = sim(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let spec = "uniform:40:80";
    let (r, recs) = load(
        &sim,
        dir.path(),
        "chat",
        &[
            "--input-size",
            spec,
            "--endpoint",
            "chat",
            "--num-requests",
            "20",
            "--max-tokens",
            "1",
        ],
    );
    assert_eq!(r["inputs"]["calibration"], "tokenize");
    let size: SizeDist = spec.parse().unwrap();
    let targets = plan::synthetic(&size, 20, &SizeDist::Fixed(1), 0.0, 0).targets;
    for (got, want) in prompt_tokens(&recs).iter().zip(&targets) {
        assert!(got.abs_diff(*want) <= 2, "{got} tokens for {want}");
    }
}

#[test]
fn without_tokenize_lengths_are_words_and_the_results_say_so() {
    let sim = sim(vllm_sim::SimConfig {
        tokenize: false,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (r, recs) = load(
        &sim,
        dir.path(),
        "w",
        &[
            "--input-size",
            "uniform:20:40",
            "--num-requests",
            "10",
            "--max-tokens",
            "1",
        ],
    );
    assert_eq!(recs.len(), 10);
    assert_eq!(r["inputs"]["calibration"], "words");
    assert!(
        r["inputs"]["calibration_note"]
            .as_str()
            .unwrap()
            .contains("HTTP 404"),
        "{}",
        r["inputs"]
    );
    assert!(r["inputs"].get("prompt_tokens_measured").is_none());
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("counted in words"), "{warnings}");
}

#[test]
fn a_tokenizer_file_sizes_prompts_when_the_server_has_no_tokenize() {
    let sim = sim(vllm_sim::SimConfig {
        tokenize: false,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let tok = test_support::sim::tokenizer_file(dir.path());
    let (r, recs) = load(
        &sim,
        dir.path(),
        "t",
        &[
            "--task-mix",
            "short=1,medium=1",
            "--tokenizer-file",
            tok.to_str().unwrap(),
            "--num-requests",
            "10",
            "--max-tokens",
            "1",
        ],
    );
    assert_eq!(recs.len(), 10);
    let inputs = &r["inputs"];
    assert_eq!(inputs["calibration"], "tokenizer-file", "{inputs}");
    assert!(
        inputs["calibration_note"]
            .as_str()
            .unwrap()
            .contains("HTTP 404")
    );
    // word-level: every prompt hits its target exactly by this tokenizer's count
    assert_eq!(inputs["prompt_tokens_mean_abs_error"], 0.0);
    assert_eq!(
        inputs["prompt_tokens_measured"]["mean"],
        inputs["prompt_tokens_target"]["mean"]
    );
    assert_eq!(r["config"]["tokenizer_file"], tok.to_str().unwrap());
    // only for synthetic prompts; a bad file stops the run before the network
    let o = run(load_test()
        .args(["--vllm-url", "http://127.0.0.1:9", "--adapter-name", "c"])
        .args(["--prompt-text", "hi", "--tokenizer-file"])
        .arg(&tok));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--tokenizer-file sizes synthetic prompts"),
        "{}",
        stderr(&o)
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "not json").unwrap();
    let o = run(load_test()
        .args(["--vllm-url", "http://127.0.0.1:9", "--adapter-name", "c"])
        .args(["--input-size", "64", "--tokenizer-file"])
        .arg(&bad)
        .arg("--output-dir")
        .arg(dir.path().join("bad")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--tokenizer-file "), "{}", stderr(&o));
}

#[test]
fn ignore_eos_reaches_the_wire_and_max_tokens_draws_are_recorded() {
    // every sequence would stop at its first token, unless the request ignores EOS
    let sim = sim(vllm_sim::SimConfig {
        stop_probability: 1.0,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let base = ["--prompt-text", "Hello there", "--num-requests", "12"];
    let (_, stopped) = load(
        &sim,
        dir.path(),
        "eos",
        &[&base[..], &["--max-tokens", "6"]].concat(),
    );
    assert!(
        stopped.iter().all(|r| r["output_tokens"] == 1),
        "{stopped:?}"
    );
    let (r, full) = load(
        &sim,
        dir.path(),
        "ignore",
        &[
            &base[..],
            &["--max-tokens", "uniform:3:9", "--ignore-eos", "--seed", "4"],
        ]
        .concat(),
    );
    assert_eq!(r["config"]["ignore_eos"], true);
    assert_eq!(r["config"]["max_tokens"], 9);
    assert_eq!(r["config"]["max_tokens_dist"], "uniform:3:9");
    assert_eq!(r["config"]["input_source"], "prompt-text");
    let outs: Vec<u64> = full
        .iter()
        .map(|r| r["output_tokens"].as_u64().unwrap())
        .collect();
    assert!(outs.iter().all(|o| (3..=9).contains(o)), "{outs:?}");
    assert!(outs.iter().any(|&o| o != outs[0]), "sizes vary: {outs:?}");
    let drawn = &r["inputs"]["max_tokens"];
    let mean = outs.iter().sum::<u64>() as f64 / outs.len() as f64;
    assert!(
        (drawn["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{drawn}"
    );
    assert_eq!(r["client"]["output_tokens"], outs.iter().sum::<u64>());
}

#[test]
fn more_requests_than_prompts_cycle_the_prompts_in_order() {
    // a plain load keeps one pass over the prompts and cycles it: the count and the order
    // must be those of the full list
    let sim = sim(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.txt");
    std::fs::write(&file, "first\nsecond\nthird\n").unwrap();
    let (r, recs) = load(
        &sim,
        dir.path(),
        "cycled",
        &[
            "--prompt-file",
            file.to_str().unwrap(),
            "--num-requests",
            "11",
            "--concurrency",
            "1",
            "--max-tokens",
            "2",
        ],
    );
    assert_eq!(recs.len(), 11);
    let mut by_seq: Vec<(u64, u64)> = recs
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().unwrap(),
                r["prompt_index"].as_u64().unwrap(),
            )
        })
        .collect();
    by_seq.sort();
    let expected: Vec<(u64, u64)> = (0..11).map(|k| (k, k % 3)).collect();
    assert_eq!(by_seq, expected);
    assert_eq!(r["inputs"]["requests"], 11);
    assert_eq!(r["client"]["total_requests"], 11, "{}", r["client"]);
    assert_eq!(sim.stats().accepted, 11);
}

#[test]
fn prompt_files_and_the_task_mix_run_and_are_recorded() {
    let sim = sim(Default::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.txt");
    std::fs::write(
        &file,
        "Hello there\n{\"prompt\": \"from a row\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"chat\"}]}\n",
    )
    .unwrap();
    let (r, recs) = load(
        &sim,
        dir.path(),
        "file",
        &["--prompt-file", file.to_str().unwrap(), "--max-tokens", "2"],
    );
    assert_eq!(recs.len(), 3);
    assert_eq!(r["config"]["input_source"], "prompt-file");
    assert_eq!(r["config"]["prompt_file"], file.to_str().unwrap());
    assert_eq!(r["eval_data"]["path"], file.to_str().unwrap());
    assert_eq!(r["eval_data"]["rows"], 3);
    assert_eq!(r["client"]["successful_requests"], 3);

    let (m, recs) = load(
        &sim,
        dir.path(),
        "mix",
        &[
            "--task-mix",
            "short=3,long=1,health=1",
            "--num-requests",
            "24",
            "--max-tokens",
            "1",
        ],
    );
    assert_eq!(recs.len(), 24);
    let tasks = &m["inputs"]["tasks"];
    let count = |t: &str| tasks[t].as_u64().unwrap_or(0);
    assert_eq!(
        count("short") + count("long") + count("health"),
        24,
        "{tasks}"
    );
    // the GET tasks went out in the load's stream, recorded with their probe, counted apart
    let health = count("health");
    assert!(health > 0, "{tasks}");
    let probes: Vec<&Value> = recs.iter().filter(|r| r["probe"] == "health").collect();
    assert_eq!(probes.len() as u64, health);
    assert!(
        probes
            .iter()
            .all(|r| r["ok"] == true && r["http_status"] == 200)
    );
    let p = &m["probes"][0];
    assert_eq!(
        (p["task"].as_str(), p["path"].as_str()),
        (Some("health"), Some("/health"))
    );
    assert_eq!(p["requests"], health);
    assert_eq!(p["successful_requests"], health);
    assert_eq!(m["client"]["total_requests"], 24 - health);
    let generations: Vec<Value> = recs
        .iter()
        .filter(|r| r["probe"].is_null())
        .cloned()
        .collect();
    for t in prompt_tokens(&generations) {
        assert!(t.abs_diff(64) <= 2 || t.abs_diff(256) <= 2, "{t}");
    }

    // a bad prompt file fails before the network, naming its line (exit 2)
    std::fs::write(&file, "ok\n{\"answer\": 1}\n").unwrap();
    let out = dir.path().join("bad");
    let o = run(load_test()
        .args([
            "--vllm-url",
            "http://127.0.0.1:9",
            "--adapter-name",
            "candidate",
        ])
        .arg("--prompt-file")
        .arg(&file)
        .arg("--output-dir")
        .arg(&out));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("line 2: a JSON row needs a `prompt`, `text` or `messages` field"),
        "{}",
        stderr(&o)
    );
}
