//! Server-side figures: PromQL over the load's window from Prometheus, or the deltas of vLLM's
//! own `/metrics` when there is no Prometheus.
//!
//! - [`plan_window`] chooses the range `W` and evaluation time `T` (DESIGN.md, "Windows").
//! - [`build_queries`] writes every PromQL (job selector, `sum by (le)` before the quantile,
//!   integer-second ranges); [`PrometheusCollector`] sends them with bounded retries and turns
//!   empty / NaN / ±Inf answers into missing figures with reasons, never 0.
//! - [`MetricsScraper`] and [`server_metrics_from_deltas`] do the same from two `/metrics`
//!   snapshots, with a hand-written text-format parser ([`parse_exposition`]) and Prometheus's
//!   exact [`histogram_quantile`].

mod answer;
mod error;
mod exposition;
mod histogram;
mod promql;
mod query;
mod retry;
mod scrape;
mod window;

pub use crate::retry::RetryPolicy;
pub use answer::InstantAnswer;
pub use error::{BoxError, PromError};
pub use exposition::{ExpositionError, MetricFamily, MetricKind, Sample, parse_exposition};
pub use histogram::histogram_quantile;
pub use promql::{
    AliasQuery, E2E_LATENCY, FINISHED_OK, Figure, GENERATION_TOKENS, GPU_UTIL, ITL, ITL_OLD,
    KV_CACHE, KV_CACHE_OLD, Latency, NamedQuery, Quantile, REQUEST_SUCCESS, TTFT, build_queries,
    describe,
};
pub use query::PrometheusCollector;
pub use scrape::{MetricsScraper, MetricsSnapshot, server_metrics_from_deltas};
pub use window::{
    DEFAULT_GPU_SELECTOR, DEFAULT_JOB, DEFAULT_QUERY_TIMEOUT, DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_SCRAPE_WAIT, LoadSpan, PromSettings, SCRAPE_BUFFER, WindowPlan, plan_window,
};
