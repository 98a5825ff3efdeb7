//! What the plots draw, computed from one arm's per-request samples: pure, deterministic
//! functions, no drawing. Every figure is bounded in size whatever the number of requests
//! (at most [`ECDF_POINTS`], [`SCATTER_POINTS`] or a few hundred time bins), so a 100 000-request
//! load renders as fast as a small one.

use crate::stats::select::OrderStatistics;
use crate::stats::{RequestSample, nearest_rank};

/// Most points of a distribution curve (quantiles taken at even steps beyond that).
pub(crate) const ECDF_POINTS: usize = 500;
/// Most requests drawn one by one in a scatter plot (every k-th beyond that).
pub(crate) const SCATTER_POINTS: usize = 2000;
/// About how many bins the over-time plots cut a load into.
pub(crate) const TIME_BINS: f64 = 60.0;
/// How many time bins [`binned_percentiles`] counts in one go (8 KB each).
const BINS_COUNTED_AT_ONCE: usize = 64;

/// Which latency of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Latency {
    /// Time to first token.
    Ttft,
    /// End to end.
    E2e,
}

impl Latency {
    pub(crate) fn of(self, r: &RequestSample) -> f32 {
        match self {
            Latency::Ttft => r.ttft_s,
            Latency::E2e => r.e2e_s,
        }
    }
}

/// A latency that is there (a success): finite and not negative.
fn present(v: f32) -> Option<f64> {
    (v.is_finite() && v >= 0.0).then_some(f64::from(v))
}

/// The successes' latency, ranked for the distribution plot: how many, P50, P95 and the
/// curve, counted out of the samples without a sorted copy (a million-request load adds no
/// memory to the report but its bounded points).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spread {
    /// Successes.
    pub(crate) count: usize,
    /// Nearest-rank P50.
    pub(crate) p50: Option<f64>,
    /// Nearest-rank P95.
    pub(crate) p95: Option<f64>,
    /// The empirical distribution function as `(latency, fraction of requests at or below
    /// it)`: every sample up to [`ECDF_POINTS`], else the nearest-rank quantiles at even
    /// steps. Starts at `(min, 0)`.
    pub(crate) ecdf: Vec<(f64, f64)>,
}

/// The [`Spread`] of the successes' `which` latency.
pub(crate) fn spread(requests: &[RequestSample], which: Latency) -> Spread {
    let visit = |sink: &mut dyn FnMut(usize, f32)| {
        for r in requests {
            let v = which.of(r);
            if present(v).is_some() {
                sink(0, v);
            }
        }
    };
    let stats = OrderStatistics::new(1, &visit);
    let n = stats.count(0);
    if n == 0 {
        return Spread {
            count: 0,
            p50: None,
            p95: None,
            ecdf: Vec::new(),
        };
    }
    let steps = n.min(ECDF_POINTS);
    let curve: Vec<(usize, f64)> = std::iter::once((0, 0.0))
        .chain((1..=steps).map(|j| {
            let q = j as f64 / steps as f64;
            (nearest_rank(q, n) - 1, q)
        }))
        .collect();
    let (r50, r95) = (nearest_rank(0.50, n) - 1, nearest_rank(0.95, n) - 1);
    let wanted: Vec<(usize, usize)> = curve
        .iter()
        .map(|&(r, _)| r)
        .chain([r50, r95])
        .map(|r| (0, r))
        .collect();
    let values: Vec<f64> = stats.ranks(&wanted).into_iter().map(f64::from).collect();
    Spread {
        count: n,
        p50: Some(values[curve.len()]),
        p95: Some(values[curve.len() + 1]),
        ecdf: curve
            .iter()
            .zip(&values)
            .map(|(&(_, q), &v)| (v, q))
            .collect(),
    }
}

