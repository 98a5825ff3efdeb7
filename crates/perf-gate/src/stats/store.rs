//! The per-request sample store: what the gate needs exactly, per request, in 12 bytes.
//!
//! Each finished request keeps when it finished (offset from the load's start), its TTFT and
//! its E2E latency as `f32` seconds (`NaN` when it has none: a failure). TTFT and E2E are the
//! judged client figures, so their percentiles stay exact nearest-rank; the finish times let a
//! verdict cut the load into time blocks. Everything that grows with the token count (inter-
//! token gaps) goes to a [`super::LatencyHistogram`] instead, so memory grows by 12 bytes a
//! request, not by the length of its stream. Stores of shards concatenate exactly.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::select::OrderStatistics;
use super::{Ranked, adjusted_sorted, distribution_sorted, ranks_wanted};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::results::{
    AdjustedPercentiles, Distribution, PackedData, PackedSamples, SAMPLES_ENCODING,
};

/// Why packed samples cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UnpackError {
    /// Another encoding than [`SAMPLES_ENCODING`].
    #[error("samples encoded as {0:?}, not {SAMPLES_ENCODING:?}")]
    Encoding(String),
    /// `data` is not base64.
    #[error("samples data is not base64: {0}")]
    Base64(String),
    /// `data` does not hold `count` requests of 12 bytes.
    #[error("samples data holds {bytes} bytes, not the 12 x {count} its count says")]
    Length {
        /// Bytes decoded.
        bytes: usize,
        /// Requests the count says.
        count: u64,
    },
}

/// One finished request: seconds, `NaN` for "none".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestSample {
    /// When it finished, from the load's start.
    pub finished_s: f32,
    /// Time to first token (`NaN`: failed, or no token).
    pub ttft_s: f32,
    /// End to end, to the last token (`NaN`: failed, or no token).
    pub e2e_s: f32,
}

/// Every request's [`RequestSample`], in the order they finished.
///
/// Shared on clone (copied only when a shared store is added to): [`SampleStore::pack`] hands
/// the results the same samples, not a copy.
#[derive(Debug, Clone, Default)]
pub struct SampleStore {
    requests: Arc<Vec<RequestSample>>,
}

/// A store's base64 text as [`std::fmt::Display`], encoded a block at a time.
pub struct Encoded<'a>(&'a [RequestSample]);

impl std::fmt::Display for Encoded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 256 requests: 3,072 bytes (a multiple of 3, so no padding inside) -> 4,096 characters
        let mut raw = [0u8; 256 * 12];
        let mut text = [0u8; 256 * 16];
        for block in self.0.chunks(256) {
            for (r, out) in block.iter().zip(raw.chunks_exact_mut(12)) {
                out[0..4].copy_from_slice(&r.finished_s.to_le_bytes());
                out[4..8].copy_from_slice(&r.ttft_s.to_le_bytes());
                out[8..12].copy_from_slice(&r.e2e_s.to_le_bytes());
            }
            let n = BASE64
                .encode_slice(&raw[..block.len() * 12], &mut text)
                .expect("invariant: 4,096 characters hold 3,072 bytes of base64");
            f.write_str(std::str::from_utf8(&text[..n]).expect("invariant: base64 is ASCII"))?;
        }
        Ok(())
    }
}

/// `Some(v)` as `f32` when it is a latency, else `NaN`.
fn compact(v: Option<f64>) -> f32 {
    match v {
        Some(v) if v.is_finite() && v >= 0.0 => v as f32,
        _ => f32::NAN,
    }
}

impl SampleStore {
    /// An empty store with room for `requests` (a load of known length allocates once:
    /// a store grown by doubling leaves the copies it outgrew in the heap).
    pub fn with_capacity(requests: usize) -> Self {
        SampleStore {
            requests: Arc::new(Vec::with_capacity(requests)),
        }
    }

    /// Adds one finished request (`ttft_s`/`e2e_s` `None` for a failure).
    pub fn push(&mut self, finished_s: f64, ttft_s: Option<f64>, e2e_s: Option<f64>) {
        let requests = Arc::make_mut(&mut self.requests);
        requests.push(RequestSample {
            finished_s: compact(Some(finished_s)),
            ttft_s: compact(ttft_s),
            e2e_s: compact(e2e_s),
        });
        // records reach the store nearly in finish order: one that overtook a later finish
        // moves back a step or two, so the store stays sorted by finish time at O(1) a push
        let mut i = requests.len() - 1;
        while i > 0
            && requests[i - 1]
                .finished_s
                .total_cmp(&requests[i].finished_s)
                .is_gt()
        {
            requests.swap(i - 1, i);
            i -= 1;
        }
    }

