//! barge-operator: the Barge operator and command-line tool (the `barge` binary).
//!
//! How the operator is put together (`barge operator`, see [`run`]):
//! - [`cache`]: one watch per kind → reflector stores, secondary [`index`]es, the compact
//!   per-node usage of all pods, and the shared feeds that drive the controllers;
//! - [`context`]: what every controller and the scheduler receive (client, caches, metrics,
//!   events, settings, scheduler wake-up, scheduler verdicts, reconcile triggers);
//! - [`controllers`]: one kube-runtime controller per kind, each a pipeline dereference →
//!   validate → build → apply → update_status, decisions delegated to `barge_core`;
//! - [`scheduler`]: the scheduling loop (RUNNABLE work → snapshot → barge-core's pass → pods);
//! - [`nodepools`]: the node-pool providers of managed compute environments;
//! - [`pods`]: rendering a job attempt into its Pod and reading a Pod back (pure);
//! - [`translate`]: Job objects ↔ barge-core's job types (record, spec, status), pure;
//! - [`status`]: condition merging and skip-if-unchanged server-side-apply status writes;
//! - [`events`]: Kubernetes Events, published in the background;
//! - [`leader`]: Lease-based leader election; [`metrics`]: Prometheus metrics and probes.
#![forbid(unsafe_code)]

pub mod cache;
pub mod context;
pub mod controllers;
pub mod events;
pub mod index;
pub mod leader;
pub mod metrics;
pub mod nodepools;
pub mod pods;
pub mod run;
pub mod scheduler;
pub mod status;
#[cfg(test)]
pub(crate) mod test_support;
pub mod translate;
