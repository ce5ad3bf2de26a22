//! barge-core: the decisions Barge makes, as pure functions over plain values.
#![forbid(unsafe_code)]

pub mod deps;
pub mod error;
pub mod glob;
pub mod index_set;
pub mod reasons;
pub mod resources;
pub mod retry;
pub mod state;
pub mod timeout;

pub use error::{Error, Result};
