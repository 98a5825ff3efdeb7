//! Rules: which requests a fault applies to (method, path, body), how often (every time, the
//! first N, or with a seeded probability), and what happens to them ([`Action`]).

use std::ops::Range;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the proxy does with a request a [`Rule`] applies to. A request no rule applies to is
/// forwarded as it came, and its answer sent back at once.
///
/// Whatever the client does meanwhile, a request the action forwards *is* forwarded: a client
/// that gives up (times out, closes its connection) does not take back a write already on its
/// way, as on a real network.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Waits `before_forward` before sending the request upstream (the call arrives late), then
    /// waits `after_response` between the upstream's answer and answering the client (the write
    /// has landed but the client hears of it late). See [`Action::delay_request`] and
    /// [`Action::delay_response`].
    Delay {
        /// Wait before forwarding the request.
        before_forward: Duration,
        /// Wait between the upstream's answer and the client's.
        after_response: Duration,
    },
    /// As [`Action::Delay`] before forwarding, by a duration drawn uniformly from the range
    /// with the rule's seeded generator (an empty range means its start). The log records the
    /// drawn delay as an [`Action::Delay`].
    DelayRange(Range<Duration>),
    /// Forwards the request (the write lands upstream), then closes the client's connection
    /// without answering: the client sees the connection closed before a response.
    ForwardThenDrop,
    /// Holds the request for `hold` (longer than the client's own timeout, so the client has
    /// given up), forwards it anyway, and closes the client's connection without answering, if
    /// it is still open: a write that lands after the client gave up, and never answered.
    HoldThenForward {
        /// How long the request is held before it is forwarded.
        hold: Duration,
    },
    /// Answers `status` with `body` without forwarding anything (`application/json` when the
    /// body is JSON, else `text/plain`), e.g. a 503 from the server or a 502 from a proxy.
    Respond {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
}

impl Action {
    /// [`Action::Delay`] of the request only: it reaches the upstream `d` late.
    pub fn delay_request(d: Duration) -> Action {
        Action::Delay {
            before_forward: d,
            after_response: Duration::ZERO,
        }
    }

    /// [`Action::Delay`] of the response only: the upstream has answered `d` before the client
    /// hears of it.
    pub fn delay_response(d: Duration) -> Action {
        Action::Delay {
            before_forward: Duration::ZERO,
            after_response: d,
        }
    }
}

/// Which paths a [`Rule`] matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// The path without the query, exactly (`/api/2.0/mlflow/registered-models/alias`).
    Exact(String),
    /// A substring of the path with its query (`alias?name=m`).
    Contains(String),
}

/// When a matching request gets the rule's action.
#[derive(Clone, Debug, PartialEq)]
pub enum Times {
    /// Every matching request.
    Every,
    /// The first N matching requests; later ones fall through to the next rules.
    First(usize),
    /// Each matching request with this probability (0.0 to 1.0), drawn from the rule's
    /// generator (seeded from the proxy's seed and the rule's index, so a run repeats, for
    /// requests arriving in the same order); a request not drawn falls through to the next
    /// rules.
    Probability(f64),
}

/// A fault: which requests ([`Rule::method`], [`Rule::path`], [`Rule::path_contains`],
/// [`Rule::body_contains`]), how often ([`Rule::first`], [`Rule::with_probability`]; every
/// time by default) and what is done to them. The first rule that applies to a request is the
/// one used.
///
/// ```
/// use std::time::Duration;
/// use test_support::fault_proxy::{Action, Rule};
///
/// // the first claim of `perf-passed` lands 5 s late
/// let rule = Rule::new(Action::delay_request(Duration::from_secs(5)))
///     .method("POST")
///     .path("/api/2.0/mlflow/registered-models/alias")
///     .body_contains(r#""alias":"perf-passed""#)
///     .first(1);
/// # let _ = rule;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    method: Option<String>,
    path: PathMatch,
    body_contains: Option<String>,
    times: Times,
    action: Action,
}

impl Rule {
    /// A rule that gives `action` to every request; narrow it with the other methods.
    pub fn new(action: Action) -> Rule {
        Rule {
            method: None,
            path: PathMatch::Any,
            body_contains: None,
            times: Times::Every,
            action,
        }
    }

