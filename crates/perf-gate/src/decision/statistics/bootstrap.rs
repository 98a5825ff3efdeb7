//! A block bootstrap of the candidate/baseline ratio of a P95 or of throughput.
//!
//! Requests of one run are not independent: a slow batch slows every request in it, so
//! resampling single requests would make intervals too narrow. The run's timeline is cut into
//! equal blocks at least as long as the E2E P95 (so a batch rarely spans two) and at least
//! [`MIN_BLOCKS`] of them, and whole blocks are resampled. In a same-server A/B the two arms
//! share the timeline and each resample draws the same blocks for both (paired); against a
//! stored run the arms are drawn independently.
//!
//! The percentile of a resample is found without gathering its values: every value of an arm
//! is sorted once with its block, and a resample's nearest-rank P95 is read by walking that
//! order from the top, weighting each value by how often its block was drawn (the P95 sits in
//! the top 5 %, so a walk touches a few values). The generator is ChaCha8 seeded by the caller
//! (from the inputs' digests): the same files always give the same interval.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::MIN_SUCCESSES_FOR_P95;
use crate::stats::{RequestSample, nearest_rank};

/// Fewest blocks a timeline is cut into.
pub const MIN_BLOCKS: usize = 20;
/// Most blocks (more add resampling cost, not accuracy).
const MAX_BLOCKS: usize = 200;
/// Fewest resamples.
pub const MIN_RESAMPLES: usize = 2000;

/// Which figure of an arm is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Nearest-rank P95 of the TTFTs of successful requests.
    P95Ttft,
    /// Nearest-rank P95 of the E2E latencies of successful requests.
    P95E2e,
    /// Successful requests per second.
    Throughput,
}

/// One arm: its requests and the span of its load.
#[derive(Debug, Clone, Copy)]
pub struct Arm<'a> {
    /// The requests, as the sample store keeps them.
    pub requests: &'a [RequestSample],
    /// The load's duration, seconds. Each arm's timeline `[0, duration_s]` is cut into the
    /// same number of blocks (so the blocks of arms of different lengths differ in length);
    /// a request finishing after `duration_s` (drained after the end) counts in the last
    /// block, one before 0 in the first.
    pub duration_s: f64,
}

/// How the arms were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Same server, same run, interleaved: blocks are drawn for both arms together.
    Paired,
    /// Separate runs: each arm's blocks are drawn on their own.
    Independent,
}

/// Why no interval could be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoInterval {
    /// The load is too short for enough blocks as long as the E2E P95.
    #[error(
        "the load ({duration_s:.1} s) is too short for {MIN_BLOCKS} blocks at least as long as the E2E P95 ({block_s:.2} s)"
    )]
    TooShort {
        /// The shorter arm's duration.
        duration_s: f64,
        /// The block length needed.
        block_s: f64,
    },
    /// An arm has no successful request.
    #[error("an arm has no successful request")]
    NoSuccess,
    /// Too few successes for a P95: its nearest rank is the slowest request, or nearly.
    #[error(
        "{successes} successful requests in an arm: a P95 needs at least {MIN_SUCCESSES_FOR_P95}"
    )]
    TooFew {
        /// The smaller arm's successes.
        successes: usize,
    },
    /// Too many resamples had an empty arm (the figure is undefined there).
    #[error("{undefined} of {resamples} resamples left an arm without successes")]
    Sparse {
        /// Resamples where the ratio was undefined.
        undefined: usize,
        /// Resamples drawn.
        resamples: usize,
    },
}

/// A two-sided percentile interval of `candidate / baseline`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    /// The ratio of the full samples' figures.
    pub point: f64,
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Blocks per arm.
    pub blocks: usize,
    /// Block length of the shorter arm, seconds (the other arm's blocks are its duration
    /// over the same count).
    pub block_s: f64,
    /// Resamples drawn.
    pub resamples: usize,
}

/// An arm prepared for resampling: values sorted with their block, counts per block.
struct Prepared {
    /// (value, block) ascending by value (successes only; empty for throughput).
    sorted: Vec<(f32, u16)>,
    /// Successes per block.
    per_block: Vec<u32>,
    block_s: f64,
}

fn prepare(arm: &Arm, figure: Figure, blocks: usize) -> Prepared {
    let block_s = arm.duration_s / blocks as f64;
    let block_of = |t: f32| -> u16 {
        let b = (f64::from(t) / block_s).floor();
        (b.max(0.0) as usize).min(blocks - 1) as u16
    };
    let mut per_block = vec![0u32; blocks];
    let mut sorted = Vec::new();
    for r in arm.requests {
        let value = match figure {
            Figure::P95Ttft => r.ttft_s,
            Figure::P95E2e | Figure::Throughput => r.e2e_s,
        };
        if value.is_nan() {
            continue;
        }
        let b = block_of(r.finished_s);
        per_block[usize::from(b)] += 1;
        if figure != Figure::Throughput {
            sorted.push((value, b));
        }
    }
    sorted.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    Prepared {
        sorted,
        per_block,
        block_s,
    }
}

