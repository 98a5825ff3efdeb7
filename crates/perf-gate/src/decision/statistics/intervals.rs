//! Intervals for proportions: Wilson's score interval for one success rate and Newcombe's
//! hybrid score interval (his method 10) for the difference of two.

/// Wilson's score interval for `successes` of `n` at the two-sided normal quantile `z`
/// (`None` when `n` is 0). Stays inside [0, 1] and behaves near 0 and 1, where the plain
/// normal interval does not.
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let (x, n) = (successes as f64, n as f64);
    let z2 = z * z;
    let center = (x + z2 / 2.0) / (n + z2);
    let half = z / (n + z2) * (x * (n - x) / n + z2 / 4.0).sqrt();
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// Newcombe's hybrid score interval for `p1 - p2` (`x1/n1 - x2/n2`) at quantile `z`: built from
/// the two Wilson intervals, it keeps their good coverage for rates near 1, where a gate's
/// success rates live.
pub fn newcombe_difference(x1: u64, n1: u64, x2: u64, n2: u64, z: f64) -> Option<(f64, f64)> {
    let (l1, u1) = wilson(x1, n1, z)?;
    let (l2, u2) = wilson(x2, n2, z)?;
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let d = p1 - p2;
    let lo = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let hi = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z95: f64 = 1.959_963_984_540_054;

    fn near(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 5e-5 && (a.1 - b.1).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_newcombe_s_worked_examples() {
        // Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I
        assert!(near(wilson(81, 263, Z95).unwrap(), (0.2553, 0.3662)));
        assert!(near(wilson(15, 148, Z95).unwrap(), (0.0624, 0.1605)));
        assert!(near(wilson(0, 20, Z95).unwrap(), (0.0, 0.1611)));
        assert!(near(wilson(1, 29, Z95).unwrap(), (0.0061, 0.1718)));
        assert_eq!(wilson(0, 0, Z95), None);
    }

    #[test]
    fn newcombe_matches_the_worked_examples_of_method_10() {
        // Newcombe (1998), "Interval estimation for the difference between independent
        // proportions", Table II, method 10
        assert!(near(
            newcombe_difference(56, 70, 48, 80, Z95).unwrap(),
            (0.0524, 0.3339)
        ));
        assert!(near(
            newcombe_difference(9, 10, 3, 10, Z95).unwrap(),
            (0.1705, 0.8090)
        ));
        assert!(near(
            newcombe_difference(6, 7, 2, 7, Z95).unwrap(),
            (0.0582, 0.8062)
        ));
        assert!(near(
            newcombe_difference(5, 56, 0, 29, Z95).unwrap(),
            (-0.0381, 0.1926)
        ));
        // a rate of 1 against 1: the interval still has width (never "exactly equal")
        let (lo, hi) = newcombe_difference(100, 100, 100, 100, Z95).unwrap();
        assert!(lo < 0.0 && hi > 0.0 && lo > -0.05, "{lo} {hi}");
    }
}