    /// Only requests with this method (any case).
    pub fn method(mut self, method: &str) -> Rule {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path, without the query, is `path`.
    pub fn path(mut self, path: &str) -> Rule {
        self.path = PathMatch::Exact(path.to_string());
        self
    }

    /// Only requests whose path with its query contains `part`.
    pub fn path_contains(mut self, part: &str) -> Rule {
        self.path = PathMatch::Contains(part.to_string());
        self
    }

    /// Only requests whose path matches `path` ([`Rule::path`] and [`Rule::path_contains`]
    /// are the usual ways).
    pub fn matching_path(mut self, path: PathMatch) -> Rule {
        self.path = path;
        self
    }

    /// Only requests whose body contains `part`, byte for byte (`"alias":"perf-passed"`, as
    /// serde_json writes it, without spaces).
    pub fn body_contains(mut self, part: &str) -> Rule {
        self.body_contains = Some(part.to_string());
        self
    }

    /// Only the first `n` requests that match (and are not taken by an earlier rule).
    pub fn first(mut self, n: usize) -> Rule {
        self.times = Times::First(n);
        self
    }

    /// Each matching request with probability `p`, drawn from the rule's seeded generator.
    ///
    /// # Panics
    /// If `p` is not within 0.0 to 1.0.
    pub fn with_probability(mut self, p: f64) -> Rule {
        assert!((0.0..=1.0).contains(&p), "a probability, not {p}");
        self.times = Times::Probability(p);
        self
    }

    /// When matching requests get the action ([`Rule::first`], [`Rule::with_probability`]
    /// and [`Rule::every`] are the usual ways).
    ///
    /// # Panics
    /// If a probability is not within 0.0 to 1.0.
    pub fn times(self, times: Times) -> Rule {
        match times {
            Times::Every => self.every(),
            Times::First(n) => self.first(n),
            Times::Probability(p) => self.with_probability(p),
        }
    }

    /// Every matching request (the default).
    pub fn every(mut self) -> Rule {
        self.times = Times::Every;
        self
    }

    /// The action it gives.
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// Whether the request is one the rule is about (before counting or drawing).
    fn matches(&self, method: &str, path_and_query: &str, body: &[u8]) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => path_and_query.split('?').next() == Some(p.as_str()),
            PathMatch::Contains(p) => path_and_query.contains(p.as_str()),
        };
        let body_ok = self
            .body_contains
            .as_deref()
            .is_none_or(|part| contains(body, part.as_bytes()));
        method_ok && path_ok && body_ok
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The rules with their state: how often each has applied, and each one's generator.
#[derive(Debug)]
pub(crate) struct RuleSet {
    rules: Vec<(Rule, usize, StdRng)>,
}

impl RuleSet {
    /// `rules` in order, rule `i`'s generator seeded with `seed + i`.
    pub(crate) fn new(rules: Vec<Rule>, seed: u64) -> RuleSet {
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| (r, 0, StdRng::seed_from_u64(seed.wrapping_add(i as u64))))
            .collect();
        RuleSet { rules }
    }

