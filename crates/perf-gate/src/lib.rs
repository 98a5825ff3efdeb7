//! `perf-gate`: the library behind the vLLM LoRA performance gate.
//!
//! Two pipeline steps share it: `load-test` (fire streaming requests at a candidate adapter,
//! measure client-side latency, collect server-side figures from Prometheus or vLLM's
//! `/metrics`) and `perf-decision` (four checks against an MLflow baseline, aliases).
//! The binaries are thin; everything a test wants to reach lives here.
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod decision;
pub mod exit;
pub mod fsio;
pub mod loadtest;
pub mod logging;
pub mod mlflow;
pub mod prom;
pub mod results;
pub mod runner;
pub mod stats;
pub mod workload;
