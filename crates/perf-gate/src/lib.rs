//! `perf-gate`: the library behind the vLLM LoRA performance gate.
//!
//! Two pipeline steps share it: [`loadtest`] (fire streaming requests at a candidate adapter,
//! measure client-side latency, collect server-side figures from Prometheus or vLLM's
//! `/metrics`) and [`decide`] (four checks against an MLflow baseline, aliases). Both follow
//! one contract ([`step`]: exit codes, error lines, honest output files). The binaries are
//! thin: they parse flags into each step's config and print; everything a test wants to reach
//! lives here. See `docs/architecture.md` for the module map and the data flow of one run.
#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod decide;
pub mod decision;
pub mod duration;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod fsio;
pub mod loadtest;
pub mod mix;
pub mod mlflow;
pub mod prom;
pub mod report;
pub mod results;
pub mod retry;
pub mod runner;
pub mod secrets;
pub mod stats;
pub mod step;
pub mod strict_json;
pub mod telemetry;
pub mod transport;
pub mod urls;
pub mod workload;