    /// The first rule that applies to this request, counted as applied, and its action (a
    /// [`Action::DelayRange`] resolved to the drawn [`Action::Delay`]).
    pub(crate) fn pick(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Option<(usize, Action)> {
        for (i, (rule, applied, rng)) in self.rules.iter_mut().enumerate() {
            if !rule.matches(method, path_and_query, body) {
                continue;
            }
            let fires = match rule.times {
                Times::Every => true,
                Times::First(n) => *applied < n,
                Times::Probability(p) => rng.random_bool(p),
            };
            if !fires {
                continue;
            }
            *applied += 1;
            let action = match &rule.action {
                Action::DelayRange(range) => Action::delay_request(if range.is_empty() {
                    range.start
                } else {
                    rng.random_range(range.clone())
                }),
                other => other.clone(),
            };
            return Some((i, action));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: &str = "/api/2.0/mlflow/registered-models/alias";
    const CLAIM: &[u8] = br#"{"name":"m","alias":"perf-passed","version":"3"}"#;

    fn drop_claim() -> Rule {
        Rule::new(Action::ForwardThenDrop)
            .method("post")
            .path(ALIAS)
            .body_contains(r#""alias":"perf-passed""#)
    }

    #[test]
    fn method_path_and_body_must_all_match() {
        let r = drop_claim();
        assert!(r.matches("POST", ALIAS, CLAIM));
        assert!(!r.matches("GET", ALIAS, CLAIM));
        assert!(!r.matches("DELETE", ALIAS, CLAIM));
        // exact path: the query is ignored, a longer path is not the same
        assert!(r.matches("POST", &format!("{ALIAS}?x=1"), CLAIM));
        assert!(!r.matches("POST", &format!("{ALIAS}es"), CLAIM));
        assert!(!r.matches("POST", "/api/2.0/mlflow/runs/create", CLAIM));
        let other = br#"{"name":"m","alias":"perf-failed","version":"3"}"#;
        assert!(!r.matches("POST", ALIAS, other));
        assert!(!r.matches("POST", ALIAS, b""));
    }

    #[test]
    fn contains_looks_into_the_query_and_any_matches_all() {
        let r = Rule::new(Action::ForwardThenDrop).path_contains("alias?name=m");
        assert!(r.matches("GET", "/x/alias?name=m&alias=a", b""));
        assert!(!r.matches("GET", "/x/alias", b""));
        let any = Rule::new(Action::ForwardThenDrop);
        assert!(any.matches("PATCH", "/", b"anything"));
    }

    #[test]
    fn first_n_then_fall_through_to_the_next_rule() {
        let respond = Action::Respond {
            status: 503,
            body: String::new(),
        };
        let mut set = RuleSet::new(
            vec![
                drop_claim().first(2),
                Rule::new(respond.clone()).method("POST"),
            ],
            0,
        );
        let picks: Vec<_> = (0..4)
            .map(|_| set.pick("POST", ALIAS, CLAIM).map(|(i, _)| i))
            .collect();
        assert_eq!(picks, [Some(0), Some(0), Some(1), Some(1)]);
        assert_eq!(set.pick("GET", ALIAS, CLAIM), None);
        // a request the first rule does not match does not use up its count
        let mut set = RuleSet::new(vec![drop_claim().first(1)], 0);
        assert_eq!(set.pick("POST", ALIAS, b"{}"), None);
        assert_eq!(
            set.pick("POST", ALIAS, CLAIM),
            Some((0, Action::ForwardThenDrop))
        );
        assert_eq!(set.pick("POST", ALIAS, CLAIM), None);
    }

    #[test]
    fn probability_is_seeded_and_delay_ranges_resolve_within_bounds() {
        let draw = |seed| {
            let mut set = RuleSet::new(vec![drop_claim().with_probability(0.5)], seed);
            (0..64)
                .map(|_| set.pick("POST", ALIAS, CLAIM).is_some())
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7), "same seed, same draws");
        assert_ne!(a, draw(8), "another seed, other draws");
        let hits = a.iter().filter(|h| **h).count();
        assert!((16..=48).contains(&hits), "{hits} of 64 at p = 0.5");

        let range = Duration::from_millis(3000)..Duration::from_millis(6000);
        let mut set = RuleSet::new(vec![Rule::new(Action::DelayRange(range.clone()))], 1);
        for _ in 0..32 {
            match set.pick("GET", "/", b"") {
                Some((
                    0,
                    Action::Delay {
                        before_forward,
                        after_response: Duration::ZERO,
                    },
                )) => assert!(range.contains(&before_forward), "{before_forward:?}"),
                other => panic!("not a resolved delay: {other:?}"),
            }
        }
        let empty = Duration::from_secs(1)..Duration::from_secs(1);
        let mut set = RuleSet::new(vec![Rule::new(Action::DelayRange(empty))], 1);
        assert_eq!(
            set.pick("GET", "/", b""),
            Some((0, Action::delay_request(Duration::from_secs(1))))
        );
    }

    #[test]
    fn rules_built_from_data_are_the_same_rules() {
        let built = Rule::new(Action::ForwardThenDrop)
            .matching_path(PathMatch::Exact(ALIAS.into()))
            .times(Times::First(2));
        assert_eq!(
            built,
            Rule::new(Action::ForwardThenDrop).path(ALIAS).first(2)
        );
        let coin = Rule::new(Action::ForwardThenDrop).times(Times::Probability(0.25));
        assert_eq!(
            coin,
            Rule::new(Action::ForwardThenDrop).with_probability(0.25)
        );
    }

    #[test]
    #[should_panic(expected = "a probability")]
    fn a_probability_above_one_is_refused() {
        let _ = Rule::new(Action::ForwardThenDrop).with_probability(1.5);
    }
}
