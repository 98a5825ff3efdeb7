//! The end-anchored window against a real Prometheus holding exactly known samples (backfilled
//! with promtool: `test_support::history`), at the scrape intervals production runs (15, 30 and
//! 60 s), without waiting in real time.
//!
//! Each test builds what a vLLM target served (a warm-up, the load, sometimes other traffic, a
//! restart or a pod born mid-load), lets the gate choose the load's start as `load-test` would
//! (the first instant its left-edge confirmation holds after the warm-up), and reads the
//! figures as Prometheus saw them long after the load. The counts must be exact and every
//! untrustworthy case must come out invalid, never as a wrong number.

use std::time::Duration;

use perf_gate::decision::validity::measurement_problems;
use perf_gate::prom::{LoadSpan, PreLoad, PromSettings, PrometheusCollector};
use perf_gate::results::{LoadTestResults, ServerMetrics};
use test_support::backfill::BackfilledPrometheus;
use test_support::history::{History, Request, Target, TargetId, TimeBase};

const JOB: &str = "vllm-service";
const INTERVALS: [f64; 3] = [15.0, 30.0, 60.0];

/// A target of the job scraped every `interval` s, at an awkward phase.
fn target(instance: &str, interval: f64) -> Target {
    Target::new(JOB, instance)
        .interval(interval)
        .phase(interval * 0.37)
}

/// A request of `secs` seconds queued at `at` (TTFT a fifth of it), 8 output tokens.
fn request(t: TargetId, at: f64, secs: f64) -> Request {
    Request::new(t, at, at, at + secs / 5.0, at + secs).tokens(16, 8)
}

/// Two warm-up requests ending by 10 s; the pre-flight and warm-up are over at 12 s.
const READY: f64 = 12.0;
fn warm_up(h: &mut History, t: TargetId) {
    h.add_request(request(t, 5.0, 2.0));
    h.add_request(request(t, 7.5, 2.5));
}

struct Gate {
    prom: BackfilledPrometheus,
    collector: PrometheusCollector,
    base: TimeBase,
    interval: f64,
}

impl Gate {
    fn start(h: &History, interval: f64) -> Gate {
        let prom = BackfilledPrometheus::start(h).expect("backfilled Prometheus");
        let collector = PrometheusCollector::new(
            &prom.url(),
            PromSettings {
                job: JOB.into(),
                scrape_interval: Some(Duration::from_secs_f64(interval)),
                ..PromSettings::default()
            },
        )
        .expect("settings");
        Gate {
            base: h.base(),
            prom,
            collector,
            interval,
        }
    }

    fn pre(&self) -> PreLoad {
        PreLoad {
            ready: self.base.datetime(READY),
            interval: Duration::from_secs_f64(self.interval),
            interval_source: "flag",
            waited: Duration::ZERO,
            unconfirmed: vec![],
        }
    }

    /// The load's start as `load-test` chooses it: the first instant (polling every 200 ms
    /// after `READY`) at which every target's left edge is confirmed.
    async fn start_time(&self) -> f64 {
        let lookback = Duration::from_secs_f64(self.interval * 3.0 + 10.0);
        let mut at = READY;
        while at < READY + 3.0 * self.interval + 5.0 {
            let (targets, problems) = self
                .collector
                .left_edges_at(self.base.datetime(READY), lookback, self.base.unix_ms(at))
                .await
                .expect("query");
            if targets > 0 && problems.is_empty() {
                return at;
            }
            at += 0.2;
        }
        panic!("no confirmed left edge within 3 intervals + 5 s of the warm-up");
    }

    /// The figures of a load `[start, end]` with `successes`, read long after it.
    async fn figures(&self, start: f64, end: f64, successes: u64) -> ServerMetrics {
        let span = LoadSpan {
            start: self.base.datetime(start),
            end: self.base.datetime(end),
        };
        self.collector
            .confirmed_figures_at(
                &self.pre(),
                &span,
                successes,
                self.base.unix_ms(end + 4.0 * self.interval),
            )
            .await
            .expect("figures")
    }
}

