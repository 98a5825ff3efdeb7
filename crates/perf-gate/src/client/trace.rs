//! W3C Trace Context (`traceparent`) for each generation request, so a slow request in
//! `requests.jsonl` can be found in vLLM's own OpenTelemetry traces (vLLM continues the trace
//! it is sent when started with `--otlp-traces-endpoint`).
//!
//! The value is `00-<32 hex trace id>-<16 hex span id>-01` (version 00, sampled): a fresh
//! trace per request. The ids are a 64-bit mix (SplitMix64's finaliser) of a random per-run
//! base and the request's number in the run, so they are unique within a run, unrelated
//! between runs, never all zero (invalid per the spec), and cost no allocation besides the
//! 55-byte value itself.

use std::sync::atomic::{AtomicU64, Ordering};

/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// Hands out one `traceparent` per request of a run.
#[derive(Debug)]
pub struct TraceIds {
    base: [u64; 3],
    next: AtomicU64,
}

impl TraceIds {
    /// Ids from a fresh random base.
    pub fn random() -> Self {
        Self::from_base([rand::random(), rand::random(), rand::random()])
    }

    /// Ids from a given base (tests).
    pub fn from_base(base: [u64; 3]) -> Self {
        TraceIds {
            base,
            next: AtomicU64::new(0),
        }
    }

    /// The next request's `traceparent`.
    pub fn next(&self) -> TraceParent {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let word = |i: usize| nonzero(mix(self.base[i] ^ mix(n.wrapping_add(i as u64))));
        TraceParent::new([word(0), word(1)], word(2))
    }
}

/// One `traceparent` value, as ASCII.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent([u8; TRACEPARENT_LEN]);

impl TraceParent {
    /// `00-{trace}-{span}-01`.
    pub fn new(trace: [u64; 2], span: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b = [b'-'; TRACEPARENT_LEN];
        b[..2].copy_from_slice(b"00");
        let mut put = |at: usize, v: u64| {
            for i in 0..16 {
                b[at + i] = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
            }
        };
        put(3, trace[0]);
        put(19, trace[1]);
        put(36, span);
        b[53..].copy_from_slice(b"01");
        TraceParent(b)
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("invariant: hex digits and dashes are ASCII")
    }
}

impl std::fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SplitMix64's finaliser: a bijection of u64 that scatters consecutive inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn nonzero(v: u64) -> u64 {
    if v == 0 { 1 } else { v }
}

/// Whether `v` is a valid version-00 `traceparent` (lowercase hex, ids not all zero).
pub fn is_valid(v: &str) -> bool {
    let b = v.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b[r.clone()]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            && b[r].iter().any(|&c| c != b'0')
    };
    b.len() == TRACEPARENT_LEN
        && &b[..3] == b"00-"
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(3..35)
        && hex(36..52)
        && b[53..].iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_w3c_version_00_sampled() {
        let t = TraceParent::new(
            [0x4bf9_2f35_77b3_4da6, 0xa3ce_929d_0e0e_4736],
            0x00f0_67aa_0ba9_02b7,
        );
        // the spec's own example
        assert_eq!(
            t.as_str(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert!(is_valid(t.as_str()));
        assert!(!is_valid(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
    }

    #[test]
    fn ids_are_valid_and_unique_within_a_run_and_differ_between_runs() {
        let ids = TraceIds::from_base([0, 0, 0]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let t = ids.next();
            assert!(is_valid(t.as_str()), "{t:?}");
            assert!(seen.insert(t.as_str()[3..35].to_string()), "{t:?}");
        }
        let (a, b) = (TraceIds::random().next(), TraceIds::random().next());
        assert_ne!(a, b);
    }
}
