//! The committed JSON Schema of `load_test_results.json` must match the types. Regenerate with
//! `UPDATE_SCHEMAS=1 cargo test -p perf-gate --test schema`.

use perf_gate::decide::PerfDecision;
use perf_gate::results::{LoadTestResults, SCHEMA_VERSION};

fn schema_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(name)
}

fn check(name: &str, schema: schemars::Schema) {
    let mut text = serde_json::to_string_pretty(&schema).unwrap();
    text.push('\n');
    let path = schema_path(name);
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "schemas/{name} is stale: run UPDATE_SCHEMAS=1 cargo test -p perf-gate --test schema (and bump the file's schema_version if a field changed)"
    );
}

#[test]
fn load_test_results_schema_is_current() {
    assert_eq!(SCHEMA_VERSION, 5);
    check(
        "load_test_results.schema.json",
        schemars::schema_for!(LoadTestResults),
    );
}

#[test]
fn perf_decision_schema_is_current() {
    check(
        "perf_decision.schema.json",
        schemars::schema_for!(PerfDecision),
    );
}