impl Prepared {
    /// The figure of a resample drawing block `b` `weights[b]` times (`None`: no successes).
    fn figure(&self, figure: Figure, weights: &[u32]) -> Option<f64> {
        let total: u64 = self
            .per_block
            .iter()
            .zip(weights)
            .map(|(n, w)| u64::from(*n) * u64::from(*w))
            .sum();
        if total == 0 {
            return None;
        }
        if figure == Figure::Throughput {
            return Some(total as f64 / (self.block_s * weights.len() as f64));
        }
        let rank = nearest_rank(0.95, usize::try_from(total).ok()?) as u64;
        // walk from the top until the rank-th smallest value is reached
        let mut above = total - rank + 1;
        for &(v, b) in self.sorted.iter().rev() {
            let w = u64::from(weights[usize::from(b)]);
            if w >= above {
                return Some(f64::from(v));
            }
            above -= w;
        }
        None
    }
}

/// The E2E P95 of an arm's successes (nearest rank), seconds.
fn e2e_p95(arm: &Arm) -> Option<f64> {
    let mut v: Vec<f32> = arm
        .requests
        .iter()
        .map(|r| r.e2e_s)
        .filter(|v| !v.is_nan())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable_by(f32::total_cmp);
    Some(f64::from(v[nearest_rank(0.95, v.len()) - 1]))
}