    /// The requests, in the order they finished.
    pub fn requests(&self) -> &[RequestSample] {
        &self.requests
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// True when no request finished.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The requests packed for the results file (see [`PackedSamples`]), in finish order. The
    /// text is encoded only as the results are written (no second copy: the store is shared).
    pub fn pack(&self) -> PackedSamples {
        PackedSamples {
            encoding: SAMPLES_ENCODING.to_string(),
            count: self.requests.len() as u64,
            data: PackedData::from_store(self.clone()),
        }
    }

    /// The base64 text of the requests, in finish order.
    pub fn encoded(&self) -> Encoded<'_> {
        Encoded(&self.requests)
    }

    /// The store a [`SampleStore::pack`] wrote; an error when the encoding, the data or its
    /// length is wrong.
    pub fn unpack(packed: &PackedSamples) -> Result<Self, UnpackError> {
        if packed.encoding != SAMPLES_ENCODING {
            return Err(UnpackError::Encoding(packed.encoding.clone()));
        }
        if let Some(store) = packed.data.store() {
            if store.len() as u64 != packed.count {
                return Err(UnpackError::Length {
                    bytes: store.len() * 12,
                    count: packed.count,
                });
            }
            return Ok(store.clone());
        }
        let bytes = BASE64
            .decode(packed.data.text().as_bytes())
            .map_err(|e| UnpackError::Base64(e.to_string()))?;
        if Some(bytes.len())
            != usize::try_from(packed.count)
                .ok()
                .and_then(|c| c.checked_mul(12))
        {
            return Err(UnpackError::Length {
                bytes: bytes.len(),
                count: packed.count,
            });
        }
        let f = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let requests = bytes
            .chunks_exact(12)
            .map(|c| RequestSample {
                finished_s: f(&c[0..4]),
                ttft_s: f(&c[4..8]),
                e2e_s: f(&c[8..12]),
            })
            .collect();
        Ok(SampleStore {
            requests: Arc::new(requests),
        })
    }

    /// Moves every finish time by `by_s` seconds (a shard's load started `by_s` after the
    /// union's start).
    pub fn shift(&mut self, by_s: f64) {
        for r in Arc::make_mut(&mut self.requests) {
            r.finished_s = (f64::from(r.finished_s) + by_s) as f32;
        }
    }

    /// Appends another store's requests (a shard's): percentiles stay exact.
    pub fn merge(&mut self, other: &SampleStore) {
        let requests = Arc::make_mut(&mut self.requests);
        requests.extend_from_slice(&other.requests);
        // shards interleave in time: back to finish order (stable)
        requests.sort_by(|a, b| a.finished_s.total_cmp(&b.finished_s));
    }

    /// One latency (`pick`) counted out of the store without a sorted copy: how many requests
    /// have it, the value at each 0-based rank `ranks(count)` lists, and its exact sum.
    fn counted(
        &self,
        pick: fn(&RequestSample) -> f32,
        ranks: impl FnOnce(usize) -> Vec<usize>,
    ) -> (usize, BTreeMap<usize, f32>, f64) {
        let visit = |sink: &mut dyn FnMut(usize, f32)| {
            for r in self.requests.iter() {
                sink(0, pick(r));
            }
        };
        let stats = OrderStatistics::new(1, &visit);
        let n = stats.count(0);
        let ranks = ranks(n);
        let wanted: Vec<(usize, usize)> = ranks.iter().map(|&r| (0, r)).collect();
        let values = ranks.into_iter().zip(stats.ranks(&wanted)).collect();
        let sum = self
            .requests
            .iter()
            .map(pick)
            .filter(|x| !x.is_nan())
            .map(f64::from)
            .sum();
        (n, values, sum)
    }

    /// The ranks of one latency that its distribution (and with `failures`, its adjusted
    /// percentiles) read, and its exact sum.
    fn ranked(&self, pick: fn(&RequestSample) -> f32, failures: Option<u64>) -> (Picked, f64) {
        let (n, values, sum) = self.counted(pick, |n| ranks_wanted(n, failures));
        (Picked { n, values }, sum)
    }

