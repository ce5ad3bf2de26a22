//! barge-core: the decisions Barge makes, as pure functions over plain values.
//!
//! No kube, no tokio, no clock: the operator translates Kubernetes objects into these types,
//! calls a function, and applies the decision it gets back. Time is always passed in as unix
//! milliseconds (`now_ms`); resources are integers (millicpu, MiB, GPUs, pod slots).
//!
//! How data flows:
//! - [`job::reconcile`]: one job's [`job::JobView`] (status record, spec essentials, pods,
//!   dependencies, queue rules, scheduler verdict) → [`job::JobPlan`] (new record, events,
//!   pod actions, requeue time, and the [`job::RunnableWork`] the scheduler may place).
//! - [`scheduler::schedule`]: a [`scheduler::Snapshot`] of queues, compute environments, nodes
//!   and RUNNABLE workloads → [`scheduler::PassResult`] (placements and a verdict per workload).
//! - [`pool`]: the instance-type catalog, `instanceTypes` expansion, fixed-size pool plans and
//!   the node create/delete diff for the `simulated` provider.
//!
//! Building blocks: [`resources`] (and [`quantity`] to read Kubernetes/AWS amounts into them), [`index_set`] (compact child-index ranges and bitsets),
//! [`glob`] (AWS Batch patterns), [`retry`] (`evaluateOnExit`), [`timeout`], [`deps`]
//! (dependency verdicts, cycles, missing jobs), [`pod_creation`] (refused pod creations), [`state`] (AWS job states), [`reasons`] (AWS status reasons),
//! [`naming`] (deterministic pod names). Test builders live in `fixtures` (feature
//! `fixtures`).
#![forbid(unsafe_code)]

pub mod deps;
pub mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod glob;
pub mod index_set;
pub mod job;
pub mod naming;
pub mod pod_creation;
pub mod pool;
pub mod quantity;
pub mod reasons;
pub mod resources;
pub mod retry;
pub mod scaling;
pub mod scheduler;
pub mod shared_str;
pub mod state;
pub mod timeout;

pub use error::{Error, Result};
