//! Every config file under `examples/` parses and runs a short smoke: each load-test example
//! against `vllm-sim` (the gate's with a REAL Prometheus, as it names one), with the command
//! line overriding its URLs, paths and size; the perf-decision example judges the gate's
//! results without MLflow. `config.json` must show each of the file's values with source `file`
//! and each override with source `cli`. A `serial_` test: it starts Prometheus and runs one
//! load after another.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use test_support::prometheus::PrometheusServer;
use test_support::sim::{Sim, eval_file};
use test_support::steps::{load_test, perf_decision, run, stderr};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The example files, sorted.
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// The example's keys (as long flag names) and values.
fn keys(path: &Path) -> Vec<(String, serde_norway::Value)> {
    let text = std::fs::read_to_string(path).expect("the example is readable");
    let doc: serde_norway::Mapping =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    doc.into_iter()
        .map(|(k, v)| {
            let k = k.as_str().expect("string keys").replace('_', "-");
            (k, v)
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// `config.json` in `out` says every key of the example came from the file, except `overridden`
/// (from the command line), and names the file.
fn assert_sources(example: &Path, out: &Path, overridden: &[&str]) -> Value {
    let record = read_json(&out.join("config.json"));
    let name = example.display();
    assert_eq!(record["schema_version"], 1, "{name}");
    assert_eq!(
        record["config_file"].as_str(),
        Some(example.to_str().unwrap()),
        "{name}"
    );
    let values = &record["values"];
    for (key, _) in keys(example) {
        let want = if overridden.contains(&key.as_str()) {
            "cli"
        } else {
            "file"
        };
        assert_eq!(values[&key]["source"], want, "{name}: {key}: {record:#}");
    }
    for key in overridden {
        assert_eq!(values[*key]["source"], "cli", "{name}: {key}");
    }
    assert_eq!(values["config"]["source"], "cli", "{name}");
    record
}

/// The adapter names the load-test examples send to (`adapter_name`, a `lora_mix`'s).
fn adapters(examples: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = examples
        .iter()
        .flat_map(|p| keys(p))
        .flat_map(|(k, v)| {
            let text = v.as_str().unwrap_or_default().to_string();
            match k.as_str() {
                "adapter-name" => vec![text],
                // `sql-lora=3,chat-lora=1`: every adapter of a LoRA mix
                "lora-mix" => text
                    .split(',')
                    .map(|p| p.split('=').next().unwrap_or_default().trim().to_string())
                    .collect(),
                _ => Vec::new(),
            }
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn serial_every_example_parses_and_runs_a_smoke() {
    let all = examples();
    assert!(
        all.iter().any(|p| p.ends_with("gate-seed000.yaml")),
        "{all:?}"
    );
    let (decision_examples, load_examples): (Vec<_>, Vec<_>) = all.iter().cloned().partition(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("perf-decision"))
    });
    assert!(!decision_examples.is_empty() && !load_examples.is_empty());
    let names = adapters(&load_examples);
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(1),
        max_loras: u32::try_from(names.len()).unwrap(),
        lora_modules: names
            .iter()
            .map(|n| vllm_sim::LoraModule::new(n, "/models/lora"))
            .collect(),
        ..Default::default()
    });
    // started only when an example names a Prometheus
    let mut prom: Option<PrometheusServer> = None;
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 8);
    let mut gate_results = None;
    for example in &load_examples {
        let stem = example.file_stem().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(&stem);
        let has = |key: &str| keys(example).iter().any(|(k, _)| k == key);
        let mut cmd = load_test();
        cmd.arg("--config")
            .arg(example)
            .arg(format!("--vllm-url={}", sim.url))
            .arg("--output-dir")
            .arg(&out);
        let mut overridden = vec!["vllm-url", "output-dir"];
        if has("eval-data-path") {
            cmd.arg("--eval-data-path").arg(&eval);
            overridden.push("eval-data-path");
        }
        // a short smoke of the example's own load model: its length cut, its shape kept
        let (length, flag): (&[&str], &str) = if has("steps") {
            (&["--step-duration=1s"], "step-duration")
        } else if has("stages") {
            (&["--stages=500ms:2,500ms:2"], "stages")
        } else if has("duration") || has("scenario") {
            (&["--duration=1s"], "duration")
        } else {
            (&["--num-requests=8"], "num-requests")
        };
        cmd.args(length);
        overridden.push(flag);
        if has("warmup") {
            cmd.arg("--warmup=0s");
            overridden.push("warmup");
        }
        let listed = flag == "num-requests";
        if keys(example).iter().any(|(k, _)| k == "prometheus-url") {
            let p = prom.get_or_insert_with(|| {
                let target = sim.url.trim_start_matches("http://").to_string();
                let p = PrometheusServer::start("vllm-service", &[&target], Duration::from_secs(1));
                p.wait_for_targets_up("vllm-service", Duration::from_secs(30));
                p
            });
            cmd.arg(format!("--prometheus-url={}", p.url()))
                .arg("--scrape-interval=1s");
            overridden.extend(["prometheus-url", "scrape-interval"]);
        }
        let o = run(&mut cmd);
        assert!(
            o.status.success(),
            "{}: exit {:?}\n{}",
            example.display(),
            o.status.code(),
            stderr(&o)
        );
        let results = read_json(&out.join("load_test_results.json"));
        assert_eq!(results["status"], "completed", "{}", example.display());
        let total = results["client"]["total_requests"].as_u64().unwrap_or(0);
        if listed {
            assert_eq!(total, 8, "{}", example.display());
        } else {
            assert!(total > 0, "{}: {}", example.display(), results["client"]);
        }
        let record = assert_sources(example, &out, &overridden);
        // the file's values reached the run
        for (key, value) in keys(example) {
            if overridden.contains(&key.as_str()) {
                continue;
            }
            let shown = &record["values"][&key]["value"];
            match &value {
                serde_norway::Value::Sequence(items) => {
                    assert_eq!(shown.as_array().map(Vec::len), Some(items.len()), "{key}");
                }
                serde_norway::Value::Number(n) => assert_eq!(shown, &n.to_string(), "{key}"),
                serde_norway::Value::String(s) => assert_eq!(shown, s, "{key}"),
                _ => {}
            }
        }
        if let Some(c) = record["values"]["concurrency"]["value"].as_str()
            && record["values"]["concurrency"]["source"] == "file"
        {
            assert_eq!(results["config"]["concurrency"].to_string(), c);
        }
        if stem == "gate-seed000" {
            assert_eq!(results["server"]["source"], "prometheus");
            gate_results = Some(out.join("load_test_results.json"));
        }
    }
    let gate_results = gate_results.expect("the gate example ran");
    for example in &decision_examples {
        let out = dir.path().join(example.file_stem().unwrap());
        let o = perf_decision()
            .arg("--config")
            .arg(example)
            .arg("--load-test-results")
            .arg(&gate_results)
            .arg("--output-dir")
            .arg(&out)
            .arg("--no-mlflow")
            .output()
            .unwrap();
        let status = std::fs::read_to_string(out.join("perf_status.txt")).unwrap_or_default();
        assert!(
            matches!(status.trim(), "passed" | "failed" | "invalid"),
            "{}: status {status:?}, exit {:?}\n{}",
            example.display(),
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.join("perf_decision.json").exists());
        let record = assert_sources(
            example,
            &out,
            &["load-test-results", "output-dir", "no-mlflow"],
        );
        assert_eq!(record["values"]["no-mlflow"]["value"], true);
    }
}

/// A bad key in a config file stops load-test before any request, exit 2, one line naming
/// the file, the key and its line; a secret in the file is refused the same way.
#[test]
fn a_bad_config_file_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, want) in [
        (
            "adapter-name: a\nconcurency: 4\n",
            "unknown key `concurency` (line 2); did you mean `concurrency`?",
        ),
        (
            "api-key: sk-In-File-1\n",
            "`api-key` (line 1) is a secret and is not read from a config file (a file gets committed): set VLLM_API_KEY instead",
        ),
        (
            "concurrency: 0\n",
            "`concurrency` (line 1): invalid value '0' for '--concurrency <CONCURRENCY>'",
        ),
    ] {
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, yaml).unwrap();
        let o = run(load_test()
            .env("LOAD_TEST_CONFIG", &path)
            .args(["--vllm-url=http://127.0.0.1:9", "--eval-data-path=e.jsonl"])
            .arg("--output-dir")
            .arg(dir.path().join("out")));
        assert_eq!(o.status.code(), Some(2), "{yaml}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("error: config file {}: ", path.display())),
            "{err}"
        );
        assert!(err.contains(want), "{yaml}: {err}");
        assert!(!err.contains("sk-In-File-1"), "{err}");
    }
}

