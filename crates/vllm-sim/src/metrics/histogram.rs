//! A lock-free Prometheus histogram and vLLM's bucket bounds (`vllm/v1/metrics/buckets.py`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Upper bounds of e2e, queue, prefill, decode and inference time (seconds).
pub(crate) const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// Upper bounds of time to first token (seconds).
pub(crate) const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// Upper bounds of inter-token latency and per-request time per output token (seconds).
pub(crate) const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

/// Upper bounds of the `n` request parameter.
pub(crate) const PARAMS_N_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];

/// vLLM's 1-2-5 series up to `max` (request token counts): 1, 2, 5, 10, 20, 50, ...
pub(crate) fn one_two_five(max: u32) -> Vec<f64> {
    let max = f64::from(max);
    let mut out = Vec::new();
    let mut scale = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            let v: f64 = m * scale;
            if v > max {
                return out;
            }
            out.push(v);
        }
        scale *= 10.0;
    }
}

/// A histogram whose `observe` is a few relaxed atomic operations (no lock).
///
/// Per-bucket counts are kept non-cumulative and summed when rendered; `_count` is the
/// total of the buckets, so a scrape always sees `_count` equal to the `+Inf` bucket.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: Box<[f64]>,
    /// One slot per bound plus one for `+Inf`.
    counts: Box<[AtomicU64]>,
    /// Sum of observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.into(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub(crate) fn observe(&self, v: f64) {
        // First bound >= v: Prometheus buckets count observations `<= le`.
        let idx = self.bounds.partition_point(|b| *b < v);
        self.counts[idx].fetch_add(1, Relaxed);
        let mut cur = self.sum.load(Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self.sum.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }

    pub(crate) fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Cumulative counts, one per bound then `+Inf` (whose value is the total count).
    pub(crate) fn cumulative(&self) -> Vec<u64> {
        let mut acc = 0;
        self.counts
            .iter()
            .map(|c| {
                acc += c.load(Relaxed);
                acc
            })
            .collect()
    }

    pub(crate) fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_stops_at_max() {
        assert_eq!(
            one_two_five(1024),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert_eq!(one_two_five(2), vec![1.0, 2.0]);
    }

    #[test]
    fn observations_land_in_le_buckets() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.1); // on the bound: counted in le=0.1
        h.observe(0.5);
        h.observe(3.0);
        h.observe(3.0);
        assert_eq!(h.cumulative(), vec![1, 2, 4]);
        assert!((h.sum() - 6.6).abs() < 1e-9);
    }
}
