//! Pooled latencies whose count grows with every token (inter-token gaps, TPOT, client queueing)
//! in a mergeable HDR histogram: constant memory at any run length, percentiles within a stated
//! relative error.
//!
//! The rank rule is the project's ([`super::nearest_rank`], exact in integer parts per
//! million), not `hdrhistogram`'s float `ceil(q * n)`; the value reported for a rank is the
//! upper edge of its bucket (never below the true sample) and lies within [`RELATIVE_ERROR`] of
//! it. The mean is exact (a separate sum).

use hdrhistogram::Histogram;

use super::nearest_rank;
use crate::results::Distribution;

/// Significant decimal digits the histogram keeps.
const SIGNIFICANT_DIGITS: u8 = 3;
/// Largest relative gap between a reported percentile and the sample at its rank.
pub const RELATIVE_ERROR: f64 = 1e-3;
/// Largest value recorded, microseconds (one hour; larger values are recorded as one hour).
const MAX_US: u64 = 3_600_000_000;

/// Latencies (seconds) in microsecond buckets with [`RELATIVE_ERROR`].
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    h: Histogram<u64>,
    sum: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            h: Histogram::new_with_bounds(1, MAX_US, SIGNIFICANT_DIGITS)
                .expect("invariant: valid HDR histogram bounds"),
            sum: 0.0,
        }
    }
}

impl LatencyHistogram {
    /// Adds one latency; non-finite or negative values are not latencies and are ignored.
    pub fn push(&mut self, secs: f64) {
        if secs.is_finite() && secs >= 0.0 {
            // up to the next microsecond (within a picosecond of an integer counts as it), so
            // a reported percentile is never below its sample
            let us = (secs * 1e6 - 1e-6).ceil().max(0.0);
            self.h.saturating_record(us as u64);
            self.sum += secs;
        }
    }

    /// Adds many latencies.
    pub fn extend_from_slice(&mut self, secs: &[f32]) {
        for &s in secs {
            self.push(f64::from(s));
        }
    }

    /// Number of latencies recorded.
    pub fn len(&self) -> u64 {
        self.h.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// Adds another histogram's latencies (shards, or the warm-up kept apart).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.h
            .add(&other.h)
            .expect("invariant: histograms of one type share their bounds");
        self.sum += other.sum;
    }

    /// The histogram as text (HDR's V2 encoding, base64) and its exact sum, to be written by a
    /// shard and read back by [`LatencyHistogram::from_wire`].
    pub fn to_wire(&self) -> (String, f64) {
        use base64::Engine as _;
        let mut bytes = Vec::new();
        hdrhistogram::serialization::Serializer::serialize(
            &mut hdrhistogram::serialization::V2Serializer::new(),
            &self.h,
            &mut bytes,
        )
        .expect("invariant: a histogram serializes into memory");
        (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            self.sum,
        )
    }

    /// The histogram [`LatencyHistogram::to_wire`] wrote; an error names what is wrong.
    pub fn from_wire(text: &str, sum: f64) -> Result<LatencyHistogram, String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| format!("not base64: {e}"))?;
        let read: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("not an HDR histogram: {e:?}"))?;
        let mut out = LatencyHistogram::default();
        out.h
            .add(&read)
            .map_err(|e| format!("values outside the bounds: {e:?}"))?;
        if !sum.is_finite() || sum < 0.0 {
            return Err(format!("sum {sum} is not a latency sum"));
        }
        out.sum = sum;
        Ok(out)
    }

    /// The nearest-rank percentile `q`, as its bucket's upper edge (seconds).
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let n = self.h.len();
        if n == 0 {
            return None;
        }
        let rank = nearest_rank(q, usize::try_from(n).unwrap_or(usize::MAX)) as u64;
        let mut seen = 0u64;
        for v in self.h.iter_recorded() {
            seen += v.count_at_value();
            if seen >= rank {
                return Some(self.h.highest_equivalent(v.value_iterated_to()) as f64 / 1e6);
            }
        }
        Some(self.h.max() as f64 / 1e6)
    }

    /// Summary with nearest-rank percentiles, marked with its [`RELATIVE_ERROR`].
    pub fn distribution(&self) -> Distribution {
        let n = self.h.len();
        let some = |v: f64| (n > 0).then_some(v);
        Distribution {
            count: n,
            min: some(self.h.lowest_equivalent(self.h.min()) as f64 / 1e6),
            mean: some(self.sum / n.max(1) as f64),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p95: self.percentile(0.95),
            p99: self.percentile(0.99),
            max: some(self.h.highest_equivalent(self.h.max()) as f64 / 1e6),
            relative_error: Some(RELATIVE_ERROR),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Samples;

    #[test]
    fn percentiles_are_within_the_stated_error_of_the_exact_ones() {
        let mut h = LatencyHistogram::default();
        let mut exact = Samples::new();
        // a skewed spread from 1 ms to ~3 s, with repeats
        let mut x = 0.001f64;
        for i in 0..20_000u32 {
            let v = x * (1.0 + f64::from(i % 7) / 3.0);
            h.push(v);
            exact.push(v);
            x = if x > 3.0 { 0.001 } else { x * 1.0007 };
        }
        let (a, b) = (h.distribution(), exact.distribution());
        assert_eq!(a.count, b.count);
        for (got, want) in [
            (a.p50, b.p50),
            (a.p90, b.p90),
            (a.p95, b.p95),
            (a.p99, b.p99),
        ] {
            let (got, want) = (got.unwrap(), want.unwrap());
            // the bucket's upper edge: never below the sample, at most 0.1 % above it (plus
            // the f32 rounding of the exact store and the microsecond unit)
            assert!(got >= want * (1.0 - 1e-6) - 1e-6, "{got} < {want}");
            assert!(
                got <= want * (1.0 + RELATIVE_ERROR) + 1e-6,
                "{got} vs {want}"
            );
        }
        assert!((a.mean.unwrap() - b.mean.unwrap()).abs() < 1e-9 * b.mean.unwrap().max(1.0));
        assert_eq!(a.relative_error, Some(RELATIVE_ERROR));
    }

    #[test]
    fn the_rank_rule_is_the_project_s_not_a_float_ceiling() {
        // 20 distinct values, each its own bucket (below 2,048 µs every microsecond is one):
        // p95 is rank 19 exactly (0.95 * 20 in floats is 19.000000000000004, whose ceiling
        // would be rank 20)
        let mut h = LatencyHistogram::default();
        for i in 1..=20u32 {
            h.push(f64::from(i) / 10_000.0);
        }
        assert_eq!(h.percentile(0.95), Some(0.0019));
        assert_eq!(h.percentile(1.0), Some(0.002));
        assert_eq!(h.percentile(0.0), Some(0.0001));
    }

    #[test]
    fn empty_is_null_not_zero_and_merging_adds() {
        let d = LatencyHistogram::default().distribution();
        assert_eq!((d.count, d.p50, d.mean, d.min), (0, None, None, None));
        let mut a = LatencyHistogram::default();
        // (as f32, 0.001 lies just below 1,000 µs; 0.002 would lie just above 2,000 µs and be
        // recorded as 2,001 µs: never below the sample)
        a.extend_from_slice(&[0.0010]);
        a.push(0.002);
        a.push(f64::NAN);
        a.push(-1.0);
        let mut b = LatencyHistogram::default();
        b.push(0.0015);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.percentile(1.0), Some(0.002));
        assert_eq!(a.percentile(0.5), Some(0.0015));
        assert!((a.distribution().mean.unwrap() - 0.0015).abs() < 1e-9);
    }
}
