//! barge-crds: the Barge API types.
#![forbid(unsafe_code)]
