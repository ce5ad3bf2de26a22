//! barge-operator: the Barge operator and command-line tool.
#![forbid(unsafe_code)]

pub mod index;
pub mod leader;
pub mod metrics;
