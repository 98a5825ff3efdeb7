//! Property: the decision never passes when a figure it judges is null, NaN, infinite, negative
//! or outside its range, whichever check reads it, whichever source feeds checks 1-3, and in
//! comparative mode whether the bad figure is the candidate's or the baseline's.

use perf_gate::decision::metrics::sanity::check_ranges;
use perf_gate::decision::{
    CheckKeys, MetricsSource, Thresholds, Verdict, candidate_metrics, decide,
};
use perf_gate::fixtures;
use perf_gate::results::{Latency, LoadTestResults, Measured};
use proptest::prelude::*;

/// Which judged figure is spoiled.
#[derive(Debug, Clone, Copy)]
enum Judged {
    P95Latency,
    P95Ttft,
    Throughput,
    SuccessRate,
}

fn judged() -> impl Strategy<Value = Judged> {
    prop_oneof![
        Just(Judged::P95Latency),
        Just(Judged::P95Ttft),
        Just(Judged::Throughput),
        Just(Judged::SuccessRate),
    ]
}

fn source() -> impl Strategy<Value = MetricsSource> {
    prop_oneof![Just(MetricsSource::Server), Just(MetricsSource::Client)]
}

/// A value no judged figure may have: `None` is null.
fn bad_value(which: Judged) -> BoxedStrategy<Option<f64>> {
    let always = prop_oneof![
        Just(None),
        Just(Some(f64::NAN)),
        Just(Some(f64::INFINITY)),
        Just(Some(f64::NEG_INFINITY)),
        (-1e12..-1e-12f64).prop_map(Some),
        Just(Some(-0.5)),
    ];
    match which {
        // a fraction lies in [0, 1]
        Judged::SuccessRate => prop_oneof![always, (1.0 + 1e-6..1e9f64).prop_map(Some)].boxed(),
        _ => always.boxed(),
    }
}

/// `results` with the figure `which` (of `source`) set to `value`.
fn spoil(results: &mut LoadTestResults, which: Judged, source: MetricsSource, value: Option<f64>) {
    let measured = Measured {
        value,
        reason: None,
    };
    let server = results
        .server
        .as_mut()
        .expect("fixture has a server section");
    let client = results
        .client
        .as_mut()
        .expect("fixture has a client section");
    let latency = value.map(Latency::Finite);
    match (which, source) {
        (Judged::P95Latency, MetricsSource::Server) => server.e2e_latency_s.p95 = measured,
        (Judged::P95Ttft, MetricsSource::Server) => server.ttft_s.p95 = measured,
        (Judged::Throughput, MetricsSource::Server) => server.throughput_rps = measured,
        (Judged::P95Latency, MetricsSource::Client) => client.e2e_adjusted_s.p95 = latency,
        (Judged::P95Ttft, MetricsSource::Client) => client.ttft_adjusted_s.p95 = latency,
        (Judged::Throughput, MetricsSource::Client) => client.requests_per_s = value,
        (Judged::SuccessRate, _) => client.success_rate = value,
    }
}

fn verdict(
    candidate: &LoadTestResults,
    baseline: Option<&LoadTestResults>,
    source: MetricsSource,
) -> Verdict {
    let metrics = candidate_metrics(candidate);
    // As perf-decision treats a baseline: impossible figures become "no data".
    let baseline = baseline.map(|b| {
        let mut m = candidate_metrics(b);
        check_ranges(&mut m);
        m
    });
    decide(
        &metrics,
        baseline.as_ref(),
        &Thresholds::default(),
        &CheckKeys::for_source(source),
    )
    .verdict
}

#[test]
fn the_unspoiled_fixture_passes_both_modes_and_sources() {
    // Without this, "never passed" below would hold trivially.
    let good = fixtures::results();
    for source in [MetricsSource::Server, MetricsSource::Client] {
        assert_eq!(verdict(&good, None, source), Verdict::Passed);
        assert_eq!(verdict(&good, Some(&good), source), Verdict::Passed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_bad_candidate_figure_never_passes(
        (which, value) in judged().prop_flat_map(|w| (Just(w), bad_value(w))),
        source in source(),
        comparative in any::<bool>(),
    ) {
        let good = fixtures::results();
        let mut bad = good.clone();
        spoil(&mut bad, which, source, value);
        let baseline = comparative.then_some(&good);
        prop_assert_ne!(verdict(&bad, baseline, source), Verdict::Passed);
    }

    #[test]
    fn a_bad_baseline_figure_never_passes(
        (which, value) in judged().prop_flat_map(|w| (Just(w), bad_value(w))),
        source in source(),
    ) {
        // A baseline's figures come from MLflow as logged, not from a results document:
        // perf-decision only applies the range rules to them.
        let good = fixtures::results();
        let keys = CheckKeys::for_source(source);
        let key = match which {
            Judged::P95Latency => &keys.p95_latency,
            Judged::P95Ttft => &keys.p95_ttft,
            Judged::Throughput => &keys.throughput,
            Judged::SuccessRate => &keys.success_rate,
        };
        let mut baseline = candidate_metrics(&good);
        baseline.insert(key.clone(), Measured { value, reason: None });
        check_ranges(&mut baseline);
        let eval = decide(
            &candidate_metrics(&good),
            Some(&baseline),
            &Thresholds::default(),
            &keys,
        );
        prop_assert_ne!(eval.verdict, Verdict::Passed);
    }
}
