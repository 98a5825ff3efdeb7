//! The W3C `traceparent` header of each generation request received, kept for tests (the
//! real vLLM continues that trace in its OpenTelemetry spans): the most recent
//! [`TRACE_LOG_CAP`], read with [`crate::SimHandle::traceparents`].

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::HeaderMap;

/// Most `traceparent` values kept (the oldest go first).
pub const TRACE_LOG_CAP: usize = 100_000;

/// The `traceparent`s seen, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct TraceLog(Mutex<VecDeque<String>>);

impl TraceLog {
    /// Keeps the request's `traceparent`, if it has one.
    pub(crate) fn record(&self, headers: &HeaderMap) {
        let Some(v) = headers.get("traceparent").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == TRACE_LOG_CAP {
            log.pop_front();
        }
        log.push_back(v.to_string());
    }

    /// Every value kept, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<String> {
        let log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_header_when_present() {
        let log = TraceLog::default();
        let mut h = HeaderMap::new();
        log.record(&h);
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        log.record(&h);
        assert_eq!(
            log.snapshot(),
            ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
        );
    }
}
