//! Live export of the client's figures while a load runs: [`pushgateway`] (seed 002's
//! Pushgateway metrics).

pub mod pushgateway;
