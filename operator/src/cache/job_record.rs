//! The job store's entry: a compact record of a Barge [`Job`] instead of the decoded object.
//!
//! With 100,000 queued jobs, the decoded `Job`s were the operator's largest live memory
//! (~2.5 KB each: every string of the spec and status its own allocation, every `Option` and
//! map inline). A [`JobRecord`] keeps
//! - the object's metadata (without managedFields and the last-applied annotation, which the
//!   cache never kept), so kube's reflector and controller key, version and trigger on it;
//! - the fields the indexes, the queue counts and the controllers' triggers read, decoded:
//!   the recorded state, the queue, the share identifier, the definition name and the
//!   dependencies — the names interned ([`intern`]: one allocation per distinct name, shared by
//!   every job and every index key that names it);
//! - the rest — `spec` and `status` — as the JSON a `Job` serializes to: the spec's bytes and
//!   the fields decoded from them in one shared part (jobs submitted from one template share
//!   one, so a record holds its metadata and a few pointers); the status without its
//!   two fields that are unique per job (`jobId`, kept as "the uid" when it is, and
//!   `submissionOrder`, kept as a number), interned while the job has no attempt — the queued
//!   jobs of a burst share their conditions, reasons and timestamps (1 s resolution), so
//!   100,000 of them hold a few hundred distinct copies — and its own once it has attempts
//!   (pod names and times make it unique: a pool would only keep its superseded versions).
//!
//! A component that acts on a job decodes it ([`JobRecord::job`]): the job controller once per
//! reconcile, the scheduler once per pod it renders. Watch events and lists decode a `Job`
//! (kube's `DeserializeGuard` still reports an object that does not match Barge's types) and
//! compact it ([`JobRecord::from_job`]).

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};

use kube::api::ObjectMeta;
use kube::Resource;
use serde::{Deserialize, Deserializer};

use barge_crds::job::{JobSpec, JobStatus, JobStatusDetail};
use barge_crds::Job;

/// One shared copy of each distinct value. Entries nobody else holds any more are swept when
/// the pool has doubled since the last sweep (amortized O(1) per insert).
struct Pool<T: ?Sized + Eq + Hash> {
    state: Mutex<PoolState<T>>,
}

struct PoolState<T: ?Sized + Eq + Hash> {
    values: HashSet<Arc<T>>,
    sweep_at: usize,
}

/// The pool's smallest sweep threshold.
const MIN_SWEEP: usize = 1024;

