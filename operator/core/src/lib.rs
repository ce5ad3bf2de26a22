//! barge-core: the decisions Barge makes, as pure functions over plain values.
#![forbid(unsafe_code)]
