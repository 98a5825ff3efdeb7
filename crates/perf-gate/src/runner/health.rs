//! Is the load generator itself the bottleneck? Two signals, measured during the load:
//!
//! - **Event-loop lag**: a task asks to wake every 50 ms and records how late it wakes. A client
//!   whose runtime is saturated wakes late, and then its chunk timestamps are late too.
//! - **CPU**: the process's user + system time over the load (`getrusage(RUSAGE_SELF)`, in
//!   microseconds), as a percentage of one core.
//!
//! The run is flagged `saturated` when the lag's P99 exceeds [`LAG_P99_LIMIT`] or the CPU use
//! exceeds 80 % of the available cores; the results then carry a warning that client timings may
//! be inflated.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::results::GeneratorHealth;
use crate::stats::Samples;

/// How often the lag probe wakes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Event-loop lag P99 above which the generator counts as saturated.
pub const LAG_P99_LIMIT: Duration = Duration::from_millis(20);

/// Process CPU seconds so far (user + system, every thread), if the platform tells.
pub fn process_cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(usage.user_time()) + secs(usage.system_time()))
}

/// A running lag probe; [`LagProbe::finish`] stops it and returns the lags seen.
pub struct LagProbe {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Samples>,
    cpu_start: Option<f64>,
    started: Instant,
}

impl LagProbe {
    /// Starts the probe on the current runtime.
    pub fn start() -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut lags = Samples::new();
            let mut next = Instant::now() + PROBE_INTERVAL;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next.into()) => {}
                    _ = token.cancelled() => break,
                }
                let now = Instant::now();
                lags.push(now.saturating_duration_since(next).as_secs_f64());
                next = now + PROBE_INTERVAL;
            }
            lags
        });
        LagProbe {
            stop,
            task,
            cpu_start: process_cpu_seconds(),
            started: Instant::now(),
        }
    }

    /// Stops the probe and summarises what it saw.
    pub async fn finish(self) -> GeneratorHealth {
        self.stop.cancel();
        let lags = self.task.await.unwrap_or_default();
        let wall = self.started.elapsed().as_secs_f64();
        let cpu_seconds = match (self.cpu_start, process_cpu_seconds()) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        summarise(&lags, cpu_seconds, wall, cores)
    }
}

/// Builds the health summary and applies the saturation rule.
pub fn summarise(
    lags: &Samples,
    cpu_seconds: Option<f64>,
    wall_s: f64,
    cores: usize,
) -> GeneratorHealth {
    let d = lags.distribution();
    let cpu_percent = cpu_seconds
        .filter(|_| wall_s > 0.0)
        .map(|c| 100.0 * c / wall_s);
    let lag_saturated = d.p99.is_some_and(|p| p > LAG_P99_LIMIT.as_secs_f64());
    let cpu_saturated = cpu_percent.is_some_and(|p| p > 80.0 * cores as f64);
    GeneratorHealth {
        cores: cores as u32,
        cpu_seconds,
        cpu_percent_of_one_core: cpu_percent,
        event_loop_lag_p99_s: d.p99,
        event_loop_lag_max_s: d.max,
        saturated: lag_saturated || cpu_saturated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lags(values: &[f64]) -> Samples {
        let mut s = Samples::new();
        for v in values {
            s.push(*v);
        }
        s
    }

    #[test]
    fn saturation_rule() {
        let calm = lags(&[0.001; 100]);
        let h = summarise(&calm, Some(0.5), 10.0, 2);
        assert!(!h.saturated);
        assert_eq!(h.cpu_percent_of_one_core, Some(5.0));
        // A lagging event loop.
        let mut laggy = vec![0.001; 90];
        laggy.extend([0.05; 10]);
        assert!(summarise(&lags(&laggy), Some(0.5), 10.0, 2).saturated);
        // Busy CPU: 17 s of CPU in 10 s on 2 cores = 170 % > 160 %.
        assert!(summarise(&calm, Some(17.0), 10.0, 2).saturated);
        // Unknown CPU is not a saturation signal by itself.
        assert!(!summarise(&calm, None, 10.0, 2).saturated);
    }

    #[test]
    fn cpu_time_counts_this_process_s_work() {
        // spin until the counter shows 30 ms of CPU: a counter that does not count this work
        // never gets there (5 s of wall time is the bound). Not a timing test: on a loaded
        // machine the spin just takes longer.
        let before = process_cpu_seconds().expect("getrusage answers on unix");
        let start = Instant::now();
        let mut x = 0u64;
        let mut used = 0.0;
        while used < 0.03 && start.elapsed() < Duration::from_secs(5) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            used = process_cpu_seconds().unwrap() - before;
        }
        assert!(
            used >= 0.03,
            "{:?} of spinning counted as {used} s of CPU",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn probe_sees_a_blocked_runtime() {
        let probe = LagProbe::start();
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Block the only worker thread: the probe must wake late.
        std::thread::sleep(Duration::from_millis(120));
        tokio::time::sleep(Duration::from_millis(60)).await;
        let h = probe.finish().await;
        assert!(h.event_loop_lag_max_s.unwrap() >= 0.05, "{h:?}");
    }
}
