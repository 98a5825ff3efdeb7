//! The statistical verdict on 1,000 synthetic repetitions with autocorrelated latencies
//! (batches make neighbouring requests alike): identical arms must rarely fail (false alarms
//! at most 7 %), a candidate 30 % slower must fail in at least 95 % of them. The seed's bare
//! point comparison is measured beside it. In-process and seeded: the figures are the same on
//! every run; they are printed for the record.

use perf_gate::decision::statistics::bootstrap::{Arm, Figure, Pairing, ratio_interval};
use perf_gate::decision::statistics::{Outcome, Worse, judge, per_metric_alpha};
use perf_gate::stats::SampleStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const REPETITIONS: u64 = 1000;
const DURATION_S: f64 = 60.0;
/// The seed's bound on the P95 E2E ratio.
const TOLERANCE: f64 = 0.15;

/// How one arm's latencies vary.
#[derive(Clone, Copy)]
struct Noise {
    /// Requests, finishing evenly over the load.
    requests: u32,
    /// Spread of log-latency.
    sigma: f64,
    /// Correlation of neighbouring requests' log-latency (a slow batch slows its neighbours).
    phi: f64,
}

/// A steady server: 1,000 requests, E2E varying ~15 % (a fixed output length), phi 0.6.
const STEADY: Noise = Noise {
    requests: 1000,
    sigma: 0.15,
    phi: 0.6,
};
/// A short, noisy run: 300 requests, ~35 % spread, correlated batches (phi 0.6: about four
/// neighbouring requests alike, shorter than a block, as the bootstrap assumes).
const NOISY: Noise = Noise {
    requests: 300,
    sigma: 0.35,
    phi: 0.6,
};

/// One arm: log-latency an AR(1) process over consecutive requests, median `scale` seconds.
fn arm(rng: &mut ChaCha8Rng, scale: f64, noise: Noise) -> SampleStore {
    let Noise {
        requests: n_requests,
        sigma,
        phi,
    } = noise;
    let innovation = sigma * (1.0 - phi * phi).sqrt();
    let mut x = 0.0f64;
    let mut store = SampleStore::default();
    for i in 0..n_requests {
        // a standard normal from two uniforms (Box–Muller)
        let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
        let n = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        x = phi * x + innovation * n;
        let e2e = scale * x.exp();
        let finished = DURATION_S * (f64::from(i) + 0.5) / f64::from(n_requests);
        store.push(finished, Some(e2e / 5.0), Some(e2e));
    }
    store
}

/// (statistical outcome, seed's point comparison failed) for one repetition.
fn repetition(rep: u64, slowdown: f64, noise: Noise) -> (Outcome, bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(rep);
    let (c, b) = (arm(&mut rng, slowdown, noise), arm(&mut rng, 1.0, noise));
    let (ca, ba) = (
        Arm {
            requests: c.requests(),
            duration_s: DURATION_S,
        },
        Arm {
            requests: b.requests(),
            duration_s: DURATION_S,
        },
    );
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&rep.to_le_bytes());
    let i = ratio_interval(
        &ca,
        &ba,
        Figure::P95E2e,
        Pairing::Independent,
        per_metric_alpha(0.95, 4),
        2000,
        seed,
    )
    .expect("an interval");
    (
        judge(i.lo, i.hi, 1.0 + TOLERANCE, Worse::Higher),
        i.point > 1.0 + TOLERANCE,
    )
}

/// Outcome counts over every repetition, on two threads.
fn rates(slowdown: f64, noise: Noise) -> ([u64; 3], u64) {
    let half = REPETITIONS / 2;
    let run = |from: u64, to: u64| {
        let (mut counts, mut seed_failed) = ([0u64; 3], 0u64);
        for rep in from..to {
            let (o, f) = repetition(rep + (slowdown * 1e3) as u64 * 1_000_000, slowdown, noise);
            counts[match o {
                Outcome::Passed => 0,
                Outcome::Failed => 1,
                Outcome::Inconclusive => 2,
            }] += 1;
            seed_failed += u64::from(f);
        }
        (counts, seed_failed)
    };
    std::thread::scope(|s| {
        let other = s.spawn(|| run(0, half));
        let (mut counts, mut seed) = run(half, REPETITIONS);
        let (c2, s2) = other.join().expect("thread");
        for k in 0..3 {
            counts[k] += c2[k];
        }
        seed += s2;
        (counts, seed)
    })
}

fn pct(n: u64) -> f64 {
    n as f64 * 100.0 / REPETITIONS as f64
}

fn report(what: &str, counts: [u64; 3], seed_failed: u64) {
    println!(
        "{what} ({REPETITIONS} repetitions): statistical passed {:.1} % failed {:.1} % inconclusive {:.1} %; the seed's point check failed {:.1} %",
        pct(counts[0]),
        pct(counts[1]),
        pct(counts[2]),
        pct(seed_failed)
    );
}

#[test]
fn identical_arms_rarely_fail_and_a_thirty_percent_slowdown_nearly_always_does() {
    let (same, seed_same) = rates(1.0, STEADY);
    report("steady, identical arms", same, seed_same);
    let (slow, seed_slow) = rates(1.3, STEADY);
    report("steady, candidate 30 % slower", slow, seed_slow);
    assert!(pct(same[1]) <= 7.0, "false alarms {:.1} %", pct(same[1]));
    assert!(pct(slow[1]) >= 95.0, "detections {:.1} %", pct(slow[1]));
}

