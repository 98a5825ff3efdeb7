//! Exact answers from a REAL Prometheus (Debian's 2.42) on backfilled histories: raw samples at
//! 15 s, 30 s and 60 s scrape intervals, window edges and lookback, counters read at a time,
//! `histogram_quantile` over anchored windows, restarts, missed scrapes, down periods, targets
//! with different phases or born inside the window, and every sample of a busy history read back.
//! Each expectation is computed here from the scenario, not by the model under test.

use anyhow::Result;
use test_support::backfill::BackfilledPrometheus;
use test_support::history::{
    DcgmGpu, FinishReason, History, REQUEST_LATENCY_BUCKETS, Request, Series,
    TIME_TO_FIRST_TOKEN_BUCKETS, Target, TimeBase,
};

/// `(offset seconds, value)` of each sample of a series.
fn points(prom: &BackfilledPrometheus, s: &Series) -> Vec<(f64, f64)> {
    s.samples
        .iter()
        .map(|(ms, v)| (prom.base().offset_of_unix_ms(*ms), *v))
        .collect()
}

/// The one series a range query returns, as `(offset, value)` points.
fn one_series(prom: &BackfilledPrometheus, promql: &str, at: f64) -> Result<Vec<(f64, f64)>> {
    let m = prom.matrix(promql, at)?;
    anyhow::ensure!(m.len() == 1, "{promql} at {at}: {m:?}");
    Ok(points(prom, &m[0]))
}

/// Offsets `t0, t0 + step, ..., <= t1` (exact in milliseconds).
fn grid(t0: f64, t1: f64, step: f64) -> Vec<f64> {
    let (a, b, s) = (ms(t0), ms(t1), ms(step));
    (0..)
        .map(|k| a + k * s)
        .take_while(|t| *t <= b)
        .map(|t| t as f64 / 1000.0)
        .collect()
}

fn ms(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

/// A request scheduled at `start`, queued 2 s before, first token 0.5 s after, done at `end`,
/// recorded 0.2 s later.
fn span(h: &mut History, t: test_support::history::TargetId, start: f64, end: f64) {
    h.add_request(Request::new(t, start - 2.0, start, start + 0.5, end).lag(0.2));
}

#[test]
fn raw_samples_at_15_30_and_60_s_intervals_have_the_scrape_times_and_states() -> Result<()> {
    let spans = [
        (100.0, 130.0),
        (110.0, 250.0),
        (200.0, 201.0),
        (305.0, 420.0),
        (320.0, 330.0),
        (400.0, 500.0),
    ];
    let running = |t: f64| {
        spans
            .iter()
            .filter(|(s, e)| ms(*s) <= ms(t) && ms(t) < ms(e + 0.2))
            .count() as f64
    };
    let waiting = |t: f64| {
        spans
            .iter()
            .filter(|(s, _)| ms(s - 2.0) <= ms(t) && ms(t) < ms(*s))
            .count() as f64
    };
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 600.0);
    // (interval, phase, last scrape at or before 560 s)
    let cases = [
        (15.0, 2.5, 557.5),
        (30.0, 7.25, 547.25),
        (60.0, 0.125, 540.125),
    ];
    for (interval, phase, _) in cases {
        let t = h.add_target(
            Target::new(&format!("x{interval}"), "10.0.0.1:8000")
                .interval(interval)
                .phase(phase),
        );
        for (s, e) in spans {
            span(&mut h, t, s, e);
        }
    }
    let prom = BackfilledPrometheus::start(&h)?;
    for (interval, _, last) in cases {
        let job = format!("x{interval}");
        // Anchored on a scrape: W = 240 s holds 240 / I + 1 samples, both edges included.
        let expected: Vec<(f64, f64)> = grid(last - 240.0, last, interval)
            .into_iter()
            .map(|t| (t, running(t)))
            .collect();
        assert_eq!(expected.len(), 240 / interval as usize + 1);
        let distinct: std::collections::BTreeSet<i64> =
            expected.iter().map(|(_, v)| *v as i64).collect();
        assert!(distinct.len() > 1, "the window should see the gauge change");
        let got = one_series(
            &prom,
            &format!("vllm:num_requests_running{{job=\"{job}\"}}[240s]"),
            last,
        )?;
        assert_eq!(got, expected, "running, I = {interval}");
        // Not anchored: the scrapes inside [T - W, T].
        let at = last - interval / 2.0;
        let from = grid(last - 240.0 - interval, last, interval);
        let expected: Vec<(f64, f64)> = from
            .into_iter()
            .filter(|t| ms(at - 240.0) <= ms(*t) && ms(*t) <= ms(at))
            .map(|t| (t, waiting(t)))
            .collect();
        let got = one_series(
            &prom,
            &format!("vllm:num_requests_waiting{{job=\"{job}\"}}[240s]"),
            at,
        )?;
        assert_eq!(got, expected, "waiting, I = {interval}, T = {at}");
    }
    Ok(())
}

