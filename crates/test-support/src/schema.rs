//! Real output checked against the committed JSON Schemas (`schemas/`): what a consumer of the
//! files validates them with must accept what the binaries write.

use std::path::PathBuf;

use serde_json::Value;

/// The workspace's `schemas/<name>`.
pub fn schema_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(name)
}

/// Every violation of `schemas/<schema>` by `doc`, one line each (`at /path: message`).
pub fn violations(doc: &Value, schema: &str) -> Vec<String> {
    let path = schema_path(schema);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()));
    validator
        .iter_errors(doc)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

/// Panics, listing the violations, unless `doc` is valid against `schemas/<schema>`.
pub fn assert_valid(doc: &Value, schema: &str) {
    let v = violations(doc, schema);
    assert!(
        v.is_empty(),
        "not valid against schemas/{schema}:\n{}",
        v.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_rejects_what_the_schema_forbids() {
        let mut doc = serde_json::to_value(perf_gate::fixtures::results()).unwrap();
        assert_valid(&doc, "load_test_results.schema.json");
        doc["status"] = "sort of done".into();
        doc.as_object_mut().unwrap().remove("config");
        let v = violations(&doc, "load_test_results.schema.json");
        assert!(v.iter().any(|l| l.contains("/status")), "{v:?}");
        assert!(v.iter().any(|l| l.contains("config")), "{v:?}");
    }
}