/// At a true ratio exactly at the limit an honest interval straddles it nearly always: each
/// side is wrong in at most alpha/2 = 0.625 % of runs. Intervals too narrow for the noise (a
/// bootstrap of single requests, blocks shorter than the correlation) would pass and fail far
/// more often.
#[test]
fn at_the_limit_the_intervals_straddle_it() {
    for (what, noise) in [("steady", STEADY), ("short and noisy", NOISY)] {
        let (at, seed_at) = rates(1.0 + TOLERANCE, noise);
        report(
            &format!("{what}, candidate exactly at the limit"),
            at,
            seed_at,
        );
        assert!(pct(at[0]) <= 3.0, "{what}: passed {:.1} %", pct(at[0]));
        assert!(pct(at[1]) <= 3.0, "{what}: failed {:.1} %", pct(at[1]));
    }
}

#[test]
fn a_short_noisy_run_is_inconclusive_where_the_bare_bound_flips() {
    // what the seed's bare 15 % bound does with the noise of the day: identical adapters fail
    // some of the time; the intervals say "cannot tell" instead
    let (same, seed_same) = rates(1.0, NOISY);
    report("short and noisy, identical arms", same, seed_same);
    assert!(pct(same[1]) <= 7.0, "false alarms {:.1} %", pct(same[1]));
    assert!(
        pct(seed_same) > pct(same[1]),
        "the bare bound should flip more often"
    );
    assert!(pct(same[2]) > 0.0, "some runs cannot tell");
}

/// The decision as `perf-decision` makes it, all four metrics judged together: how often
/// identical arms fail under `--decision statistical` (inconclusive counted as failed, the
/// default, and as passed), how often the default mode's interval checks add a failure, and
/// how often the seed's bare point bound on the P95 E2E fails; and how often a candidate 30 %
/// slower is caught.
#[test]
fn the_whole_verdict_side_by_side_with_the_seeds_bound() {
    use perf_gate::decision::Thresholds;
    use perf_gate::decision::statistics::apply::{ArmSamples, interval_checks};
    use perf_gate::decision::statistics::verdict::{DecisionMethod, Input, OnInconclusive, assess};

    let whole = |rep: u64, slowdown: f64, noise: Noise| -> [bool; 4] {
        let mut rng = ChaCha8Rng::seed_from_u64(rep);
        let arm_of = |store: SampleStore, tag: u64| ArmSamples {
            total: store.len() as u64,
            successes: store.len() as u64,
            store,
            duration_s: DURATION_S,
            digest: {
                let mut d = [0u8; 32];
                d[..8].copy_from_slice(&(rep * 2 + tag).to_le_bytes());
                d
            },
        };
        let c = arm_of(arm(&mut rng, slowdown, noise), 0);
        let b = arm_of(arm(&mut rng, 1.0, noise), 1);
        let s = assess(&Input {
            candidate: c.input(),
            baseline: b.input(),
            pairing: Pairing::Independent,
            thresholds: &Thresholds::SEED,
            seed: perf_gate::decision::statistics::apply::seed(&c, &b),
        });
        let fails = |method, on| interval_checks(&s, method, on).iter().any(|c| !c.passed);
        let p95 = |st: &SampleStore| st.e2e().p95.unwrap();
        [
            fails(DecisionMethod::Statistical, OnInconclusive::Fail),
            fails(DecisionMethod::Statistical, OnInconclusive::Pass),
            fails(DecisionMethod::Seed, OnInconclusive::Fail),
            p95(&c.store) > p95(&b.store) * (1.0 + TOLERANCE),
        ]
    };
    const REPS: u64 = 200;
    let tally = |slowdown: f64, noise: Noise| -> [f64; 4] {
        let mut n = [0u64; 4];
        for rep in 0..REPS {
            for (k, f) in whole(rep + 7_000_000, slowdown, noise)
                .into_iter()
                .enumerate()
            {
                n[k] += u64::from(f);
            }
        }
        n.map(|x| x as f64 * 100.0 / REPS as f64)
    };
    for (what, noise) in [("steady", STEADY), ("short and noisy", NOISY)] {
        let same = tally(1.0, noise);
        println!(
            "{what}, identical arms ({REPS} repetitions), failed: --decision statistical {:.1} % (--on-inconclusive pass: {:.1} %); default mode, interval checks {:.1} %; the seed's bare P95 bound {:.1} %",
            same[0], same[1], same[2], same[3]
        );
        assert!(same[1] <= 7.0 && same[2] <= 7.0, "{what}: {same:?}");
        if what == "steady" {
            assert!(same[0] <= 7.0, "{what}: {same:?}");
            let slow = tally(1.3, noise);
            println!(
                "{what}, candidate 30 % slower, failed: --decision statistical {:.1} %; default mode's interval checks {:.1} %; the seed's bare bound {:.1} %",
                slow[0], slow[2], slow[3]
            );
            assert!(slow[0] >= 95.0 && slow[2] >= 95.0, "{slow:?}");
        }
    }
}
