//! Live export of the client's figures while a load runs: [`pushgateway`] (seed 002's
//! Pushgateway metrics) and [`otlp`] (one OpenTelemetry span per request).

pub mod otlp;
pub mod pushgateway;