/// The interval of `figure(candidate) / figure(baseline)` at two-sided level `1 - alpha`,
/// from `resamples` (at least [`MIN_RESAMPLES`]) block resamples seeded by `seed`.
pub fn ratio_interval(
    candidate: &Arm,
    baseline: &Arm,
    figure: Figure,
    pairing: Pairing,
    alpha: f64,
    resamples: usize,
    seed: [u8; 32],
) -> Result<RatioInterval, NoInterval> {
    let resamples = resamples.max(MIN_RESAMPLES);
    let block_s = e2e_p95(candidate)
        .zip(e2e_p95(baseline))
        .map(|(a, b)| a.max(b))
        .ok_or(NoInterval::NoSuccess)?;
    if figure != Figure::Throughput {
        let successes = |a: &Arm| a.requests.iter().filter(|r| !r.e2e_s.is_nan()).count();
        let fewest = successes(candidate).min(successes(baseline));
        if (fewest as u64) < MIN_SUCCESSES_FOR_P95 {
            return Err(NoInterval::TooFew { successes: fewest });
        }
    }
    let duration_s = candidate.duration_s.min(baseline.duration_s);
    let fit = if block_s > 0.0 {
        (duration_s / block_s).floor()
    } else {
        MAX_BLOCKS as f64
    };
    if !fit.is_finite() || fit < MIN_BLOCKS as f64 {
        return Err(NoInterval::TooShort {
            duration_s,
            block_s,
        });
    }
    let blocks = (fit as usize).min(MAX_BLOCKS);
    let (c, b) = (
        prepare(candidate, figure, blocks),
        prepare(baseline, figure, blocks),
    );
    let all = vec![1u32; blocks];
    let point = match (c.figure(figure, &all), b.figure(figure, &all)) {
        (Some(x), Some(y)) if y > 0.0 => x / y,
        _ => return Err(NoInterval::NoSuccess),
    };
    let mut rng = ChaCha8Rng::from_seed(seed);
    let (mut wc, mut wb) = (vec![0u32; blocks], vec![0u32; blocks]);
    let mut ratios = Vec::with_capacity(resamples);
    let mut undefined = 0usize;
    for _ in 0..resamples {
        wc.iter_mut().for_each(|w| *w = 0);
        for _ in 0..blocks {
            wc[rng.random_range(0..blocks)] += 1;
        }
        match pairing {
            Pairing::Paired => wb.copy_from_slice(&wc),
            Pairing::Independent => {
                wb.iter_mut().for_each(|w| *w = 0);
                for _ in 0..blocks {
                    wb[rng.random_range(0..blocks)] += 1;
                }
            }
        }
        match (c.figure(figure, &wc), b.figure(figure, &wb)) {
            (Some(x), Some(y)) if y > 0.0 => ratios.push(x / y),
            _ => undefined += 1,
        }
    }
    // an undefined resample is a gap in the evidence: more than a sliver and there is no
    // interval, rather than one drawn from the lucky resamples
    if undefined * 100 > resamples {
        return Err(NoInterval::Sparse {
            undefined,
            resamples,
        });
    }
    ratios.sort_unstable_by(f64::total_cmp);
    let n = ratios.len();
    let lo_rank = ((alpha / 2.0) * n as f64).floor() as usize;
    let hi_rank = (((1.0 - alpha / 2.0) * n as f64).ceil() as usize).clamp(1, n);
    Ok(RatioInterval {
        point,
        lo: ratios[lo_rank.min(n - 1)],
        hi: ratios[hi_rank - 1],
        blocks,
        block_s: duration_s / blocks as f64,
        resamples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SampleStore;

    /// `n` requests over `duration` seconds with latencies `scale * (1 + i % 10 / 10)`.
    fn arm_store(n: u32, duration: f64, scale: f64) -> SampleStore {
        let mut s = SampleStore::default();
        for i in 0..n {
            let v = scale * (1.0 + f64::from(i % 10) / 10.0);
            s.push(
                duration * f64::from(i) / f64::from(n),
                Some(v / 4.0),
                Some(v),
            );
        }
        s
    }

    fn arm(store: &SampleStore, duration_s: f64) -> Arm<'_> {
        Arm {
            requests: store.requests(),
            duration_s,
        }
    }

    /// The 95 % interval of the P95 E2E ratio of independent arms, 2,000 resamples.
    fn e2e_interval(c: &Arm, b: &Arm, seed: u8) -> Result<RatioInterval, NoInterval> {
        ratio_interval(
            c,
            b,
            Figure::P95E2e,
            Pairing::Independent,
            0.05,
            2000,
            [seed; 32],
        )
    }

    #[test]
    fn the_walk_from_the_top_is_the_nearest_rank_p95_of_the_resample() {
        let store = arm_store(400, 100.0, 1.0);
        let one = arm(&store, 100.0);
        let p = prepare(&one, Figure::P95E2e, 20);
        // every block once: the P95 of everything
        let all = vec![1u32; 20];
        assert_eq!(p.figure(Figure::P95E2e, &all), e2e_p95(&one));
        // block 0 twice, block 19 never: gather the values and compare
        let mut w = all.clone();
        w[0] = 2;
        w[19] = 0;
        let mut gathered: Vec<f32> = Vec::new();
        for r in store.requests() {
            let b = ((f64::from(r.finished_s) / 5.0) as usize).min(19);
            for _ in 0..w[b] {
                gathered.push(r.e2e_s);
            }
        }
        gathered.sort_unstable_by(f32::total_cmp);
        let want = f64::from(gathered[nearest_rank(0.95, gathered.len()) - 1]);
        assert_eq!(p.figure(Figure::P95E2e, &w), Some(want));
        // throughput: successes drawn over the span drawn
        assert_eq!(p.figure(Figure::Throughput, &all), Some(4.0));
    }

    #[test]
    fn a_slower_candidate_gives_an_interval_around_its_ratio() {
        let (c, b) = (arm_store(2000, 400.0, 1.3), arm_store(2000, 400.0, 1.0));
        let (ca, ba) = (arm(&c, 400.0), arm(&b, 400.0));
        let i = e2e_interval(&ca, &ba, 7).unwrap();
        assert!((i.point - 1.3).abs() < 1e-6, "{i:?}");
        assert!(i.lo <= i.point && i.point <= i.hi, "{i:?}");
        assert!(i.blocks >= MIN_BLOCKS && i.resamples == 2000);
        // the same seed gives the same interval; another seed, another draw
        let again = e2e_interval(&ca, &ba, 7).unwrap();
        assert_eq!(i, again);
    }

    #[test]
    fn fewer_than_twenty_successes_have_no_p95_interval() {
        let (c, b) = (arm_store(19, 400.0, 1.0), arm_store(400, 400.0, 1.0));
        let (ca, ba) = (arm(&c, 400.0), arm(&b, 400.0));
        let e = e2e_interval(&ca, &ba, 1).unwrap_err();
        assert_eq!(e, NoInterval::TooFew { successes: 19 });
    }

    #[test]
    fn a_load_shorter_than_twenty_e2e_p95s_has_no_interval() {
        let (c, b) = (arm_store(100, 30.0, 1.0), arm_store(100, 30.0, 1.0));
        let (ca, ba) = (arm(&c, 30.0), arm(&b, 30.0));
        let e = ratio_interval(
            &ca,
            &ba,
            Figure::P95Ttft,
            Pairing::Paired,
            0.05,
            2000,
            [0; 32],
        )
        .unwrap_err();
        assert!(matches!(e, NoInterval::TooShort { .. }), "{e}");
    }
}
