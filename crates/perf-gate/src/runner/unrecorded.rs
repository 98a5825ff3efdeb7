//! Requests whose task ended without sending its record, told apart by cause: a task that
//! panicked (`lost`) or one cut off after the drain grace (`abandoned`), each counted where
//! its request counts (its tally, its mix member, its probe).
//!
//! Every request's task carries a [`Witness`]. A task that panics is dropped by the runtime at
//! once, its witness with it, before any abort; a task abandoned after the grace period is
//! dropped after [`Unrecorded::abort`]. So a witness dropped without its record sent, while no
//! abort is under way, counts a panic exactly where it happened (the join error of a panicked
//! task says nothing about its request).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Where a request counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// A generation request: its tally (0 candidate, 1 baseline, 2 unmeasured) and, for a
    /// measured request of a mix, its member.
    Tally {
        /// The tally's index.
        tally: usize,
        /// The mix member, when it counts in one.
        member: Option<usize>,
    },
    /// A GET task of a task mix (0 health, 1 models).
    Probe(usize),
}

/// Panicked tasks, counted by place.
#[derive(Debug)]
pub(super) struct Unrecorded {
    aborting: AtomicBool,
    tallies: [AtomicU64; 3],
    members: Vec<AtomicU64>,
    probes: [AtomicU64; 2],
}

impl Unrecorded {
    /// No task lost yet, for a run of `members` mix members (0 without a mix).
    pub(super) fn new(members: usize) -> Arc<Self> {
        Arc::new(Unrecorded {
            aborting: AtomicBool::new(false),
            tallies: Default::default(),
            members: (0..members).map(|_| AtomicU64::new(0)).collect(),
            probes: Default::default(),
        })
    }

    /// A witness for a request counting at `place`.
    pub(super) fn witness(self: &Arc<Self>, place: Place) -> Witness {
        Witness {
            unrecorded: self.clone(),
            place,
            sent: false,
        }
    }

    /// The tasks still running are about to be aborted: their witnesses count nothing.
    pub(super) fn abort(&self) {
        self.aborting.store(true, Ordering::SeqCst);
    }

    /// Tasks of tally `t` that panicked.
    pub(super) fn tally(&self, t: usize) -> u64 {
        self.tallies[t].load(Ordering::SeqCst)
    }

    /// Measured tasks of mix member `m` that panicked.
    pub(super) fn member(&self, m: usize) -> u64 {
        self.members.get(m).map_or(0, |n| n.load(Ordering::SeqCst))
    }

    /// Probe tasks of kind `p` that panicked.
    pub(super) fn probe(&self, p: usize) -> u64 {
        self.probes[p].load(Ordering::SeqCst)
    }
}

/// Carried by a request's task; counts the task as panicked if dropped before [`Witness::sent`].
#[derive(Debug)]
pub(super) struct Witness {
    unrecorded: Arc<Unrecorded>,
    place: Place,
    sent: bool,
}

impl Witness {
    /// The request's record went to the aggregator.
    pub(super) fn sent(mut self) {
        self.sent = true;
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let u = &self.unrecorded;
        if self.sent || u.aborting.load(Ordering::SeqCst) {
            return;
        }
        match self.place {
            Place::Tally { tally, member } => {
                u.tallies[tally].fetch_add(1, Ordering::SeqCst);
                if let Some(n) = member.and_then(|m| u.members.get(m)) {
                    n.fetch_add(1, Ordering::SeqCst);
                }
            }
            Place::Probe(p) => {
                u.probes[p].fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// The `(lost, abandoned)` split of `missing` requests of which `panicked` panicked (a count of
/// panics never makes more failures than requests missing).
pub(super) fn split(missing: u64, panicked: u64) -> (u64, u64) {
    let lost = panicked.min(missing);
    (lost, missing - lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_witness_dropped_unsent_counts_where_its_request_counts_unless_aborting() {
        let u = Unrecorded::new(2);
        u.witness(Place::Tally {
            tally: 0,
            member: None,
        })
        .sent();
        drop(u.witness(Place::Tally {
            tally: 1,
            member: None,
        }));
        drop(u.witness(Place::Tally {
            tally: 0,
            member: Some(1),
        }));
        drop(u.witness(Place::Probe(1)));
        assert_eq!([u.tally(0), u.tally(1), u.tally(2)], [1, 1, 0]);
        assert_eq!([u.member(0), u.member(1)], [0, 1]);
        assert_eq!([u.probe(0), u.probe(1)], [0, 1]);
        u.abort();
        drop(u.witness(Place::Tally {
            tally: 2,
            member: None,
        }));
        assert_eq!(u.tally(2), 0);
        assert_eq!(split(3, 1), (1, 2));
        assert_eq!(split(1, 5), (1, 0));
    }
}
