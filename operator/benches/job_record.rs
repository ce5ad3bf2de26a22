//! Memory per cached job: the decoded `Arc<Job>` the job store held before against the
//! `Arc<JobRecord>` it holds now (`operator/src/cache/job_record.rs`), for 50,000 queued jobs as
//! the end-to-end bench's `memory` phase leaves them (RUNNABLE, two conditions written).
//!
//! `cargo bench -p barge-operator --bench job_record` (`BARGE_BENCH_RECORDS=N` for another
//! count). Counted as live heap bytes by a counting allocator (exact and repeatable; RSS is not:
//! an allocator reuses what building the inputs freed). Printed: heap bytes per job of each kind
//! and their ratio.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use barge_crds::Job;
use barge_operator::cache::JobRecord;

/// The system allocator, counting the bytes it holds.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to `System` unchanged; only a counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let count: usize = std::env::var("BARGE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let sources: Vec<String> = (0..count)
        .map(|i| serde_json::to_string(&queued(i)).expect("json"))
        .collect();

    let before = LIVE.load(Ordering::Relaxed);
    let jobs: Vec<Arc<Job>> = sources
        .iter()
        .map(|source| {
            let mut job: Job = serde_json::from_str(source).expect("decodes");
            job.metadata.managed_fields = None;
            Arc::new(job)
        })
        .collect();
    let per_job = (LIVE.load(Ordering::Relaxed) - before) as f64 / count as f64;
    drop(jobs);

    let before = LIVE.load(Ordering::Relaxed);
    let records: Vec<Arc<JobRecord>> = sources
        .iter()
        .map(|source| Arc::new(serde_json::from_str::<JobRecord>(source).expect("decodes")))
        .collect();
    let per_record = (LIVE.load(Ordering::Relaxed) - before) as f64 / count as f64;
    assert_eq!(records.len(), count);

    println!("job store, {count} queued jobs, live heap bytes per job (the Vec of Arcs included):");
    println!("  Arc<Job> (decoded, managedFields dropped) : {per_job:.0}");
    println!("  Arc<JobRecord>                            : {per_record:.0}");
    println!(
        "  record / decoded                          : {:.2}x",
        per_record / per_job
    );
}

/// A queued job as the `memory` phase leaves it: RUNNABLE, its conditions written.
fn queued(i: usize) -> Job {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch.barge.dev/v1alpha1", "kind": "Job",
        "metadata": {
            "name": format!("queued-{i}"), "namespace": "bench",
            "uid": format!("6f1c2d3e-0000-4000-8000-{i:012}"),
            "resourceVersion": format!("{}", 100_000 + i), "generation": 1,
            "creationTimestamp": "2026-12-07T08:00:00Z",
            "managedFields": [{"manager": "barge", "operation": "Apply",
                "apiVersion": "batch.barge.dev/v1alpha1", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:status": {}, "f:statusReason": {}}}}]
        },
        "spec": {"jobQueue": "bench", "jobDefinition": "zero"},
        "status": {
            "status": "RUNNABLE", "statusReason": "waiting for capacity",
            "createdAt": "2026-12-07T08:00:00Z", "submissionOrder": i,
            "observedGeneration": 1,
            "conditions": [
                {"type": "Valid", "status": "True", "reason": "Valid",
                 "message": "the job and its definition are valid",
                 "lastTransitionTime": "2026-12-07T08:00:01Z", "observedGeneration": 1},
                {"type": "Schedulable", "status": "False", "reason": "InsufficientCapacity",
                 "message": "no compute environment of queue bench has room for 1 vCPU",
                 "lastTransitionTime": "2026-12-07T08:00:02Z", "observedGeneration": 1}
            ]
        }
    }))
    .expect("a queued job")
}