/// The successes as `(finished_s, latency)`, every `stride`-th of them so that at most
/// [`SCATTER_POINTS`] remain; returns the points and the stride (1: all of them).
pub(crate) fn scatter(requests: &[RequestSample], which: Latency) -> (Vec<(f64, f64)>, usize) {
    let successes = requests
        .iter()
        .filter(|r| present(which.of(r)).is_some())
        .count();
    let stride = successes.div_ceil(SCATTER_POINTS).max(1);
    let points = requests
        .iter()
        .filter_map(|r| Some((f64::from(r.finished_s), present(which.of(r))?)))
        .filter(|(t, _)| t.is_finite())
        .step_by(stride)
        .collect();
    (points, stride)
}

/// Fixed-width time bins over a load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bins {
    /// Width of a bin, seconds: a round number giving about [`TIME_BINS`] bins.
    pub(crate) width: f64,
    /// Number of bins.
    pub(crate) count: usize,
}

impl Bins {
    /// Bins covering `[0, extent_s]`; `None` when there is nothing to cover.
    pub(crate) fn covering(extent_s: f64) -> Option<Bins> {
        if !(extent_s.is_finite() && extent_s > 0.0) {
            return None;
        }
        let raw = extent_s / TIME_BINS;
        let width = [
            0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
            600.0, 900.0, 1800.0, 3600.0,
        ]
        .into_iter()
        .find(|w| *w >= raw)
        .unwrap_or(3600.0);
        let count = ((extent_s / width).ceil() as usize).clamp(1, 10_000);
        Some(Bins { width, count })
    }

    /// The bin holding time `t`, if inside.
    fn index(&self, t: f64) -> Option<usize> {
        if !(t.is_finite() && t >= 0.0) {
            return None;
        }
        Some(((t / self.width) as usize).min(self.count - 1))
    }

    /// Middle of bin `i`, seconds.
    pub(crate) fn mid(&self, i: usize) -> f64 {
        (i as f64 + 0.5) * self.width
    }
}

/// The time a load's plots cover: its duration, or the last finish if later.
pub(crate) fn extent(requests: &[RequestSample], duration_s: Option<f64>) -> f64 {
    requests
        .iter()
        .map(|r| f64::from(r.finished_s))
        .filter(|t| t.is_finite())
        .chain(duration_s.filter(|d| d.is_finite()))
        .fold(0.0, f64::max)
}

/// Per bin `(middle, successes per second, failures per second)`.
pub(crate) fn throughput(requests: &[RequestSample], bins: Bins) -> Vec<(f64, f64, f64)> {
    let mut ok = vec![0u64; bins.count];
    let mut failed = vec![0u64; bins.count];
    for r in requests {
        let Some(i) = bins.index(f64::from(r.finished_s)) else {
            continue;
        };
        if present(r.e2e_s).is_some() {
            ok[i] += 1;
        } else {
            failed[i] += 1;
        }
    }
    (0..bins.count)
        .map(|i| {
            (
                bins.mid(i),
                ok[i] as f64 / bins.width,
                failed[i] as f64 / bins.width,
            )
        })
        .collect()
}

/// Per bin with successes: `(middle, P50, P95)` of the latency of the requests that finished in
/// it, over all of them (not the scatter's sample).
pub(crate) fn binned_percentiles(
    requests: &[RequestSample],
    which: Latency,
    bins: Bins,
) -> Vec<(f64, f64, f64)> {
    let mut out = Vec::new();
    // counted a few dozen bins at a time: 8 KB a bin, whatever the number of requests
    for first in (0..bins.count).step_by(BINS_COUNTED_AT_ONCE) {
        let last = (first + BINS_COUNTED_AT_ONCE).min(bins.count);
        let visit = |sink: &mut dyn FnMut(usize, f32)| {
            for r in requests {
                let v = which.of(r);
                if let (Some(i), Some(_)) = (bins.index(f64::from(r.finished_s)), present(v))
                    && (first..last).contains(&i)
                {
                    sink(i - first, v);
                }
            }
        };
        let stats = OrderStatistics::new(last - first, &visit);
        let filled: Vec<usize> = (0..last - first).filter(|&g| stats.count(g) > 0).collect();
        let wanted: Vec<(usize, usize)> = filled
            .iter()
            .flat_map(|&g| {
                let n = stats.count(g);
                [
                    (g, nearest_rank(0.50, n) - 1),
                    (g, nearest_rank(0.95, n) - 1),
                ]
            })
            .collect();
        let values = stats.ranks(&wanted);
        out.extend(
            filled
                .iter()
                .zip(values.chunks_exact(2))
                .map(|(&g, v)| (bins.mid(first + g), f64::from(v[0]), f64::from(v[1]))),
        );
    }
    out
}

