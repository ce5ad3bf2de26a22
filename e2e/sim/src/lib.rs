//! barge-sim: a simulated Kubernetes cluster.
#![forbid(unsafe_code)]
pub mod kubelet;
