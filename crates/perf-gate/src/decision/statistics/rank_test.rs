//! The Mann–Whitney U test (Wilcoxon rank-sum), reported for information beside the intervals,
//! as Kayenta does: does one arm tend to be slower than the other at all, whatever the tail?

use statrs::distribution::{ContinuousCDF, Normal};

/// The U test of `a` against `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// `U` of `a`: pairs where `a` is larger, plus half the ties.
    pub u: f64,
    /// `U / (n_a * n_b)`: the probability that a value of `a` exceeds one of `b` (ties half).
    pub prob_a_greater: f64,
    /// The normal approximation's z score (tie-corrected, no continuity correction).
    pub z: f64,
    /// Two-sided p-value of the normal approximation.
    pub p_value: f64,
}

/// The U test of `a` against `b` (midranks for ties); `None` when either is empty or a value
/// is NaN.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&v| (v, true))
        .chain(b.iter().map(|&v| (v, false)))
        .collect();
    all.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let (mut rank_sum_a, mut tie_term) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        // ranks i+1 ..= j+1 share their mean
        let midrank = (i + j + 2) as f64 / 2.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_a += midrank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let u = rank_sum_a - na * (na + 1.0) / 2.0;
    let mean = na * nb / 2.0;
    let nf = n as f64;
    let var = na * nb / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)).max(1.0));
    let (z, p_value) = if var > 0.0 {
        let z = (u - mean) / var.sqrt();
        let normal = Normal::standard();
        (z, (2.0 * (1.0 - normal.cdf(z.abs()))).min(1.0))
    } else {
        (0.0, 1.0)
    };
    Some(MannWhitney {
        u,
        prob_a_greater: u / (na * nb),
        z,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_counts_pairs_with_ties_as_halves() {
        let m = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(m.u, 0.0);
        assert_eq!(m.prob_a_greater, 0.0);
        // 1,2,2 against 2,3: the pairs a > b are none, the ties (2,2) twice: U = 1
        let m = mann_whitney(&[1.0, 2.0, 2.0], &[2.0, 3.0]).unwrap();
        assert_eq!(m.u, 1.0);
        let m = mann_whitney(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m.u, 9.0);
        assert!(m.z > 0.0);
    }

    #[test]
    fn the_normal_approximation_matches_a_worked_example() {
        // two samples of 10 (no ties): a = 6.5..=15.5 against b = 1..=10. U_a = the b values
        // below each a: 6 + 7 + 8 + 9 + 6 * 10 = 90, also counted directly:
        let a: Vec<f64> = (1..=10).map(|v| f64::from(v) + 5.5).collect();
        let b: Vec<f64> = (1..=10).map(f64::from).collect();
        let direct: f64 = a
            .iter()
            .map(|x| b.iter().filter(|y| *y < x).count() as f64)
            .sum();
        let m = mann_whitney(&a, &b).unwrap();
        assert_eq!(m.u, direct);
        assert_eq!(m.u, 90.0);
        // mean 50, sd sqrt(10 * 10 * 21 / 12) = 13.2288: z = 40 / 13.2288 = 3.0237,
        // p = erfc(3.0237 / sqrt 2) = 0.002497
        assert!((m.z - 3.0237).abs() < 1e-4, "{}", m.z);
        assert!((m.p_value - 0.002497).abs() < 1e-6, "{}", m.p_value);
    }

    #[test]
    fn identical_samples_are_no_evidence() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let m = mann_whitney(&a, &a).unwrap();
        assert_eq!(m.prob_a_greater, 0.5);
        assert!(m.z.abs() < 1e-12 && (m.p_value - 1.0).abs() < 1e-12);
        assert_eq!(mann_whitney(&[], &a), None);
        assert_eq!(mann_whitney(&[f64::NAN], &a), None);
    }
}