    /// Nearest-rank quantiles `qs` of the E2E latencies present, with their count, sum and
    /// extremes, counted out of the store without a sorted copy; `None` when no request has
    /// one.
    pub fn e2e_quantiles(&self, qs: &[f64]) -> Option<Quantiles> {
        let rank = |q: f64, n: usize| super::nearest_rank(q, n) - 1;
        let (n, values, sum) = self.counted(
            |r| r.e2e_s,
            |n| match n {
                0 => Vec::new(),
                _ => [0, n - 1]
                    .into_iter()
                    .chain(qs.iter().map(|&q| rank(q, n)))
                    .collect(),
            },
        );
        let at = |r: usize| f64::from(values[&r]);
        (n > 0).then(|| Quantiles {
            count: n,
            sum,
            min: at(0),
            max: at(n - 1),
            at: qs.iter().map(|&q| at(rank(q, n))).collect(),
        })
    }

    /// Exact nearest-rank distribution of the TTFTs present.
    pub fn ttft(&self) -> Distribution {
        let (v, sum) = self.ranked(|r| r.ttft_s, None);
        distribution_sorted(&v, sum)
    }

    /// Exact nearest-rank distribution of the E2E latencies present.
    pub fn e2e(&self) -> Distribution {
        let (v, sum) = self.ranked(|r| r.e2e_s, None);
        distribution_sorted(&v, sum)
    }

    /// TTFT percentiles with `failures` more requests counted as `+Inf`.
    pub fn ttft_adjusted(&self, failures: u64) -> AdjustedPercentiles {
        adjusted_sorted(&self.ranked(|r| r.ttft_s, Some(failures)).0, failures)
    }

    /// E2E percentiles with `failures` more requests counted as `+Inf`.
    pub fn e2e_adjusted(&self, failures: u64) -> AdjustedPercentiles {
        adjusted_sorted(&self.ranked(|r| r.e2e_s, Some(failures)).0, failures)
    }
}

/// Some quantiles of a latency ([`SampleStore::e2e_quantiles`]), seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantiles {
    /// Requests with the latency.
    pub count: usize,
    /// Its sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// The nearest-rank quantile of each `q` asked for, in order.
    pub at: Vec<f64>,
}

/// The ranks of `n` samples that [`ranks_wanted`] lists, by rank.
struct Picked {
    n: usize,
    values: BTreeMap<usize, f32>,
}

impl Ranked for Picked {
    fn count(&self) -> usize {
        self.n
    }
    fn at(&self, i: usize) -> f32 {
        *self
            .values
            .get(&i)
            .expect("invariant: ranks_wanted lists every rank the summaries read")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Samples;

    #[test]
    fn the_store_keeps_finish_order_whatever_order_records_arrive_in() {
        let mut store = SampleStore::default();
        for t in [1.0, 3.0, 2.0, 4.0, 3.5, 0.5] {
            store.push(t, Some(t / 10.0), Some(t));
        }
        let order: Vec<f32> = store.requests().iter().map(|r| r.finished_s).collect();
        assert_eq!(order, [0.5, 1.0, 2.0, 3.0, 3.5, 4.0]);
        // each sample moved with its own figures
        assert!(store.requests().iter().all(|r| r.e2e_s == r.finished_s));
        let mut other = SampleStore::default();
        other.push(2.5, None, None);
        other.push(0.1, None, None);
        store.merge(&other);
        let order: Vec<f32> = store.requests().iter().map(|r| r.finished_s).collect();
        assert_eq!(order, [0.1, 0.5, 1.0, 2.0, 2.5, 3.0, 3.5, 4.0]);
        let back = SampleStore::unpack(&store.pack()).unwrap();
        assert_eq!(back.requests().len(), 8);
        assert_eq!(back.requests()[0].finished_s, 0.1);
    }

    #[test]
    fn a_live_store_is_written_as_the_same_base64_across_blocks_and_reads_back() {
        // 600 requests: two whole blocks of 256 and a partial one
        let mut store = SampleStore::default();
        for i in 0..600u32 {
            let t = f64::from(i) * 0.01;
            store.push(t, (i % 7 != 0).then_some(t / 3.0), Some(t + 0.5));
        }
        let packed = store.pack();
        let mut raw = Vec::new();
        for r in store.requests() {
            raw.extend_from_slice(&r.finished_s.to_le_bytes());
            raw.extend_from_slice(&r.ttft_s.to_le_bytes());
            raw.extend_from_slice(&r.e2e_s.to_le_bytes());
        }
        let json = serde_json::to_string(&packed).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["data"], BASE64.encode(&raw));
        assert_eq!(packed.data.len(), 600 * 16);
        let read: PackedSamples = serde_json::from_str(&json).unwrap();
        assert!(read.data.store().is_none(), "read from text");
        assert_eq!(read, packed, "the text and the live store compare equal");
        let back = SampleStore::unpack(&read).unwrap();
        assert_eq!(back.requests().len(), 600);
        for (a, b) in back.requests().iter().zip(store.requests()) {
            assert_eq!(a.finished_s.to_bits(), b.finished_s.to_bits());
            assert_eq!(a.ttft_s.to_bits(), b.ttft_s.to_bits());
            assert_eq!(a.e2e_s.to_bits(), b.e2e_s.to_bits());
        }
        // the store keeps growing after packing; the packed samples do not
        store.push(99.0, Some(0.1), Some(1.0));
        assert_eq!(store.len(), 601);
        assert_eq!(packed.count, 600);
        assert_eq!(packed.data.len(), 600 * 16);
        assert_eq!(SampleStore::unpack(&packed).unwrap().len(), 600);
        assert_eq!(serde_json::to_string(&packed).unwrap(), json);
    }