/// A results document with these server figures and a client that sent `sent` requests and
/// saw `ok` succeed: what the validity rules judge.
fn results(server: ServerMetrics, sent: u64, ok: u64, duration: f64) -> LoadTestResults {
    let mut r = perf_gate::fixtures::results();
    let c = r.client.as_mut().unwrap();
    c.total_requests = sent;
    c.successful_requests = ok;
    c.failed_requests = sent - ok;
    c.errors_by_kind = if sent > ok {
        [("http_500".to_string(), sent - ok)].into()
    } else {
        Default::default()
    };
    r.timing.as_mut().unwrap().load_duration_s = duration;
    r.server = Some(server);
    r
}

fn value(m: &perf_gate::results::Measured) -> f64 {
    m.value.unwrap_or_else(|| panic!("missing: {:?}", m.reason))
}

/// `n` requests of `secs` each from `start`, `per_second` of them started each second.
fn load(h: &mut History, t: TargetId, start: f64, n: usize, per_second: f64, secs: f64) -> f64 {
    let mut end: f64 = start;
    for i in 0..n {
        let at = start + 0.05 + i as f64 / per_second;
        h.add_request(request(t, at, secs));
        end = end.max(at + secs);
    }
    end + 0.01
}

/// Builds a history in two passes: the load's start depends on the scrapes, which the history
/// fixes; the requests after the start do not change the scrapes before it.
async fn choose_start(interval: f64) -> f64 {
    let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 1200.0);
    let t = h.add_target(target("vllm-0:8000", interval));
    warm_up(&mut h, t);
    Gate::start(&h, interval).start_time().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_long_loads_are_counted_exactly_at_production_intervals() {
    for interval in INTERVALS {
        let start = choose_start(interval).await;
        for (n, rate, secs) in [(20usize, 7.0, 0.4), (120, 1.5, 1.2)] {
            let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 1200.0);
            let t = h.add_target(target("vllm-0:8000", interval));
            warm_up(&mut h, t);
            let end = load(&mut h, t, start, n, rate, secs);
            let gate = Gate::start(&h, interval);
            let m = gate.figures(start, end, n as u64).await;
            let label = format!(
                "{n} requests over {:.1} s at a {interval} s scrape",
                end - start
            );
            assert!(
                m.integrity.edges_confirmed,
                "{label}: {:?}",
                m.integrity.unconfirmed
            );
            assert_eq!(value(&m.requests_finished), n as f64, "{label}");
            let p95 = value(&m.e2e_latency_s.p95);
            assert!(p95 > 0.0 && p95 <= 2.5, "{label}: p95 {p95}");
            assert!(value(&m.ttft_s.p95) > 0.0, "{label}");
            // count over the load's duration (times are kept to the millisecond)
            let want = n as f64 / (end - start);
            assert!(
                (value(&m.throughput_rps) - want).abs() < 1e-3 * want,
                "{label}"
            );
            let r = results(m.clone(), n as u64, n as u64, end - start);
            assert_eq!(measurement_problems(&r), Vec::<String>::new(), "{label}");
            let w = m.window.as_ref().unwrap();
            assert_eq!(w.samples.len(), 1);
            assert!(w.samples[0].before_load.is_some() && w.samples[0].after_load.is_some());

            if n == 20 {
                // The old rule, for the record: the load started right after the pre-flight
                // (no confirmed sample), T = end + interval + 2 s and W back to the start, both
                // rounded up. A short load then has at most one sample inside W: no rate, so no
                // quantile, and a healthy candidate failed.
                let old_start = READY + 0.1;
                let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 1200.0);
                let t = h.add_target(target("vllm-0:8000", interval));
                warm_up(&mut h, t);
                let old_end = load(&mut h, t, old_start, n, rate, secs);
                let old_gate = Gate::start(&h, interval);
                let b = old_gate.base;
                let t_old = (b.unix_secs(old_end) + interval + 2.0).ceil();
                let w_old = (t_old - b.unix_secs(old_start)).ceil();
                let old = format!(
                    "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{{job=\"{JOB}\"}}[{w_old}s])))"
                );
                let v = old_gate
                    .prom
                    .value(&old, b.offset_of_unix_ms((t_old * 1000.0) as i64))
                    .expect("query");
                assert!(
                    v.is_none_or(f64::is_nan),
                    "{label}: the old window sees a quantile ({v:?}); the test no longer shows the defect"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_born_during_the_load_is_counted_from_zero() {
    for interval in INTERVALS {
        let start = choose_start(interval).await;
        let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 1200.0);
        let a = h.add_target(target("vllm-0:8000", interval));
        // a second replica whose first scrape comes during the load, its requests already done
        let b = h.add_target(
            Target::new(JOB, "vllm-1:8000")
                .interval(interval)
                .phase(interval * 0.81)
                .started_at(start + 0.5)
                .scraped_from(start + 0.5),
        );
        warm_up(&mut h, a);
        let end_a = load(&mut h, a, start, 10, 5.0, 0.5);
        let end_b = load(&mut h, b, start + 1.0, 10, 5.0, 0.5);
        let end = end_a.max(end_b);
        let gate = Gate::start(&h, interval);
        let m = gate.figures(start, end, 20).await;
        assert!(m.integrity.edges_confirmed, "{:?}", m.integrity.unconfirmed);
        assert_eq!(value(&m.requests_finished), 20.0, "at {interval} s");
        assert!(m.integrity.series_born > 0);
        assert_eq!(m.integrity.targets_after.len(), 2, "{:?}", m.integrity);
        let r = results(m, 20, 20, end - start);
        assert!(
            measurement_problems(&r).is_empty(),
            "{:?}",
            measurement_problems(&r)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_the_load_is_invalid_never_a_wrong_number() {
    for interval in INTERVALS {
        let start = choose_start(interval).await;
        let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 1200.0);
        let t = h.add_target(target("vllm-0:8000", interval).restart_at(start + interval * 0.6));
        warm_up(&mut h, t);
        // requests before the restart are lost with the process; some after it
        let _ = load(&mut h, t, start, 5, 10.0, 0.2);
        let end = load(&mut h, t, start + interval * 0.6 + 1.0, 5, 10.0, 0.2);
        let gate = Gate::start(&h, interval);
        let m = gate.figures(start, end, 10).await;
        let r = results(m, 10, 10, end - start);
        let problems = measurement_problems(&r);
        assert!(
            problems.iter().any(|p| p.contains("restarted")),
            "at {interval} s: {problems:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_traffic_during_the_load_is_invalid_contamination() {
    for interval in INTERVALS {
        let start = choose_start(interval).await;
        let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 1200.0);
        let t = h.add_target(target("vllm-0:8000", interval));
        warm_up(&mut h, t);
        let end = load(&mut h, t, start, 20, 7.0, 0.4);
        // another client's 6 requests, inside the load
        let _ = load(&mut h, t, start + 0.5, 6, 4.0, 0.3);
        let gate = Gate::start(&h, interval);
        let m = gate.figures(start, end, 20).await;
        assert_eq!(value(&m.requests_finished), 26.0);
        let r = results(m, 20, 20, end - start);
        let problems = measurement_problems(&r);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("other traffic on the server")),
            "at {interval} s: {problems:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_busy_at_the_load_s_start_has_no_confirmed_edge() {
    for interval in INTERVALS {
        let start = choose_start(interval).await;
        let mut h = History::new(TimeBase::three_hours_ago(), 0.0, 1200.0);
        let t = h.add_target(target("vllm-0:8000", interval));
        warm_up(&mut h, t);
        // a long foreign request running across the last sample before the load
        h.add_request(request(t, start - interval * 0.9, interval * 1.5));
        let end = load(&mut h, t, start, 10, 5.0, 0.4);
        let gate = Gate::start(&h, interval);
        let m = gate.figures(start, end, 10).await;
        assert!(!m.integrity.edges_confirmed);
        let r = results(m, 10, 10, end - start);
        let problems = measurement_problems(&r);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("window edge not confirmed")),
            "at {interval} s: {problems:?}"
        );
    }
}