/// Requests in flight: per bin `(start, end, mean number in flight over it)`, counted from the
/// successes (start = finish - E2E; a failure has no recorded start and is left out). The
/// time-weighted mean, not the peak: a start estimated a rounding error before the previous
/// request's finish would otherwise show one request too many.
pub(crate) fn in_flight(requests: &[RequestSample], bins: Bins) -> Vec<(f64, f64, f64)> {
    let w = bins.width;
    let span = w * bins.count as f64;
    // time busy per bin: the partial first and last bins directly, the full bins between
    // through a difference array (constant work per request, however long it ran)
    let mut busy = vec![0.0f64; bins.count];
    let mut full = vec![0.0f64; bins.count + 1];
    for r in requests {
        let (Some(e2e), end) = (present(r.e2e_s), f64::from(r.finished_s)) else {
            continue;
        };
        if !end.is_finite() {
            continue;
        }
        let (start, end) = ((end - e2e).max(0.0), end.min(span));
        let (Some(i0), Some(i1)) = (bins.index(start), bins.index(end)) else {
            continue;
        };
        if start >= end {
            continue;
        }
        if i0 == i1 {
            busy[i0] += end - start;
        } else {
            busy[i0] += (i0 + 1) as f64 * w - start;
            busy[i1] += end - i1 as f64 * w;
            full[i0 + 1] += w;
            full[i1] -= w;
        }
    }
    let mut running = 0.0;
    (0..bins.count)
        .map(|i| {
            running += full[i];
            (i as f64 * w, (i + 1) as f64 * w, (busy[i] + running) / w)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(finished: f32, ttft: f32, e2e: f32) -> RequestSample {
        RequestSample {
            finished_s: finished,
            ttft_s: ttft,
            e2e_s: e2e,
        }
    }

    #[test]
    fn the_distribution_curve_is_exact_when_small_and_bounded_when_large() {
        // failures (NaN, negative, infinite) are left out
        let small: Vec<RequestSample> = [0.375, f32::NAN, 0.125, 0.5, -1.0, 0.25, f32::INFINITY]
            .into_iter()
            .map(|e| req(1.0, 0.1, e))
            .collect();
        assert_eq!(
            spread(&small, Latency::E2e),
            Spread {
                count: 4,
                p50: Some(0.25),
                p95: Some(0.5),
                ecdf: vec![
                    (0.125, 0.0),
                    (0.125, 0.25),
                    (0.25, 0.5),
                    (0.375, 0.75),
                    (0.5, 1.0)
                ],
            }
        );
        // the curve's points and quantiles are the sorted copy's, nearest rank
        let large: Vec<RequestSample> = (1..=100_000)
            .rev()
            .map(|i| req(1.0, i as f32 / 1000.0, 0.0))
            .collect();
        let mut sorted: Vec<f64> = large.iter().map(|r| f64::from(r.ttft_s)).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let s = spread(&large, Latency::Ttft);
        assert_eq!(s.ecdf.len(), ECDF_POINTS + 1);
        assert_eq!(s.ecdf.last(), Some(&(100.0, 1.0)));
        assert_eq!(s.ecdf[0], (sorted[0], 0.0));
        for &(v, q) in &s.ecdf[1..] {
            assert_eq!(v, sorted[nearest_rank(q, sorted.len()) - 1], "{q}");
        }
        assert!(
            s.ecdf
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1)
        );
        assert_eq!(s.p95, Some(sorted[94_999]));
        assert_eq!(s.p50, Some(sorted[49_999]));
        assert_eq!(spread(&[], Latency::Ttft).ecdf, vec![]);
    }

    #[test]
    fn scatter_keeps_every_kth_success_and_skips_failures() {
        let mut rs: Vec<RequestSample> = (0..10_000)
            .map(|i| req(i as f32 / 100.0, 0.1, 1.0))
            .collect();
        rs[3].e2e_s = f32::NAN;
        let (points, stride) = scatter(&rs, Latency::E2e);
        assert_eq!(stride, 5);
        assert!(points.len() <= SCATTER_POINTS);
        assert!(points.iter().all(|(_, v)| *v == 1.0));
        let (all, one) = scatter(&rs[..100], Latency::E2e);
        assert_eq!((all.len(), one), (99, 1));
    }

    #[test]
    fn bins_are_round_and_cover_the_load() {
        assert_eq!(
            Bins::covering(20.0),
            Some(Bins {
                width: 0.5,
                count: 40
            })
        );
        assert_eq!(Bins::covering(3600.0).map(|b| b.width), Some(60.0));
        assert_eq!(Bins::covering(0.0), None);
        assert_eq!(Bins::covering(f64::NAN), None);
    }

    #[test]
    fn throughput_counts_completions_and_failures_per_second() {
        let bins = Bins {
            width: 1.0,
            count: 2,
        };
        let rs = [
            req(0.2, 0.1, 0.2),
            req(0.9, 0.1, 0.5),
            req(1.5, f32::NAN, f32::NAN),
            req(f32::NAN, 0.1, 0.1),
        ];
        assert_eq!(
            throughput(&rs, bins),
            vec![(0.5, 2.0, 0.0), (1.5, 0.0, 1.0)]
        );
    }

    #[test]
    fn in_flight_is_the_time_weighted_mean_of_the_successes() {
        // one request over [0, 2), one over [0.5, 1.5), one over [3, 4), a failure
        let rs = [
            req(2.0, 0.1, 2.0),
            req(1.5, 0.1, 1.0),
            req(4.0, 0.1, 1.0),
            req(4.0, f32::NAN, f32::NAN),
        ];
        let bins = Bins {
            width: 1.0,
            count: 5,
        };
        let means: Vec<f64> = in_flight(&rs, bins).into_iter().map(|b| b.2).collect();
        assert_eq!(means, vec![1.5, 1.5, 0.0, 1.0, 0.0]);
        // a request over [0.5, 4.75): half of bin 0, bins 1 to 3 whole, three quarters of 4
        let long = [req(4.75, 0.1, 4.25)];
        let means: Vec<f64> = in_flight(&long, bins).into_iter().map(|b| b.2).collect();
        assert_eq!(means, vec![0.5, 1.0, 1.0, 1.0, 0.75]);
    }

    #[test]
    fn binned_percentiles_use_every_request_of_the_bin() {
        let rs: Vec<RequestSample> = (1..=100).map(|i| req(0.5, 0.1, i as f32)).collect();
        let bins = Bins {
            width: 1.0,
            count: 2,
        };
        assert_eq!(
            binned_percentiles(&rs, Latency::E2e, bins),
            vec![(0.5, 50.0, 95.0)]
        );
        // more bins than are counted at once: each bin's own requests, in order
        let bins = Bins {
            width: 1.0,
            count: 150,
        };
        let rs: Vec<RequestSample> = (0..150 * 20)
            .map(|i| {
                req(
                    (i % 150) as f32 + 0.5,
                    0.1,
                    (i % 150 * 100 + i / 150) as f32,
                )
            })
            .collect();
        let got = binned_percentiles(&rs, Latency::E2e, bins);
        assert_eq!(got.len(), 150);
        for (b, &(mid, p50, p95)) in got.iter().enumerate() {
            let base = (b * 100) as f64;
            assert_eq!(
                (mid, p50, p95),
                (b as f64 + 0.5, base + 9.0, base + 18.0),
                "{b}"
            );
        }
    }
}