impl<T: ?Sized + Eq + Hash> Pool<T>
where
    for<'a> Arc<T>: From<&'a T>,
{
    fn new() -> Self {
        Self {
            state: Mutex::new(PoolState {
                values: HashSet::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    fn intern(&self, value: &T) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = state.values.get(value) {
            return shared.clone();
        }
        if state.values.len() >= state.sweep_at {
            state.values.retain(|v| Arc::strong_count(v) > 1);
            state.sweep_at = (state.values.len() * 2).max(MIN_SWEEP);
        }
        let shared: Arc<T> = Arc::from(value);
        state.values.insert(shared.clone());
        shared
    }
}

static NAMES: LazyLock<Pool<str>> = LazyLock::new(Pool::new);
static STATUSES: LazyLock<Pool<[u8]>> = LazyLock::new(Pool::new);

/// The shared copy of a name (a queue, a definition, a share identifier, a job id).
pub fn intern(name: &str) -> Arc<str> {
    NAMES.intern(name)
}

/// A Barge Job as the job store keeps it (see the module docs).
#[derive(Clone, Debug)]
pub struct JobRecord {
    metadata: ObjectMeta,
    /// `namespace/name`: the id the job indexes store, shared with them.
    id: Arc<str>,
    state: JobStatus,
    /// `spec` and what the record decodes from it, shared by every job with the same spec.
    spec: Arc<SpecPart>,
    /// `status`; None when the job has none.
    status: Option<StoredStatus>,
}

/// A job's `spec` as the record keeps it: the JSON and the fields decoded from it. A function
/// of the JSON alone, so every record whose spec serializes to the same bytes shares one
/// (`SPEC_PARTS`): a queued job's record holds a pointer, not five.
#[derive(Debug)]
struct SpecPart {
    /// `spec` as JSON (also the pool's key).
    json: Arc<[u8]>,
    queue: Arc<str>,
    share_identifier: Option<Arc<str>>,
    /// The name of the definition `spec.jobDefinition` references (None when the reference is
    /// malformed).
    definition: Option<Arc<str>>,
    /// The `jobName` of each `dependsOn` entry that has one.
    depends_on: Box<[Arc<str>]>,
}

impl SpecPart {
    fn new(spec: &JobSpec, json: Arc<[u8]>) -> Self {
        Self {
            json,
            queue: intern(&spec.job_queue),
            share_identifier: spec.share_identifier.as_deref().map(intern),
            definition: spec
                .job_definition_reference()
                .ok()
                .map(|reference| intern(reference.name)),
            depends_on: spec
                .depends_on
                .iter()
                .filter_map(|d| d.job_name.as_deref())
                .map(intern)
                .collect(),
        }
    }
}

/// The shared [`SpecPart`]s by spec JSON; parts no record holds any more are swept when the
/// pool has doubled since the last sweep (as [`Pool`]).
struct SpecPool {
    parts: std::collections::HashMap<Arc<[u8]>, Arc<SpecPart>>,
    sweep_at: usize,
}

static SPEC_PARTS: LazyLock<Mutex<SpecPool>> = LazyLock::new(|| {
    Mutex::new(SpecPool {
        parts: std::collections::HashMap::new(),
        sweep_at: MIN_SWEEP,
    })
});

/// The shared part of `spec`.
fn spec_part(spec: &JobSpec) -> Arc<SpecPart> {
    // Serializing these plain data types cannot fail (no maps with non-string keys).
    let json = serde_json::to_vec(spec).unwrap_or_default();
    let mut pool = SPEC_PARTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(part) = pool.parts.get(json.as_slice()) {
        return part.clone();
    }
    if pool.parts.len() >= pool.sweep_at {
        pool.parts.retain(|_, part| Arc::strong_count(part) > 1);
        pool.sweep_at = (pool.parts.len() * 2).max(MIN_SWEEP);
    }
    let json: Arc<[u8]> = Arc::from(json);
    let part = Arc::new(SpecPart::new(spec, json.clone()));
    pool.parts.insert(json, part.clone());
    part
}

/// A job's `status` as the record keeps it (see the module docs).
#[derive(Clone, Debug)]
struct StoredStatus {
    /// The JSON of the status without `jobId` and `submissionOrder`: from the pool while the
    /// job has no attempt, its own after.
    json: Arc<[u8]>,
    job_id: JobId,
    submission_order: Option<i64>,
}

/// `status.jobId`: the job controller writes the uid there.
#[derive(Clone, Debug, PartialEq, Eq)]
enum JobId {
    None,
    Uid,
    Other(Box<str>),
}

impl StoredStatus {
    fn new(mut status: JobStatusDetail, uid: Option<&str>) -> Self {
        let job_id = match status.job_id.take() {
            None => JobId::None,
            Some(id) if Some(id.as_str()) == uid => JobId::Uid,
            Some(id) => JobId::Other(id.into_boxed_str()),
        };
        let submission_order = status.submission_order.take();
        // Serializing these plain data types cannot fail (no maps with non-string keys).
        let json = serde_json::to_vec(&status).unwrap_or_default();
        let json = if status.attempts.is_empty() {
            STATUSES.intern(&json)
        } else {
            Arc::from(json)
        };
        Self {
            json,
            job_id,
            submission_order,
        }
    }

    fn decode(&self, uid: Option<&str>) -> JobStatusDetail {
        let mut status: JobStatusDetail = serde_json::from_slice(&self.json)
            .expect("a job record's status is the JSON of a decoded JobStatusDetail");
        status.job_id = match &self.job_id {
            JobId::None => None,
            JobId::Uid => uid.map(str::to_string),
            JobId::Other(id) => Some(id.to_string()),
        };
        status.submission_order = self.submission_order;
        status
    }
}

/// What [`JobRecord::from_job`] drops: managedFields and client-side `kubectl apply`'s copy of
/// the object (the cache never kept either).
fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(super::LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

impl JobRecord {
    /// The record of `job`.
    pub fn from_job(job: Job) -> Self {
        let Job {
            mut metadata,
            spec,
            status,
        } = job;
        trim_meta(&mut metadata);
        let id = intern(&format!(
            "{}/{}",
            metadata.namespace.as_deref().unwrap_or_default(),
            metadata.name.as_deref().unwrap_or_default()
        ));
        let state = status
            .as_ref()
            .and_then(|s| s.status)
            .unwrap_or(JobStatus::Submitted);
        let status = status.map(|s| StoredStatus::new(s, metadata.uid.as_deref()));
        Self {
            metadata,
            id,
            state,
            spec: spec_part(&spec),
            status,
        }
    }

    /// The job, decoded.
    pub fn job(&self) -> Job {
        let spec: JobSpec = serde_json::from_slice(&self.spec.json)
            .expect("a job record's spec is the JSON of a decoded JobSpec");
        let status = self
            .status
            .as_ref()
            .map(|s| s.decode(self.metadata.uid.as_deref()));
        Job {
            metadata: self.metadata.clone(),
            spec,
            status,
        }
    }

    /// `namespace/name`, shared.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The state as recorded, SUBMITTED when the controller has not written one yet.
    pub fn state(&self) -> JobStatus {
        self.state
    }

    /// `spec.jobQueue`.
    pub fn queue(&self) -> &Arc<str> {
        &self.spec.queue
    }

    /// `spec.shareIdentifier`.
    pub fn share_identifier(&self) -> Option<&Arc<str>> {
        self.spec.share_identifier.as_ref()
    }

    /// The name of the definition `spec.jobDefinition` references (None when malformed).
    pub fn definition(&self) -> Option<&Arc<str>> {
        self.spec.definition.as_ref()
    }

    /// The `jobName`s of `spec.dependsOn`.
    pub fn depends_on(&self) -> &[Arc<str>] {
        &self.spec.depends_on
    }
}

impl From<Job> for JobRecord {
    fn from(job: Job) -> Self {
        Self::from_job(job)
    }
}

impl Resource for JobRecord {
    type DynamicType = ();
    type Scope = <Job as Resource>::Scope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        Job::kind(dt)
    }

    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        Job::group(dt)
    }

    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        Job::version(dt)
    }

    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        Job::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A record decodes as a `Job` (watch events, lists) and compacts it.
impl<'de> Deserialize<'de> for JobRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Job::deserialize(deserializer).map(JobRecord::from_job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, status: Option<serde_json::Value>) -> Job {
        let mut value = serde_json::json!({
            "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
            "metadata": {
                "name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "resourceVersion": "42", "generation": 3,
                "creationTimestamp": "2026-12-07T08:00:00Z",
                "labels": {"team": "render"},
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "note": "kept"
                },
                "finalizers": ["batch.barge.dev/x"],
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]
            },
            "spec": {
                "jobQueue": "high", "jobDefinition": "render:2", "shareIdentifier": "blue",
                "schedulingPriorityOverride": 7,
                "dependsOn": [{"jobName": "first"}, {"jobName": "second", "type": "N_TO_N"}],
                "arrayProperties": {"size": 4},
                "containerOverrides": {"command": ["echo", "hi"], "environment": [{"name": "A", "value": "1"}]},
                "parameters": {"frame": "12"}
            }
        });
        if let Some(status) = status {
            value["status"] = status;
        }
        serde_json::from_value(value).expect("a valid job")
    }

    fn without_dropped_metadata(mut job: Job) -> Job {
        job.metadata.managed_fields = None;
        if let Some(a) = job.metadata.annotations.as_mut() {
            a.remove(super::super::LAST_APPLIED);
        }
        job
    }

    #[test]
    fn a_record_decodes_to_the_job_without_the_dropped_metadata() {
        let status = serde_json::json!({
            "status": "RUNNABLE", "statusReason": "waiting for capacity", "attemptCount": 1,
            "jobId": "uid-b", "submissionOrder": 17,
            "conditions": [{"type": "Schedulable", "status": "False", "reason": "Capacity",
                "message": "no room", "lastTransitionTime": "2026-12-07T08:00:01Z"}]
        });
        for original in [job("a", None), job("b", Some(status))] {
            let record = JobRecord::from_job(original.clone());
            let decoded = record.job();
            assert_eq!(decoded, without_dropped_metadata(original));
            assert!(decoded.metadata.managed_fields.is_none());
            assert_eq!(
                decoded
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("note"))
                    .map(String::as_str),
                Some("kept")
            );
        }
    }

    #[test]
    fn a_record_carries_the_hot_fields() {
        let record = JobRecord::from_job(job("a", Some(serde_json::json!({"status": "FAILED"}))));
        assert_eq!(&**record.id(), "ns/a");
        assert_eq!(record.state(), JobStatus::Failed);
        assert_eq!(&**record.queue(), "high");
        assert_eq!(record.share_identifier().map(|s| &**s), Some("blue"));
        assert_eq!(record.definition().map(|s| &**s), Some("render"));
        let deps: Vec<&str> = record.depends_on().iter().map(|d| &**d).collect();
        assert_eq!(deps, ["first", "second"]);
        let fresh = JobRecord::from_job(job("b", None));
        assert_eq!(fresh.state(), JobStatus::Submitted);
        assert_eq!(fresh.meta().resource_version.as_deref(), Some("42"));
        assert_eq!(JobRecord::kind(&()), "Job");
        assert_eq!(JobRecord::plural(&()), Job::plural(&()));
    }

    #[test]
    fn records_share_their_names_and_identical_specs() {
        let a = JobRecord::from_job(job("a", None));
        let b = JobRecord::from_job(job("b", Some(serde_json::json!({"status": "RUNNABLE"}))));
        assert!(Arc::ptr_eq(a.queue(), b.queue()));
        assert!(Arc::ptr_eq(&a.spec, &b.spec));
        let mut other = job("c", None);
        other.spec.job_queue = "low".into();
        let c = JobRecord::from_job(other);
        assert!(!Arc::ptr_eq(&a.spec, &c.spec));
        assert_eq!(c.job().spec.job_queue, "low");
        assert_eq!(&**c.queue(), "low");
        assert_eq!(&**a.queue(), "high");
        let deps: Vec<&str> = c.depends_on().iter().map(|d| &**d).collect();
        assert_eq!(deps, ["first", "second"]);
        // A record is its metadata and a few pointers: what is decoded from the spec is shared.
        assert!(
            std::mem::size_of::<JobRecord>() <= std::mem::size_of::<ObjectMeta>() + 96,
            "a job record is {} bytes",
            std::mem::size_of::<JobRecord>()
        );
    }

    #[test]
    fn the_spec_pool_forgets_parts_no_record_holds() {
        let spec_of = |i: usize| {
            let mut j = job("p", None);
            j.spec.job_queue = format!("pool-test-{i}");
            j.spec
        };
        let first = spec_part(&spec_of(0));
        for i in 1..=MIN_SWEEP * 2 {
            drop(spec_part(&spec_of(i)));
        }
        let pool = SPEC_PARTS.lock().unwrap();
        assert!(
            pool.parts.len() < MIN_SWEEP * 2,
            "parts nobody holds were swept: {} left",
            pool.parts.len()
        );
        let json = serde_json::to_vec(&spec_of(0)).unwrap();
        assert!(
            pool.parts
                .get(json.as_slice())
                .is_some_and(|p| Arc::ptr_eq(p, &first)),
            "a part a record holds stays shared"
        );
    }

    #[test]
    fn queued_statuses_share_one_copy_and_keep_their_own_id_and_order() {
        let queued = |order: i64, job_id: &str| {
            serde_json::json!({
                "status": "RUNNABLE", "statusReason": "waiting", "jobId": job_id,
                "createdAt": "2026-12-07T08:00:00Z", "submissionOrder": order,
                "conditions": [{"type": "Schedulable", "status": "False", "reason": "Capacity",
                    "message": "no room", "lastTransitionTime": "2026-12-07T08:00:01Z"}]
            })
        };
        let a = JobRecord::from_job(job("a", Some(queued(1, "uid-a"))));
        let b = JobRecord::from_job(job("b", Some(queued(2, "uid-b"))));
        let (sa, sb) = (a.status.as_ref().unwrap(), b.status.as_ref().unwrap());
        assert!(
            Arc::ptr_eq(&sa.json, &sb.json),
            "queued statuses share one copy"
        );
        assert_eq!(sa.job_id, JobId::Uid);
        let (ja, jb) = (a.job(), b.job());
        let (da, db) = (ja.status.unwrap(), jb.status.unwrap());
        assert_eq!(
            (da.job_id.as_deref(), da.submission_order),
            (Some("uid-a"), Some(1))
        );
        assert_eq!(
            (db.job_id.as_deref(), db.submission_order),
            (Some("uid-b"), Some(2))
        );
        // A jobId that is not the uid (e.g. a restored object) comes back as it was.
        let other = JobRecord::from_job(job("c", Some(queued(3, "elsewhere"))));
        assert_eq!(
            other.job().status.and_then(|s| s.job_id).as_deref(),
            Some("elsewhere")
        );
    }

    #[test]
    fn a_status_with_attempts_is_its_own() {
        let status = serde_json::json!({
            "status": "SUCCEEDED", "jobId": "uid-a", "submissionOrder": 9,
            "attempts": [{"container": {"exitCode": 0, "podName": "a-1"},
                "startedAt": "2026-12-07T08:00:01Z", "stoppedAt": "2026-12-07T08:00:02Z"}]
        });
        let original = job("a", Some(status));
        let record = JobRecord::from_job(original.clone());
        let twin = JobRecord::from_job(original.clone());
        let (json, twin_json) = (
            &record.status.as_ref().unwrap().json,
            &twin.status.as_ref().unwrap().json,
        );
        assert!(!Arc::ptr_eq(json, twin_json), "not pooled");
        assert_eq!(record.job(), without_dropped_metadata(original));
    }

    #[test]
    fn a_malformed_definition_reference_has_no_definition() {
        let mut bad = job("a", None);
        bad.spec.job_definition = "render:x".into();
        assert_eq!(JobRecord::from_job(bad).definition(), None);
    }

    #[test]
    fn a_record_deserializes_from_a_job_and_the_guard_reports_a_bad_one() {
        let value = serde_json::to_value(job("a", None)).expect("serializes");
        let record: JobRecord = serde_json::from_value(value).expect("decodes");
        assert_eq!(&**record.id(), "ns/a");
        assert!(record.meta().managed_fields.is_none());
        let bad: kube::core::DeserializeGuard<JobRecord> =
            serde_json::from_value(serde_json::json!({
                "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
                "metadata": {"name": "bad", "namespace": "ns"},
                "spec": {"jobQueue": 3}
            }))
            .expect("the guard decodes");
        assert!(bad.0.is_err());
    }

    #[test]
    fn the_pool_sweeps_values_nobody_holds() {
        let pool: Pool<str> = Pool::new();
        let kept = pool.intern("kept");
        for i in 0..(MIN_SWEEP * 3) {
            drop(pool.intern(&format!("gone-{i}")));
        }
        let len = pool.state.lock().expect("unpoisoned").values.len();
        assert!(len < MIN_SWEEP * 2, "{len} values left");
        assert!(Arc::ptr_eq(&kept, &pool.intern("kept")));
    }
}
