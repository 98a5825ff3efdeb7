#![doc = include_str!("../README.md")]
//!
//! ## Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! let sim = vllm_sim::spawn(vllm_sim::SimConfig {
//!     ttft: Duration::from_millis(20),
//!     max_num_seqs: 4,
//!     ..Default::default()
//! })
//! .await?;
//! println!("{}", sim.base_url()); // http://127.0.0.1:PORT
//! sim.shutdown().await
//! # }
//! ```
//!
//! ## Modules
//!
//! Crate-private, documented for maintainers: `config` (the knobs), `models` (`/v1/models`
//! and name lookup), `openai` (request validation, error bodies), `tokens` (prompt counting,
//! output text), `tokenize` (`/tokenize`), `faults` (seeded per-request plans), `latency` (delays), `engine` (queue,
//! slots, token schedule), `sse` and `completions` (response framing), `metrics` (Prometheus
//! exposition), `server` (routes, [`spawn`], [`SimHandle`]), `llamacpp` (`--api llamacpp`:
//! llama.cpp's native API on the same engine).
#![warn(missing_docs)]

pub mod cli;
mod completions;
mod config;
mod engine;
mod faults;
mod latency;
mod llamacpp;
mod metrics;
mod models;
mod openai;
mod server;
mod sse;
mod tokenize;
mod tokens;
mod traces;

pub use config::{ConfigError, CutMode, LatencyScale, LoadTime, LoraModule, SimApi, SimConfig};
pub use engine::SimStats;
pub use metrics::FinishReason;
pub use server::{SimHandle, VERSION, spawn};
pub use traces::TRACE_LOG_CAP;
