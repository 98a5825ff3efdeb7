//! `vllm:lora_requests_info`: which adapters are running or waiting, as label strings.
//!
//! Like vLLM, one series is kept per label set ever seen; its value is the unix time of
//! the last moment that label set described the engine. Nothing is exposed before the
//! first LoRA request.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoraSeries {
    pub(crate) running: String,
    pub(crate) waiting: String,
    pub(crate) timestamp: f64,
}

#[derive(Debug, Default)]
struct State {
    running: Vec<u32>,
    waiting: Vec<u32>,
    series: Vec<LoraSeries>,
}

/// Per-adapter running/waiting counts and the series history; one short lock per change.
#[derive(Debug)]
pub(crate) struct LoraTracker {
    names: Vec<String>,
    state: Mutex<State>,
}

/// A change in one adapter's state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LoraEvent {
    /// A request for the adapter arrived and waits for a slot.
    Enqueued,
    /// It left the queue without running (client went away).
    LeftQueue,
    /// It got a running slot.
    Admitted,
    /// It stopped running.
    Finished,
}

impl LoraTracker {
    pub(crate) fn new(names: Vec<String>) -> Self {
        let n = names.len();
        Self {
            names,
            state: Mutex::new(State {
                running: vec![0; n],
                waiting: vec![0; n],
                series: Vec::new(),
            }),
        }
    }

    pub(crate) fn record(&self, adapter: usize, event: LoraEvent) {
        // A poisoned lock only means another request panicked mid-update: keep counting.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        let (Some(running), Some(waiting)) =
            (st.running.get_mut(adapter), st.waiting.get_mut(adapter))
        else {
            return;
        };
        match event {
            LoraEvent::Enqueued => *waiting += 1,
            LoraEvent::LeftQueue => *waiting = waiting.saturating_sub(1),
            LoraEvent::Admitted => {
                *waiting = waiting.saturating_sub(1);
                *running += 1;
            }
            LoraEvent::Finished => *running = running.saturating_sub(1),
        }
        let running = self.join(&st.running);
        let waiting = self.join(&st.waiting);
        let timestamp = unix_now();
        match st
            .series
            .iter_mut()
            .find(|s| s.running == running && s.waiting == waiting)
        {
            Some(s) => s.timestamp = timestamp,
            None => st.series.push(LoraSeries {
                running,
                waiting,
                timestamp,
            }),
        }
    }

    pub(crate) fn series(&self) -> Vec<LoraSeries> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .series
            .clone()
    }

    fn join(&self, counts: &[u32]) -> String {
        let mut out = String::new();
        for (name, _) in self.names.iter().zip(counts).filter(|(_, c)| **c > 0) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(name);
        }
        out
    }
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_series_per_label_set() {
        let t = LoraTracker::new(vec!["a".into(), "b".into()]);
        assert!(t.series().is_empty());
        t.record(0, LoraEvent::Enqueued);
        t.record(1, LoraEvent::Enqueued);
        t.record(0, LoraEvent::Admitted);
        t.record(0, LoraEvent::Finished);
        t.record(1, LoraEvent::LeftQueue);
        let got: Vec<(String, String)> = t
            .series()
            .into_iter()
            .map(|s| (s.running, s.waiting))
            .collect();
        let want = [("", "a"), ("", "a,b"), ("a", "b"), ("", "b"), ("", "")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(r, w)| (r.to_string(), w.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
