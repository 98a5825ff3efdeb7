//! Properties of the two Prometheus readers: the text exposition parser
//! (`perf_gate::prom::parse_exposition`) and the instant-query answer reader
//! (`perf_gate::prom::InstantAnswer::parse`). Arbitrary input never panics them; generated
//! valid input reads back as generated.

use perf_gate::prom::{InstantAnswer, MetricFamily, MetricKind, Sample, parse_exposition};
use proptest::prelude::*;
use serde_json::json;

// ---- exposition ------------------------------------------------------------------------------

/// A sample value: finite, or ±Inf (NaN is compared apart, it equals nothing).
fn sample_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => any::<f64>().prop_filter("finite", |v| v.is_finite()),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => (-1000i64..1000).prop_map(|v| v as f64),
    ]
}

fn spell(v: f64) -> String {
    match v {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        // Rust's shortest round-trip form, with an exponent when long (Go writes it so too)
        v if v != 0.0 && !(1e-4..1e15).contains(&v.abs()) => format!("{v:e}"),
        v => format!("{v}"),
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\r]{0,12}",
        Just("+Inf".to_string()),
        Just("a\"b\\c\nd".to_string())
    ]
}

fn sample_for(name: String) -> impl Strategy<Value = Sample> {
    (
        proptest::collection::vec(("[a-z_][a-z0-9_]{0,6}", label_value()), 0..4),
        sample_value(),
        proptest::option::of(0i64..4_000_000_000_000),
    )
        .prop_map(move |(labels, value, ts)| Sample {
            name: name.clone(),
            labels,
            value,
            timestamp: ts.map(|t| t as f64),
        })
}

fn family() -> impl Strategy<Value = MetricFamily> {
    (
        "[a-z][a-z0-9]{0,5}(:[a-z][a-z0-9]{0,5})?",
        prop_oneof![
            Just(MetricKind::Counter),
            Just(MetricKind::Gauge),
            Just(MetricKind::Untyped)
        ],
        proptest::option::of("[A-Za-z0-9.,]([A-Za-z0-9 .,]{0,20}[A-Za-z0-9.,])?"),
        1..5usize,
    )
        .prop_flat_map(|(name, kind, help, n)| {
            let samples = proptest::collection::vec(sample_for(name.clone()), n..=n);
            (Just(name), Just(kind), Just(help), samples)
        })
        .prop_map(|(name, kind, help, samples)| MetricFamily {
            name,
            kind,
            help,
            samples,
        })
}

fn families() -> impl Strategy<Value = Vec<MetricFamily>> {
    proptest::collection::vec(family(), 0..6).prop_map(|mut fs| {
        let mut seen = std::collections::HashSet::new();
        fs.retain(|f| seen.insert(f.name.clone()));
        fs
    })
}

fn write_exposition(families: &[MetricFamily], eol: &str) -> String {
    let mut out = String::new();
    for f in families {
        if let Some(h) = &f.help {
            out.push_str(&format!(
                "# HELP {} {}{eol}",
                f.name,
                h.replace('\\', "\\\\")
            ));
        }
        let kind = match f.kind {
            MetricKind::Counter => Some("counter"),
            MetricKind::Gauge => Some("gauge"),
            _ => None,
        };
        if let Some(k) = kind {
            out.push_str(&format!("# TYPE {} {k}{eol}", f.name));
        }
        for s in &f.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                out.push_str(&format!("{{{}}}", labels.join(",")));
            }
            out.push_str(&format!(" {}", spell(s.value)));
            if let Some(t) = s.timestamp {
                out.push_str(&format!(" {t}"));
            }
            out.push_str(eol);
        }
    }
    out
}

// ---- instant answers -------------------------------------------------------------------------

fn answer_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => any::<f64>().prop_filter("finite", |v| v.is_finite()),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

fn prom_spell(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v:e}"),
    }
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
        (None, None) => true,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn exposition_arbitrary_text_never_panics(text in "\\PC*|[ -~\n#{}\"=,\\\\]{0,200}") {
        let _ = parse_exposition(&text);
    }

    #[test]
    fn exposition_arbitrary_unicode_never_panics(text in any::<String>()) {
        let _ = parse_exposition(&text);
    }

    #[test]
    fn exposition_generated_text_reads_back(fs in families(), crlf in any::<bool>()) {
        let text = write_exposition(&fs, if crlf { "\r\n" } else { "\n" });
        let read = parse_exposition(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(read, fs, "{}", text);
    }

    #[test]
    fn answer_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = InstantAnswer::parse(&text);
    }

    #[test]
    fn answer_json_shaped_garbage_never_panics(
        status in prop_oneof![Just("success".to_string()), Just("error".to_string()), "[a-z]{0,6}"],
        kind in prop_oneof![
            Just("vector".to_string()),
            Just("scalar".to_string()),
            Just("matrix".to_string()),
            Just("string".to_string()),
            "[a-z]{0,6}",
        ],
        result in prop_oneof![
            Just(json!([])),
            Just(json!([1, "1"])),
            Just(json!([{"metric": {}, "value": [1, "x"]}])),
            Just(json!([{"metric": {}, "values": [[1, "1"]]}])),
            Just(json!(null)),
            Just(json!({"a": 1})),
            any::<i64>().prop_map(|v| json!(v)),
        ],
    ) {
        let body = json!({"status": status, "data": {"resultType": kind, "result": result}});
        let _ = InstantAnswer::parse(&body.to_string());
    }

    #[test]
    fn answer_generated_vector_reads_back(
        values in proptest::collection::vec(answer_value(), 0..5),
        warnings in proptest::collection::vec("\\PC{0,12}", 0..3),
        infos in proptest::collection::vec("\\PC{0,12}", 0..3),
        at in 0.0..2e9f64,
    ) {
        let result: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"metric": {"le": i.to_string()}, "value": [at, prom_spell(*v)]}))
            .collect();
        let body = json!({
            "status": "success",
            "data": {"resultType": "vector", "result": result},
            "warnings": warnings,
            "infos": infos,
        });
        let a = InstantAnswer::parse(&body.to_string()).map_err(TestCaseError::fail)?;
        prop_assert!(same(a.value, values.first().copied()), "{:?} vs {:?}", a.value, values);
        prop_assert_eq!(a.series, values.len());
        let mut expected = warnings.clone();
        expected.extend(infos);
        prop_assert_eq!(a.warnings, expected);
    }

    #[test]
    fn answer_generated_scalar_and_error_read_back(
        v in answer_value(),
        error_type in "[a-z_]{1,10}",
        error in "\\PC{0,20}",
    ) {
        let body = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.5, prom_spell(v)]}});
        let a = InstantAnswer::parse(&body.to_string()).map_err(TestCaseError::fail)?;
        prop_assert!(same(a.value, Some(v)));
        prop_assert_eq!(a.series, 1);
        let body = json!({"status": "error", "errorType": error_type, "error": error});
        prop_assert_eq!(InstantAnswer::parse(&body.to_string()), Err(format!("{error_type}: {error}")));
    }
}

#[test]
fn a_matrix_is_not_an_instant_answer() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#;
    assert_eq!(
        InstantAnswer::parse(body),
        Err("a range vector for an instant query".to_string())
    );
}
