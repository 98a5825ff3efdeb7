//! Server-side figures: from Prometheus over a window of the load, or from the deltas of vLLM's
//! own `/metrics` when there is no Prometheus.
//!
//! - End-anchored windows (default) rest on confirmed scrape samples: [`timeline`] reads what
//!   Prometheus scraped from each target, [`confirm`] decides the window's edges from it (pure,
//!   tested on backfilled data), and [`PrometheusCollector::await_left_edges`] /
//!   [`PrometheusCollector::collect_confirmed`] wait for them and read the counts exactly
//!   (two instant vectors subtracted series by series, see `confirmed`).
//! - Seed windows (`--window-mode seed`): [`plan_seed_window`] (the seed's arithmetic) and
//!   [`build_queries`] (the seed's PromQL, `sum by (le)` before the quantile, integer-second
//!   ranges), sent by [`PrometheusCollector::collect_seed`].
//! - Every answer with no data (empty, NaN, ±Inf) is a missing figure with its reason, never 0.
//! - [`MetricsScraper`] and [`server_metrics_from_deltas`] read two `/metrics` snapshots, with a
//!   hand-written text-format parser ([`parse_exposition`]) and Prometheus's exact
//!   [`histogram_quantile`].

mod answer;
pub mod confirm;
mod confirmed;
mod error;
mod exposition;
mod histogram;
mod promql;
mod query;
mod retry;
mod scrape;
mod targets;
pub mod timeline;
mod window;

pub use crate::retry::RetryPolicy;
pub use answer::InstantAnswer;
pub use confirmed::PreLoad;
pub use error::{BoxError, PromError};
pub use exposition::{ExpositionError, MetricFamily, MetricKind, Sample, parse_exposition};
pub use histogram::histogram_quantile;
pub use promql::{
    AliasQuery, E2E_LATENCY, FINISHED_OK, Figure, GENERATION_TOKENS, GPU_UTIL, ITL, ITL_OLD,
    KV_CACHE, KV_CACHE_OLD, Latency, NamedQuery, Quantile, REQUEST_SUCCESS, TTFT, build_queries,
    describe, gauge_queries,
};
pub use query::{PrometheusCollector, QueryData};
pub use scrape::{MetricsScraper, MetricsSnapshot, server_metrics_from_deltas};
pub use targets::JobTargets;
pub use window::{
    DEFAULT_GPU_SELECTOR, DEFAULT_JOB, DEFAULT_QUERY_TIMEOUT, DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_SCRAPE_WAIT, DISCOVERY_DELAY, LoadSpan, PromSettings, WindowPlan, plan_seed_window,
};