#[test]
fn windows_include_a_sample_exactly_at_t_minus_w_and_lookback_is_five_minutes() -> Result<()> {
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 300.0);
    let x = h.add_target(Target::new("x", "a:1").interval(30.0));
    // Running at the 270 s scrape only (recorded, so no longer running, at 285 s).
    span(&mut h, x, 265.0, 284.8);
    let prom = BackfilledPrometheus::start(&h)?;
    let times = |q: &str, at: f64| -> Result<Vec<f64>> {
        Ok(one_series(&prom, q, at)?.into_iter().map(|p| p.0).collect())
    };
    let q = r#"vllm:num_requests_running{job="x"}"#;
    // Prometheus 2.42: [T - W, T], closed at both ends (Prometheus 3 opens the left end).
    assert_eq!(times(&format!("{q}[60s]"), 300.0)?, [240.0, 270.0, 300.0]);
    assert_eq!(times(&format!("{q}[59999ms]"), 300.0)?, [270.0, 300.0]);
    assert_eq!(times(&format!("{q}[60s]"), 300.001)?, [270.0, 300.0]);
    assert_eq!(times(&format!("{q}[60s]"), 299.999)?, [240.0, 270.0]);
    // An instant selector takes the latest sample at or before T.
    assert_eq!(prom.value(q, 299.999)?, Some(1.0));
    assert_eq!(prom.value(q, 300.0)?, Some(0.0));
    // ... no older than the 5 min lookback, a sample exactly 5 min old included.
    assert_eq!(prom.value(r#"up{job="x"}"#, 600.0)?, Some(1.0));
    assert_eq!(prom.value(r#"up{job="x"}"#, 600.001)?, None);
    // Before the first sample there is no data at all (not 0).
    assert_eq!(prom.value(q, -0.001)?, None);
    Ok(())
}

#[test]
fn success_counter_at_any_time_is_the_latest_scrape_at_or_before_it() -> Result<()> {
    use FinishReason::*;
    // (finished_at, reason, recording lag)
    let finished = [
        (25.0, Stop, 0.05),
        (39.9, Length, 0.05),
        (69.8, Stop, 0.5), // recorded at 70.3: after the 70 s scrape
        (70.0, Abort, 0.0),
        (99.9, Error, 0.05),
        (100.0, Stop, 0.0), // recorded exactly at the 100 s scrape: counted by it
        (150.0, Length, 0.1),
        (161.0, Stop, 0.05),
        (230.0, Stop, 0.05),
    ];
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 300.0);
    let x = h.add_target(Target::new("x", "a:1").interval(30.0).phase(10.0));
    for (end, reason, lag) in finished {
        h.add_request(
            Request::new(x, end - 3.0, end - 2.5, end - 2.0, end)
                .finish_reason(reason)
                .lag(lag),
        );
    }
    let prom = BackfilledPrometheus::start(&h)?;
    let q = r#"sum(vllm:request_success_total{job="x",finished_reason=~"stop|length"})"#;
    let mut checked = 0;
    for t in grid(0.0, 300.0, 2.5)
        .into_iter()
        .chain([69.999, 70.0, 99.999, 100.0])
    {
        let expected = if t < 10.0 {
            None
        } else {
            let scrape = 10.0 + 30.0 * ((t - 10.0) / 30.0).floor();
            let n = finished
                .iter()
                .filter(|(e, r, lag)| matches!(r, Stop | Length) && ms(e + lag) <= ms(scrape))
                .count();
            Some(n as f64)
        };
        assert_eq!(prom.value(q, t)?, expected, "at {t}");
        checked += 1;
    }
    assert_eq!(checked, 125);
    assert_eq!(
        prom.value(q, 70.0)?,
        Some(2.0),
        "the lagged finish is not in yet"
    );
    assert_eq!(prom.value(q, 100.0)?, Some(4.0));
    // The exact difference over an anchored window: finishes recorded in (130, 250].
    let diff = format!("{q} - {}", q.replace("})", "} offset 120s)"));
    assert_eq!(prom.value(&diff, 250.0)?, Some(3.0), "{diff}");
    Ok(())
}

/// Prometheus's `bucketQuantile` (2.42) over `(upper bound, cumulative count)` with `+Inf` last.
fn bucket_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().expect("buckets").1;
    if total == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * total;
    let b = buckets[..buckets.len() - 1]
        .iter()
        .position(|(_, c)| *c >= rank)
        .unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    let (end, mut count) = buckets[b];
    let mut start = 0.0;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Per-second rates (anchored window: no extrapolation) of the observations `values`.
fn rates(bounds: &[f64], values: &[f64], window: f64) -> Vec<(f64, f64)> {
    bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .map(|b| {
            (
                b,
                values.iter().filter(|v| **v <= b).count() as f64 / window,
            )
        })
        .collect()
}

#[test]
fn p95_of_anchored_bucket_rates_equals_the_quantile_of_the_buckets() -> Result<()> {
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 600.0);
    // (interval, anchor T on a scrape at phase 3 s)
    let cases = [(15.0, 498.0), (30.0, 483.0), (60.0, 483.0)];
    let window = 240.0;
    let e2e: Vec<f64> = (0..20)
        .map(|i| if i == 5 || i == 12 { 7.0 } else { 1.2 })
        .collect();
    for (interval, _) in cases {
        let t = h.add_target(
            Target::new(&format!("p{interval}"), "a:1")
                .interval(interval)
                .phase(3.0),
        );
        // Warm-up before the window: slow requests that must not count.
        for i in 0..5 {
            let end = 100.0 + 10.0 * f64::from(i);
            h.add_request(Request::new(t, end - 30.0, end - 29.9, end - 29.5, end));
        }
        for (i, v) in e2e.iter().enumerate() {
            let end = 300.0 + 5.0 * i as f64;
            h.add_request(Request::new(t, end - v, end - v + 0.1, end - v + 0.5, end));
        }
        // After the window (its first token too).
        h.add_request(Request::new(t, 520.0, 521.0, 522.0, 550.0));
    }
    let prom = BackfilledPrometheus::start(&h)?;
    for (interval, at) in cases {
        let job = format!("p{interval}");
        let p95 = |family: &str| {
            format!(
                "histogram_quantile(0.95, sum by (le) (rate({family}_bucket{{job=\"{job}\"}}[240s])))"
            )
        };
        let expected = bucket_quantile(0.95, &rates(&REQUEST_LATENCY_BUCKETS, &e2e, window));
        assert!((expected - 7.5).abs() < 1e-9, "{expected}");
        let got = prom.value(&p95("vllm:e2e_request_latency_seconds"), at)?;
        assert_eq!(got, Some(expected), "e2e p95, I = {interval}");
        let ttft = [0.5; 20];
        let expected = bucket_quantile(0.95, &rates(&TIME_TO_FIRST_TOKEN_BUCKETS, &ttft, window));
        assert!((expected - 0.4875).abs() < 1e-9, "{expected}");
        let got = prom.value(&p95("vllm:time_to_first_token_seconds"), at)?;
        assert_eq!(got, Some(expected), "ttft p95, I = {interval}");
        // Anchored on samples, increase() does not extrapolate: exact like the difference.
        let c = format!("vllm:request_success_total{{job=\"{job}\"}}");
        let diff = format!("sum({c}) - sum({c} offset 240s)");
        assert_eq!(prom.value(&diff, at)?, Some(20.0), "I = {interval}");
        let increase = format!("sum(increase({c}[240s]))");
        assert_eq!(prom.value(&increase, at)?, Some(20.0), "I = {interval}");
    }
    Ok(())
}

#[test]
fn a_restart_shows_as_one_reset_and_a_new_process_start() -> Result<()> {
    let base = TimeBase::three_hours_ago();
    let mut h = History::new(base, 0.0, 300.0);
    let x = h.add_target(
        Target::new("x", "a:1")
            .started_at(-600.0)
            .restart_at(100.0)
            .down(95.0, 110.0),
    );
    // Old process: recorded at 20.05, 40.05, 60.05, 80.05 and 92.05 (after its last scrape at
    // 90 s: lost). New process: 130.05, 150.05.
    for end in [20.0, 40.0, 60.0, 80.0, 92.0, 130.0, 150.0] {
        h.add_request(Request::new(x, end - 2.0, end - 1.5, end - 1.0, end));
    }
    // A restart without traffic before it: counters stay 0, so resets() cannot see it.
    h.add_target(Target::new("y", "b:1").started_at(-600.0).restart_at(100.0));
    let prom = BackfilledPrometheus::start(&h)?;
    let c = r#"vllm:request_success_total{job="x",finished_reason="stop"}"#;
    assert_eq!(
        one_series(&prom, &format!("{c}[120s]"), 180.0)?,
        [
            (60.0, 2.0),
            (75.0, 3.0),
            (90.0, 4.0),
            (120.0, 0.0),
            (135.0, 1.0),
            (150.0, 1.0),
            (165.0, 2.0),
            (180.0, 2.0)
        ]
    );
    assert_eq!(prom.value(&format!("resets({c}[120s])"), 180.0)?, Some(1.0));
    let count = r#"vllm:e2e_request_latency_seconds_count{job="x"}"#;
    assert_eq!(
        prom.value(&format!("resets({count}[120s])"), 180.0)?,
        Some(1.0)
    );
    assert_eq!(prom.value(&format!("resets({c}[60s])"), 180.0)?, Some(0.0));
    // The exact difference is fooled by the reset; increase() adds the pre-reset value back.
    assert_eq!(
        prom.value(&format!("{c} - {c} offset 120s"), 180.0)?,
        Some(0.0)
    );
    assert_eq!(
        prom.value(&format!("increase({c}[120s])"), 180.0)?,
        Some(4.0)
    );
    for job in ["x", "y"] {
        let start = format!("process_start_time_seconds{{job=\"{job}\"}}");
        assert_eq!(
            prom.value(&format!("changes({start}[120s])"), 180.0)?,
            Some(1.0)
        );
        assert_eq!(prom.value(&start, 180.0)?, Some(base.unix_secs(100.0)));
        assert_eq!(prom.value(&start, 90.0)?, Some(base.unix_secs(-600.0)));
    }
    let y = r#"vllm:request_success_total{job="y",finished_reason="stop"}"#;
    assert_eq!(prom.value(&format!("resets({y}[120s])"), 180.0)?, Some(0.0));
    // The failed scrape during the restart.
    assert_eq!(prom.value(r#"up{job="x"}"#, 105.0)?, Some(0.0));
    assert_eq!(
        prom.value(r#"min_over_time(up{job="x"}[120s])"#, 180.0)?,
        Some(0.0)
    );
    Ok(())
}

#[test]
fn missed_scrapes_and_down_periods_leave_gaps_but_no_staleness() -> Result<()> {
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 400.0);
    let x = h.add_target(
        Target::new("x", "a:1")
            .interval(30.0)
            .miss_scrape(90.0)
            .down(200.0, 260.0),
    );
    span(&mut h, x, 50.0, 99.8);
    span(&mut h, x, 170.0, 230.0);
    let prom = BackfilledPrometheus::start(&h)?;
    let q = r#"vllm:num_requests_running{job="x"}"#;
    assert_eq!(
        one_series(&prom, &format!("{q}[150s]"), 150.0)?,
        [
            (0.0, 0.0),
            (30.0, 0.0),
            (60.0, 1.0),
            (120.0, 0.0),
            (150.0, 0.0)
        ]
    );
    assert_eq!(
        one_series(&prom, r#"up{job="x"}[150s]"#, 150.0)?,
        [
            (0.0, 1.0),
            (30.0, 1.0),
            (60.0, 1.0),
            (90.0, 0.0),
            (120.0, 1.0),
            (150.0, 1.0)
        ]
    );
    assert_eq!(
        one_series(&prom, r#"up{job="x"}[90s]"#, 270.0)?,
        [(180.0, 1.0), (210.0, 0.0), (240.0, 0.0), (270.0, 1.0)]
    );
    // The down period holds no sample of the target's metrics at all.
    assert_eq!(
        prom.value(&format!("count_over_time({q}[60s])"), 260.0)?,
        None
    );
    // Backfilled data has no staleness markers: an instant query in a gap returns the last
    // sample (a live Prometheus would return nothing after the failed scrape).
    assert_eq!(prom.value(q, 95.0)?, Some(1.0));
    assert_eq!(prom.value(q, 250.0)?, Some(1.0));
    Ok(())
}

#[test]
fn targets_with_different_phases_and_a_target_born_inside_the_window() -> Result<()> {
    let base = TimeBase::three_hours_ago();
    let mut h = History::new(base, 0.0, 300.0);
    let a = h.add_target(Target::new("x", "a:1"));
    let b = h.add_target(
        Target::new("x", "b:1")
            .phase(7.5)
            .started_at(95.0)
            .scraped_from(100.0),
    );
    for (t, end) in [(a, 50.0), (a, 120.0), (b, 130.0), (b, 140.0)] {
        h.add_request(Request::new(t, end - 4.0, end - 3.0, end - 2.0, end));
    }
    let prom = BackfilledPrometheus::start(&h)?;
    let m = prom.matrix(r#"vllm:num_requests_running{job="x"}[30s]"#, 150.0)?;
    let by_instance: Vec<(String, Vec<f64>)> = m
        .iter()
        .map(|s| {
            let times = points(&prom, s).into_iter().map(|p| p.0).collect();
            (s.label("instance").unwrap_or_default().to_string(), times)
        })
        .collect();
    assert_eq!(
        by_instance,
        [
            ("a:1".to_string(), vec![120.0, 135.0, 150.0]),
            ("b:1".to_string(), vec![127.5, 142.5])
        ]
    );
    let c = r#"vllm:request_success_total{job="x",finished_reason="stop"}"#;
    // Each target's latest sample: a at 150 s (2), b at 142.5 s (2: 130.05 and 140.05).
    assert_eq!(prom.value(&format!("sum({c})"), 150.0)?, Some(4.0));
    // At 141 s: a at 135 s (2), b at 127.5 s (0).
    assert_eq!(prom.value(&format!("sum({c})"), 141.0)?, Some(2.0));
    // b was born inside the window (no sample at T - W). The difference of sums counts its
    // requests (it had none before), the per-series difference drops b altogether, and the
    // series count at the window's start shows that a target is new.
    assert_eq!(
        prom.value(&format!("sum({c}) - sum({c} offset 150s)"), 150.0)?,
        Some(4.0)
    );
    assert_eq!(
        prom.value(&format!("sum({c} - {c} offset 150s)"), 150.0)?,
        Some(2.0)
    );
    assert_eq!(
        prom.value(&format!("count({c} offset 150s)"), 150.0)?,
        Some(1.0)
    );
    assert_eq!(prom.value(&format!("count({c})"), 150.0)?, Some(2.0));
    assert_eq!(
        prom.value(r#"count_over_time(up{instance="b:1"}[200s])"#, 200.0)?,
        Some(6.0),
        "b is scraped at 112.5, 127.5, ..., 187.5 s"
    );
    assert_eq!(
        prom.value(r#"process_start_time_seconds{instance="b:1"}"#, 200.0)?,
        Some(base.unix_secs(95.0))
    );
    Ok(())
}

#[test]
fn every_sample_of_a_busy_history_reads_back_exactly() -> Result<()> {
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 600.0);
    let a = h.add_target(
        Target::new("vllm", "a:8000")
            .model_name("base-model")
            .phase(1.234)
            .restart_at(300.0)
            .down(290.0, 320.0)
            .miss_scrape(151.234),
    );
    let b = h.add_target(
        Target::new("vllm", "b:8000")
            .interval(30.0)
            .phase(17.0)
            .started_at(50.0)
            .scraped_from(60.0)
            .scraped_until(500.0),
    );
    let c = h.add_target(Target::new("vllm", "c:8000").interval(60.0).phase(59.999));
    h.add_gpu(DcgmGpu::new("gpu-a:9400", a).interval(10.0).phase(5.0));
    h.add_gauge(
        "vllm:gpu_cache_usage_perc",
        &[("job", "old"), ("instance", "o:1")],
        &[(0.0, 0.25), (15.0, 0.5), (30.0, 0.125)],
    );
    let reasons = FinishReason::ALL;
    let mut added = 0;
    for i in 0..240_u32 {
        let target = [a, b, c][i as usize % 3];
        let queued = 3.0 + f64::from(i) * 2.437;
        let e2e = 0.3 + f64::from(i * 7 % 50) / 10.0;
        let end = queued + e2e;
        let lag = f64::from(i % 5) * 0.031;
        if target == a && queued < 300.0 && end + lag >= 300.0 || target == b && queued < 50.0 {
            continue;
        }
        h.add_request(
            Request::new(target, queued, queued + e2e / 10.0, queued + e2e / 4.0, end)
                .finish_reason(reasons[i as usize % 5])
                .tokens(u64::from(100 + i), u64::from(i % 40))
                .lag(lag),
        );
        added += 1;
    }
    assert!(added > 200);
    let expected = h.series()?;
    let prom = BackfilledPrometheus::start(&h)?;
    let got = prom.matrix(r#"{__name__=~".+"}[600s]"#, 600.0)?;
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e);
    }
    let names: std::collections::BTreeSet<&str> = got.iter().map(|s| s.name.as_str()).collect();
    for name in [
        "DCGM_FI_DEV_GPU_UTIL",
        "up",
        "process_start_time_seconds",
        "vllm:request_success_total",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:gpu_cache_usage_perc",
    ] {
        assert!(names.contains(name), "{name} missing: {names:?}");
    }
    let samples: u64 = prom.blocks().iter().map(|b| b.samples).sum();
    assert_eq!(samples as usize, h.sample_count()?);
    Ok(())
}

#[test]
fn promtool_failures_and_silent_drops_are_errors_that_say_what_failed() -> Result<()> {
    let base = TimeBase::three_hours_ago();
    let t = |off: f64| format!("{:.3}", base.unix_secs(off));
    let err = BackfilledPrometheus::start_openmetrics(base, &format!("g 1 {}\n", t(0.0)), None)
        .expect_err("no # EOF");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("promtool tsdb create-blocks-from openmetrics"),
        "{msg}"
    );
    assert!(msg.contains("data does not end with # EOF"), "{msg}");
    // promtool exits 0 but drops a sample older than the previous one of its series.
    let text = format!("# TYPE g gauge\ng 1 {}\ng 2 {}\n# EOF\n", t(5.0), t(0.0));
    let err = BackfilledPrometheus::start_openmetrics(base, &text, Some(2)).expect_err("dropped");
    assert!(
        format!("{err:#}").contains("promtool stored 1 samples, not the 2 written"),
        "{err:#}"
    );
    Ok(())
}

#[test]
fn promtool_accepts_counter_families_with_or_without_total_and_nan_is_not_staleness() -> Result<()>
{
    let base = TimeBase::three_hours_ago();
    let t = |off: f64| format!("{:.3}", base.unix_secs(off));
    let text = format!(
        "# TYPE a counter\na_total 1 {t0}\n# TYPE b_total counter\nb_total 2 {t0}\nc_total 3 {t0}\n\
         # TYPE g gauge\ng 1 {t0}\ng NaN {t15}\n# EOF\n",
        t0 = t(0.0),
        t15 = t(15.0)
    );
    let prom = BackfilledPrometheus::start_openmetrics(base, &text, Some(5))?;
    assert_eq!(prom.value("a_total", 1.0)?, Some(1.0));
    assert_eq!(prom.value("b_total", 1.0)?, Some(2.0));
    assert_eq!(prom.value("c_total", 1.0)?, Some(3.0));
    // A NaN sample is an ordinary NaN, not a staleness marker: the series is still there.
    let v = prom.value("g", 20.0)?;
    assert!(v.is_some_and(f64::is_nan), "{v:?}");
    Ok(())
}

#[test]
fn the_documented_examples_hold() -> Result<()> {
    // test_support::history's module example.
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 300.0);
    let a = h.add_target(Target::new("x", "10.0.0.1:8000").interval(30.0).phase(2.5));
    h.add_request(Request::new(a, 40.0, 40.5, 41.0, 44.0).tokens(100, 5));
    let prom = BackfilledPrometheus::start(&h)?;
    let done = prom.value(
        r#"sum(vllm:request_success_total{job="x"}) - sum(vllm:request_success_total{job="x"} offset 60s)"#,
        92.5,
    )?;
    assert_eq!(done, Some(1.0));
    // test_support::backfill's module example.
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 120.0);
    h.add_target(Target::new("x", "a:8000").interval(30.0));
    let prom = BackfilledPrometheus::start(&h)?;
    let m = prom.matrix(r#"up{job="x"}[60s]"#, 120.0)?;
    assert_eq!(m[0].samples.len(), 3);
    Ok(())
}

#[test]
fn histories_outside_the_retention_or_in_the_future_are_refused() {
    let h = History::new(TimeBase::three_hours_ago(), 0.0, 4.0 * 3600.0);
    let err = BackfilledPrometheus::start(&h).expect_err("future");
    assert!(format!("{err:#}").contains("in the future"), "{err:#}");
    let h = History::new(TimeBase::three_hours_ago(), -86_400.0, 0.0);
    let err = BackfilledPrometheus::start(&h).expect_err("too old");
    assert!(
        format!("{err:#}").contains("outside the 1 d retention"),
        "{err:#}"
    );
}