/// Env var over file, command line over env var, all for one flag (`--max-tokens`).
#[test]
fn the_env_var_beats_the_file_and_the_command_line_beats_both() {
    let sim = Sim::start(vllm_sim::SimConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = eval_file(dir.path(), 2);
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "adapter_name: candidate\nmax_tokens: 7\nconcurrency: 3\nprogress-interval: 0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(load_test()
        .arg(format!("--config={}", path.display()))
        .env("MAX_TOKENS", "5")
        .env("CONCURRENCY", "2")
        .arg("--concurrency=1")
        .arg(format!("--vllm-url={}", sim.url))
        .arg("--eval-data-path")
        .arg(&eval)
        .arg("--output-dir")
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let record = read_json(&out.join("config.json"));
    let v = &record["values"];
    assert_eq!(
        v["max-tokens"],
        serde_json::json!({"value": "5", "source": "env"})
    );
    assert_eq!(
        v["concurrency"],
        serde_json::json!({"value": "1", "source": "cli"})
    );
    assert_eq!(
        v["adapter-name"],
        serde_json::json!({"value": "candidate", "source": "file"})
    );
    assert_eq!(v["progress-interval"]["source"], "file");
    assert_eq!(
        v["temperature"],
        serde_json::json!({"value": "0", "source": "default"})
    );
    let results = read_json(&out.join("load_test_results.json"));
    assert_eq!(results["config"]["max_tokens"], 5);
    assert_eq!(results["config"]["concurrency"], 1);
}