    #[test]
    fn packing_round_trips_bit_for_bit_and_refuses_damage() {
        let mut store = SampleStore::default();
        store.push(0.25, Some(0.011), Some(0.5));
        store.push(0.5, None, None);
        store.push(1.0e6, Some(1.5e-7), Some(3.0));
        let packed = store.pack();
        assert_eq!(packed.count, 3);
        assert_eq!(packed.data.len(), 48, "16 characters a request");
        let back = SampleStore::unpack(&packed).unwrap();
        // packed in finish order: already so here
        let bits = |s: &SampleStore| -> Vec<[u32; 3]> {
            s.requests()
                .iter()
                .map(|r| {
                    [
                        r.finished_s.to_bits(),
                        r.ttft_s.to_bits(),
                        r.e2e_s.to_bits(),
                    ]
                })
                .collect()
        };
        assert_eq!(bits(&back), bits(&store));
        assert!(back.requests()[1].ttft_s.is_nan());

        let short = PackedSamples {
            count: 4,
            ..packed.clone()
        };
        assert_eq!(
            SampleStore::unpack(&short).unwrap_err(),
            UnpackError::Length {
                bytes: 36,
                count: 4
            }
        );
        let garbled = PackedSamples {
            data: "@@@@".into(),
            ..packed.clone()
        };
        assert!(matches!(
            SampleStore::unpack(&garbled),
            Err(UnpackError::Base64(_))
        ));
        let other = PackedSamples {
            encoding: "f64".into(),
            ..packed
        };
        assert!(matches!(
            SampleStore::unpack(&other),
            Err(UnpackError::Encoding(_))
        ));
    }

    #[test]
    fn a_request_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<RequestSample>(), 12);
    }

    #[test]
    fn distributions_match_the_exact_samples_and_skip_failures() {
        let mut store = SampleStore::default();
        let mut ttft = Samples::new();
        for i in 0..1000u32 {
            let t = f64::from((i * 7919) % 1000) / 1000.0 + 0.001;
            if i % 10 == 0 {
                store.push(f64::from(i), None, None);
            } else {
                store.push(f64::from(i), Some(t), Some(t * 3.0));
                ttft.push(t);
            }
        }
        assert_eq!(store.len(), 1000);
        // the same samples, ranks and extremes; the mean sums the stored f32s
        let (got, want) = (store.ttft(), ttft.distribution());
        assert_eq!(
            (got.p50, got.p90, got.p95, got.p99),
            (want.p50, want.p90, want.p95, want.p99)
        );
        assert_eq!((got.min, got.max), (want.min, want.max));
        assert!((got.mean.unwrap() - want.mean.unwrap()).abs() < 1e-6);
        assert_eq!(store.ttft().count, 900);
        // counted out of the store, as ranked in a sorted copy, whether the failures' +Inf
        // reach the P50, only the P99, or none
        for failures in [0, 1, 9, 100, 899, 900, 5000] {
            assert_eq!(
                store.ttft_adjusted(failures),
                ttft.adjusted(failures),
                "{failures}"
            );
        }
        assert_eq!(store.requests()[0].ttft_s.to_bits(), f32::NAN.to_bits());
        assert_eq!(store.requests()[999].finished_s, 999.0);
    }

    #[test]
    fn shards_concatenate_exactly() {
        let (mut a, mut b, mut all) = (
            SampleStore::default(),
            SampleStore::default(),
            SampleStore::default(),
        );
        for i in 0..101u32 {
            let v = f64::from(i) / 100.0;
            if i % 2 == 0 { &mut a } else { &mut b }.push(v, Some(v), Some(v));
            all.push(v, Some(v), Some(v));
        }
        a.merge(&b);
        assert_eq!(a.e2e(), all.e2e());
        assert_eq!(a.e2e_adjusted(3), all.e2e_adjusted(3));
    }
}
