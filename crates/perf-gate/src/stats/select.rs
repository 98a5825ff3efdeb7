//! Exact order statistics without a sorted copy of the samples.
//!
//! A nearest-rank percentile needs the k-th smallest sample, and sorting a copy of a million
//! samples to find it costs 4 bytes a request on top of the store that holds them: the one
//! figure that grew with the run length after the store itself. [`OrderStatistics`] finds any
//! number of ranks, in any number of groups (the arms of a chart, the bins of a time series),
//! exactly, by counting: each `f32` is mapped to a `u32` key in the order of
//! [`f32::total_cmp`], and three counting passes narrow every wanted rank down by 11, 11 and 10
//! bits of its key. Memory is 8 KB per group plus 8 KB per distinct prefix a wanted rank falls
//! in, whatever the sample count; time is three reads of the samples.

/// A visit of every sample: calls its argument with `(group, value)` for each one. It is
/// called once per pass (three times), and must yield the same values each time.
pub type Visit<'a> = dyn Fn(&mut dyn FnMut(usize, f32)) + 'a;

const TOP_BITS: u32 = 11;
const MID_BITS: u32 = 11;
const LOW_BITS: u32 = 10;
const TOP: usize = 1 << TOP_BITS;
const MID: usize = 1 << MID_BITS;
const LOW: usize = 1 << LOW_BITS;
const NONE: u32 = u32::MAX;

/// `v`'s key: ascending keys are ascending values in [`f32::total_cmp`]'s order.
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

/// The value of a key (the inverse of [`key`]).
fn value(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

fn top(k: u32) -> usize {
    (k >> (MID_BITS + LOW_BITS)) as usize
}

fn mid(k: u32) -> usize {
    ((k >> LOW_BITS) as usize) & (MID - 1)
}

fn low(k: u32) -> usize {
    (k as usize) & (LOW - 1)
}

/// Where a rank falls among `counts` (ascending buckets): the bucket, and the rank inside it.
fn locate(counts: &[u32], mut rank: usize) -> (usize, usize) {
    for (i, &c) in counts.iter().enumerate() {
        if rank < c as usize {
            return (i, rank);
        }
        rank -= c as usize;
    }
    unreachable!("invariant: a rank is below its group's count")
}

/// The samples of some groups, counted once by their keys' top bits; ask for ranks with
/// [`OrderStatistics::ranks`]. `NaN`s are left out (they are no latency).
pub struct OrderStatistics<'a> {
    visit: &'a Visit<'a>,
    /// Per group, how many of its samples have each top prefix.
    tops: Vec<u32>,
    counts: Vec<usize>,
}

impl<'a> OrderStatistics<'a> {
    /// Counts the samples `visit` yields into `groups` groups (a sample of a group out of range
    /// is a bug, and panics).
    pub fn new(groups: usize, visit: &'a Visit<'a>) -> Self {
        let mut tops = vec![0u32; groups * TOP];
        let mut counts = vec![0usize; groups];
        visit(&mut |g, v| {
            if !v.is_nan() {
                tops[g * TOP + top(key(v))] += 1;
                counts[g] += 1;
            }
        });
        Self {
            visit,
            tops,
            counts,
        }
    }

    /// The number of samples (not `NaN`) in `group`.
    pub fn count(&self, group: usize) -> usize {
        self.counts[group]
    }

