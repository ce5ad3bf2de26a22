//! barge-operator: the Barge operator and command-line tool (the `barge` binary).
//!
//! Layers, top to bottom (`operator/ARCHITECTURE.md` draws them; `tests/layers.rs` enforces
//! them: imports only point down, and a worker never imports another worker):
//! 1. [`run`]: start-up, leadership and shutdown (`barge operator`); starts the workers.
//! 2. Workers: [`controllers`]`::*`, one kube-runtime controller per kind, each a pipeline
//!    dereference → validate → build → apply → update_status with decisions delegated to
//!    `barge_core`; and [`scheduler`], the scheduling loop (RUNNABLE work → snapshot →
//!    barge-core's pass → pods). What the controllers share is in `controllers` itself.
//! 3. [`nodepools`]: the node-pool providers of managed compute environments (the
//!    ComputeEnvironment controller scales them, the scheduler snapshots their nodes).
//! 4. Plumbing, shared by the workers:
//!    - [`context`]: what every worker receives (client, caches, metrics, events, settings,
//!      the runnable book the job controller fills and the scheduler reads, scheduler wake-up,
//!      verdicts, reconcile triggers);
//!    - [`cache`]: one watch per kind → reflector stores, secondary [`index`]es, the compact
//!      per-node usage of all pods, and the shared feeds that drive the controllers;
//!    - [`definition_revisions`]: job definition revisions as ControllerRevisions, and
//!      resolving a job's definition reference from the caches;
//!    - [`queue_access`]: which namespaces may submit to a job queue;
//!    - [`pods`]: rendering a job attempt into its Pod, a job's request, reading a Pod back,
//!      releasing its result finalizer;
//!    - [`pod_refusals`]: pod creations the API server refused, per job (the scheduler writes,
//!      the scheduler's backoff and the job controller's give-up read);
//!    - [`translate`]: Job objects ↔ barge-core's job types (record, spec, status), pure;
//!    - [`status`]: condition merging and skip-if-unchanged server-side-apply status writes;
//!    - [`events`]: Kubernetes Events, published in the background; [`metrics`]: Prometheus
//!      metrics and probes; [`leader`]: Lease-based leader election; [`shutdown`]: the
//!      graceful-shutdown signal.
//! 5. `barge_crds` (the CRD types) and `barge_core` (pure decisions) below everything.
//!
//! Data flow: caches → controllers → status; job controller → runnable book → scheduler →
//! pods → (pod watch) → job controller.
#![forbid(unsafe_code)]

pub mod cache;
pub mod context;
pub mod controllers;
pub mod definition_revisions;
pub mod events;
pub mod index;
pub mod leader;
pub mod metrics;
pub mod nodepools;
pub mod pod_refusals;
pub mod pods;
pub mod queue_access;
pub mod run;
pub mod scheduler;
pub mod shutdown;
pub mod status;
#[cfg(test)]
pub(crate) mod test_support;
pub mod throttle;
pub mod translate;