    /// The sample at each wanted `(group, rank)`, in the order asked: `rank` is 0-based in the
    /// group's ascending order and below its [`count`](Self::count) (else this panics: the
    /// caller computes ranks from the count). Exact: the value a sorted copy holds there.
    pub fn ranks(&self, wanted: &[(usize, usize)]) -> Vec<f32> {
        if wanted.is_empty() {
            return Vec::new();
        }
        // level 1: each rank's top prefix, from the counts taken at construction
        let at_top: Vec<(usize, usize)> = wanted
            .iter()
            .map(|&(g, r)| {
                assert!(r < self.counts[g], "rank {r} of {}", self.counts[g]);
                let (t, rest) = locate(&self.tops[g * TOP..(g + 1) * TOP], r);
                (g * TOP + t, rest)
            })
            .collect();
        // level 2: count the middle bits of the samples under each wanted top prefix
        let mut slot_of_top = std::collections::HashMap::new();
        for &(t, _) in &at_top {
            let n = slot_of_top.len() as u32;
            slot_of_top.entry(t).or_insert(n);
        }
        let mut top_slots = vec![NONE; self.tops.len()];
        for (&t, &s) in &slot_of_top {
            top_slots[t] = s;
        }
        let mut mids = vec![0u32; slot_of_top.len() * MID];
        (self.visit)(&mut |g, v| {
            if v.is_nan() {
                return;
            }
            let k = key(v);
            let s = top_slots[g * TOP + top(k)];
            if s != NONE {
                mids[s as usize * MID + mid(k)] += 1;
            }
        });
        let at_mid: Vec<(usize, usize)> = at_top
            .iter()
            .map(|&(t, r)| {
                let s = slot_of_top[&t] as usize;
                let (m, rest) = locate(&mids[s * MID..(s + 1) * MID], r);
                (s * MID + m, rest)
            })
            .collect();
        // level 3: count the low bits under each wanted (top, middle) prefix
        let mut slot_of_mid = std::collections::HashMap::new();
        for &(m, _) in &at_mid {
            let n = slot_of_mid.len() as u32;
            slot_of_mid.entry(m).or_insert(n);
        }
        let mut mid_slots = vec![NONE; mids.len()];
        for (&m, &s) in &slot_of_mid {
            mid_slots[m] = s;
        }
        let mut lows = vec![0u32; slot_of_mid.len() * LOW];
        (self.visit)(&mut |g, v| {
            if v.is_nan() {
                return;
            }
            let k = key(v);
            let s = top_slots[g * TOP + top(k)];
            if s == NONE {
                return;
            }
            let s = mid_slots[s as usize * MID + mid(k)];
            if s != NONE {
                lows[s as usize * LOW + low(k)] += 1;
            }
        });
        at_top
            .iter()
            .zip(&at_mid)
            .map(|(&(t, _), &(m, r))| {
                let s = slot_of_mid[&m] as usize;
                let (l, _) = locate(&lows[s * LOW..(s + 1) * LOW], r);
                let t = (t % TOP) as u32;
                let m = (m % MID) as u32;
                value((t << (MID_BITS + LOW_BITS)) | (m << LOW_BITS) | l as u32)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every rank of every group, by counting and by sorting copies.
    fn both(groups: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
        let visit = |sink: &mut dyn FnMut(usize, f32)| {
            for (g, vs) in groups.iter().enumerate() {
                for &v in vs {
                    sink(g, v);
                }
            }
        };
        let stats = OrderStatistics::new(groups.len(), &visit);
        let mut wanted = Vec::new();
        let mut sorted_all = Vec::new();
        for (g, vs) in groups.iter().enumerate() {
            let mut sorted: Vec<f32> = vs.iter().copied().filter(|v| !v.is_nan()).collect();
            sorted.sort_unstable_by(f32::total_cmp);
            assert_eq!(stats.count(g), sorted.len());
            wanted.extend((0..sorted.len()).map(|r| (g, r)));
            sorted_all.extend(sorted);
        }
        (stats.ranks(&wanted), sorted_all)
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn keys_keep_total_order_and_round_trip() {
        let mut vs = vec![
            f32::NEG_INFINITY,
            -3.5,
            -f32::MIN_POSITIVE,
            -0.0,
            0.0,
            f32::MIN_POSITIVE / 2.0,
            1e-7,
            0.25,
            1.0,
            3.0e38,
            f32::INFINITY,
        ];
        for w in vs.windows(2) {
            assert!(key(w[0]) < key(w[1]), "{} < {}", w[0], w[1]);
        }
        vs.iter()
            .for_each(|&v| assert_eq!(value(key(v)).to_bits(), v.to_bits()));
        vs.reverse();
        vs.sort_unstable_by_key(|v| key(*v));
        assert_eq!(vs[0], f32::NEG_INFINITY);
    }

    #[test]
    fn every_rank_equals_the_sorted_copy_s() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // latencies: spread, clustered in one top prefix, duplicated, signed zeros, NaN gaps
        let spread: Vec<f32> = (0..3000).map(|_| rng.random_range(0.0..30.0)).collect();
        let tight: Vec<f32> = (0..3000)
            .map(|_| 0.5 + rng.random_range(0.0..1e-4f32))
            .collect();
        let dups: Vec<f32> = (0..500).map(|i| [0.1, 0.2, 0.2][i % 3]).collect();
        let odd = vec![f32::NAN, -0.0, 0.0, f32::INFINITY, -1.0, f32::NAN, 1e-30];
        let (got, want) = both(&[spread, tight, dups, odd, Vec::new()]);
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn a_few_ranks_of_a_large_group_match_nearest_rank() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let vs: Vec<f32> = (0..200_000)
            .map(|_| rng.random_range(0.01f32..2.0).powi(3))
            .collect();
        let visit = |sink: &mut dyn FnMut(usize, f32)| vs.iter().for_each(|&v| sink(0, v));
        let stats = OrderStatistics::new(1, &visit);
        let qs = [0.5, 0.9, 0.95, 0.99, 1.0];
        let wanted: Vec<_> = qs
            .iter()
            .map(|&q| (0, crate::stats::nearest_rank(q, vs.len()) - 1))
            .collect();
        let mut sorted = vs.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        let want: Vec<f32> = qs
            .iter()
            .map(|&q| crate::stats::percentile_sorted(&sorted, q).unwrap() as f32)
            .collect();
        assert_eq!(bits(&stats.ranks(&wanted)), bits(&want));
    }

    #[test]
    #[should_panic(expected = "rank 3 of 3")]
    fn a_rank_past_the_count_is_a_bug() {
        let vs = [1.0f32, 2.0, f32::NAN, 3.0];
        let visit = |sink: &mut dyn FnMut(usize, f32)| vs.iter().for_each(|&v| sink(0, v));
        OrderStatistics::new(1, &visit).ranks(&[(0, 3)]);
    }
}
