//! End-to-end: fair share (issue 12) through the real `barge` binary, barge-sim and the scripted
//! runtime (job durations are exact):
//! - on a saturated 8-vCPU environment a share weighted 0.25 gets 80 % of the vCPU-seconds
//!   against one weighted 1.0, and the heavier share alone afterwards gets all 8 vCPUs;
//! - `computeReservation: 50` with one active share leaves half the environment free, and a
//!   second share's first job starts within a pass of its submission;
//! - right after heavy usage the used share yields; once usage has decayed two shares start even;
//! - a `team-*` entry weighs every `team-…` identifier;
//! - `schedulingPriorityOverride` (and the definition's `schedulingPriority`) reorder a share;
//! - an operator killed mid-run recovers the usage (`status.fairShare`) and keeps the ratio;
//! - `status.frontOfQueue` is the order in which the jobs then start (FIFO and fair share);
//! - `jobStateTimeLimitActions` cancels a job that can never run;
//! - admission: no `shareIdentifier` on a fair-share queue fails the job; one on a FIFO queue
//!   is ignored.
//!
//! Times come from a watch of the test namespace's pods ([`support::PodHistory`], milliseconds),
//! not from the jobs' `startedAt`/`stoppedAt` (Kubernetes times have whole seconds, too coarse
//! for one-second jobs). Every job of the ratio tests asks for 1 vCPU, so a pod's running time
//! is its vCPU-seconds.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use barge_crds::consts::{
    ANNOTATION_SHARE_IDENTIFIER, BLOCKED_REASON_JOB_RESOURCE_REQUIREMENT, LABEL_JOB_NAME,
    STATUS_REASON_CANCELED_BY_TIME_LIMIT_PREFIX,
};
use barge_crds::job::JobStatus;
use barge_crds::job_queue::{FairShareStatus, FrontOfQueue, JobQueueStatus};
use barge_crds::Job;
use futures::StreamExt;
use kube::api::{ListParams, PostParams};

use support::{
    compute_environment, job, job_definition, job_queue, scripted_tags, status_of, status_reason,
    E2e, Options, PodObservation,
};

/// Concurrent job submissions (the ratio tests submit hundreds of jobs).
const SUBMITTERS: usize = 16;
/// Longest wait for a whole ratio scenario to finish.
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// vCPUs of the saturated environment (4 c5.large nodes).
const CE_VCPUS: i32 = 8;
/// The operator's `--queue-status-interval-ms` here: queue statuses (usage, front of queue) a
/// second old at most, instead of the default 5 s.
const QUEUE_STATUS_INTERVAL: &str = "--queue-status-interval-ms=1000";

/// The scripted runtime and a one-second queue status interval.
fn options() -> Options {
    Options::scripted().flag(QUEUE_STATUS_INTERVAL)
}

// ---------------------------------------------------------------------------------------------
// Manifests and submission
// ---------------------------------------------------------------------------------------------

/// A SchedulingPolicy `${NS}-<name>` with the given `shareDistribution` (identifier, weight).
fn scheduling_policy(name: &str, decay: u32, reservation: u32, shares: &[(&str, f64)]) -> String {
    let distribution: Vec<String> = shares
        .iter()
        .map(|(id, weight)| format!("{{shareIdentifier: \"{id}\", weightFactor: {weight:?}}}"))
        .collect();
    format!(
        r#"---
apiVersion: batch.barge.dev/v1alpha1
kind: SchedulingPolicy
metadata: {{name: "${{NS}}-{name}"}}
spec:
  fairsharePolicy:
    shareDecaySeconds: {decay}
    computeReservation: {reservation}
    shareDistribution: [{}]
"#,
        distribution.join(", ")
    )
}

/// A queue `${NS}-<name>` over `environments` ordered by scheduling policy `${NS}-<policy>`;
/// `extra` is more spec-level YAML.
fn fair_queue(name: &str, environments: &[&str], policy: &str, extra: &str) -> String {
    format!(
        "{}  schedulingPolicyName: \"${{NS}}-{policy}\"\n{}\n",
        job_queue(name, 10, environments),
        support::indent(extra, 2)
    )
}

/// A scripted definition of `vcpus` vCPUs that runs `seconds` and succeeds; `extra` is more
/// spec-level YAML.
fn scripted_definition(name: &str, vcpus: &str, seconds: &str, extra: &str) -> String {
    job_definition(
        name,
        "true",
        &[],
        vcpus,
        &format!("{}{extra}", scripted_tags(seconds, 0)),
    )
}

/// One job to submit.
#[derive(Clone, Debug)]
struct Submit {
    name: String,
    definition: String,
    share: Option<String>,
    priority_override: Option<i32>,
}

impl Submit {
    fn new(name: &str, definition: &str, share: &str) -> Self {
        Self {
            name: name.to_string(),
            definition: definition.to_string(),
            share: Some(share.to_string()),
            priority_override: None,
        }
    }

    fn priority(mut self, priority: i32) -> Self {
        self.priority_override = Some(priority);
        self
    }
}

/// `count` jobs `<prefix>-000`… of `definition` in `share`.
fn batch(prefix: &str, share: &str, count: usize, definition: &str) -> Vec<Submit> {
    (0..count)
        .map(|i| Submit::new(&format!("{prefix}-{i:03}"), definition, share))
        .collect()
}

fn job_object(env: &E2e, queue: &str, s: &Submit) -> Job {
    let mut extra = String::new();
    if let Some(share) = &s.share {
        extra.push_str(&format!("shareIdentifier: \"{share}\"\n"));
    }
    if let Some(priority) = s.priority_override {
        extra.push_str(&format!("schedulingPriorityOverride: {priority}\n"));
    }
    let text = env.render(&job(&s.name, queue, &s.definition, &extra));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("job manifest: {e}\n{text}"))
}

/// Creates `jobs` on queue `${NS}-<queue>`, [`SUBMITTERS`] at a time (their order among
/// themselves is not defined; a later call's jobs are all created after this call's).
async fn submit(env: &E2e, queue: &str, jobs: &[Submit]) {
    let api = env.jobs();
    futures::stream::iter(jobs.iter().map(|s| job_object(env, queue, s)))
        .map(|object| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &object)
                    .await
                    .unwrap_or_else(|e| panic!("submit {:?}: {e}", object.metadata.name))
            }
        })
        .buffer_unordered(SUBMITTERS)
        .collect::<Vec<_>>()
        .await;
}

/// Creates `jobs` one after the other, in order.
async fn submit_in_order(env: &E2e, queue: &str, jobs: &[Submit]) {
    for s in jobs {
        env.jobs()
            .create(&PostParams::default(), &job_object(env, queue, s))
            .await
            .unwrap_or_else(|e| panic!("submit {}: {e}", s.name));
    }
}

/// Every job of the namespace by name.
async fn jobs_by_name(env: &E2e) -> Option<BTreeMap<String, Job>> {
    let list = env.jobs().list(&ListParams::default()).await.ok()?;
    Some(
        list.items
            .into_iter()
            .map(|j| (j.metadata.name.clone().unwrap_or_default(), j))
            .collect(),
    )
}

/// Waits until every job of `names` is finished and asserts each SUCCEEDED.
async fn wait_all_succeeded(env: &E2e, names: &[String], limit: Duration) {
    let jobs = env
        .wait_until_for(
            &format!("{} jobs to finish", names.len()),
            limit,
            || async {
                let jobs = jobs_by_name(env).await?;
                names
                    .iter()
                    .all(|n| {
                        jobs.get(n)
                            .and_then(status_of)
                            .is_some_and(JobStatus::is_finished)
                    })
                    .then_some(jobs)
            },
        )
        .await;
    let failed: Vec<(&String, String)> = names
        .iter()
        .filter(|n| jobs.get(*n).and_then(status_of) != Some(JobStatus::Succeeded))
        .map(|n| (n, jobs.get(n).map(status_reason).unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "jobs that did not succeed: {failed:?}");
}

/// Waits until every job of `names` is RUNNABLE (and none has gone further).
async fn wait_all_runnable(env: &E2e, names: &[String]) {
    let jobs = env
        .wait_until(&format!("{} jobs to be RUNNABLE", names.len()), || async {
            let jobs = jobs_by_name(env).await?;
            names
                .iter()
                .all(|n| {
                    jobs.get(n)
                        .and_then(status_of)
                        .is_some_and(|s| s >= JobStatus::Runnable)
                })
                .then_some(jobs)
        })
        .await;
    let beyond: Vec<(&String, Option<JobStatus>)> = names
        .iter()
        .map(|n| (n, jobs.get(n).and_then(status_of)))
        .filter(|(_, s)| *s != Some(JobStatus::Runnable))
        .collect();
    assert!(
        beyond.is_empty(),
        "the set-up needs these jobs still waiting, but they went on: {beyond:?}"
    );
}

/// Waits until `count` jobs of `names` are RUNNING.
async fn wait_running(env: &E2e, names: &[String], count: usize) {
    env.wait_until(&format!("{count} jobs RUNNING"), || async {
        let jobs = jobs_by_name(env).await?;
        let running = names
            .iter()
            .filter(|n| jobs.get(*n).and_then(status_of) == Some(JobStatus::Running))
            .count();
        (running >= count).then_some(())
    })
    .await;
}

fn names(jobs: &[Submit]) -> Vec<String> {
    jobs.iter().map(|s| s.name.clone()).collect()
}

async fn queue_status(env: &E2e, queue: &str) -> Option<JobQueueStatus> {
    env.queues()
        .get_opt(&env.render(&format!("${{NS}}-{queue}")))
        .await
        .ok()
        .flatten()
        .and_then(|q| q.status)
}

async fn fair_share_status(env: &E2e, queue: &str) -> Option<FairShareStatus> {
    queue_status(env, queue).await.and_then(|s| s.fair_share)
}

/// Terminates `names` at once.
async fn terminate_all(env: &E2e, names: &[String]) {
    futures::future::join_all(
        names
            .iter()
            .map(|n| env.terminate(n, "released by the test", None)),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Runs: pods as the watch saw them
// ---------------------------------------------------------------------------------------------

/// One pod's life as the watch saw it.
#[derive(Clone, Debug)]
struct Run {
    job: String,
    /// The pod's share annotation (empty without one).
    share: String,
    /// Position of the pod's first observation among all observations: creation order.
    created: usize,
    /// First seen Running.
    start: Option<Duration>,
    /// First seen Succeeded, Failed or deleted.
    end: Option<Duration>,
}

/// The runs of every pod in `history`, in creation order.
fn runs_of(history: &[PodObservation]) -> Vec<Run> {
    let mut by_uid: BTreeMap<String, Run> = BTreeMap::new();
    for o in history {
        let run = by_uid.entry(o.uid.clone()).or_insert_with(|| Run {
            job: o.labels.get(LABEL_JOB_NAME).cloned().unwrap_or_default(),
            share: o
                .annotations
                .get(ANNOTATION_SHARE_IDENTIFIER)
                .cloned()
                .unwrap_or_default(),
            created: o.seq,
            start: None,
            end: None,
        });
        if run.start.is_none() && o.phase.as_deref() == Some("Running") && !o.deleted {
            run.start = Some(o.at);
        }
        if run.end.is_none() && o.ended() {
            run.end = Some(o.at);
        }
    }
    let mut runs: Vec<Run> = by_uid.into_values().collect();
    runs.sort_by_key(|r| r.created);
    runs
}

/// The seconds runs matching `pick` ran within [from, to] (a run not ended yet runs to `to`).
fn busy_seconds(runs: &[Run], pick: impl Fn(&Run) -> bool, from: Duration, to: Duration) -> f64 {
    runs.iter()
        .filter(|r| pick(r))
        .filter_map(|r| {
            let start = r.start?.max(from);
            let end = r.end.unwrap_or(to).min(to);
            (end > start).then(|| (end - start).as_secs_f64())
        })
        .sum()
}

/// The most runs matching `pick` running at once within [from, to].
fn max_concurrent(
    runs: &[Run],
    pick: impl Fn(&Run) -> bool,
    from: Duration,
    to: Duration,
) -> usize {
    let mut edges: Vec<(Duration, i64)> = Vec::new();
    for r in runs.iter().filter(|r| pick(r)) {
        let Some(start) = r.start else { continue };
        let end = r.end.unwrap_or(Duration::MAX);
        if end <= from || start >= to {
            continue;
        }
        edges.push((start.max(from), 1));
        edges.push((end.min(to), -1));
    }
    // Ends before starts at the same instant.
    edges.sort();
    let (mut now, mut most) = (0i64, 0i64);
    for (_, delta) in edges {
        now += delta;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Running counts per share every half second of [from, to], for failure messages.
fn timeline(runs: &[Run], shares: &[&str], from: Duration, to: Duration) -> String {
    let mut out = String::new();
    let mut at = from;
    while at < to {
        let counts: Vec<String> = shares
            .iter()
            .map(|share| {
                let n = runs
                    .iter()
                    .filter(|r| r.share == *share)
                    .filter(|r| r.start.is_some_and(|s| s <= at) && r.end.is_none_or(|e| e > at))
                    .count();
                format!("{share}={n}")
            })
            .collect();
        out.push_str(&format!(
            "{:>6.1}s {}\n",
            at.as_secs_f64(),
            counts.join(" ")
        ));
        at += Duration::from_millis(500);
    }
    out
}

fn of_share<'a>(share: &'a str) -> impl Fn(&Run) -> bool + 'a {
    move |r| r.share == share
}

/// The first and last start of the runs of `share`.
fn start_range(runs: &[Run], share: &str) -> (Duration, Duration) {
    let starts: Vec<Duration> = runs
        .iter()
        .filter(|r| r.share == share)
        .filter_map(|r| r.start)
        .collect();
    (
        *starts
            .iter()
            .min()
            .unwrap_or_else(|| panic!("no run of share {share} started")),
        *starts.iter().max().expect("a start"),
    )
}

/// The last end of the runs of `share`.
fn last_end(runs: &[Run], share: &str) -> Duration {
    runs.iter()
        .filter(|r| r.share == share)
        .filter_map(|r| r.end)
        .max()
        .unwrap_or_else(|| panic!("no run of share {share} ended"))
}

/// The jobs of the runs whose job is in `names`, in creation (placement) order.
fn creation_order(runs: &[Run], names: &[String]) -> Vec<String> {
    runs.iter()
        .filter(|r| names.contains(&r.job))
        .map(|r| r.job.clone())
        .collect()
}

/// Shares A and B on an 8-vCPU environment, ready for the ratio tests.
async fn two_share_environment(env: &E2e, decay: u32) {
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", CE_VCPUS),
        scheduling_policy("p", decay, 0, &[("a", 1.0), ("b", 0.25)]),
        fair_queue("q", &["ce"], "p", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", (CE_VCPUS / 2) as usize)
        .await;
    env.apply(&scripted_definition("one", "1", "1", "")).await;
}

/// B's fraction of the vCPU-seconds of A and B within [from, to].
fn b_fraction(runs: &[Run], from: Duration, to: Duration) -> (f64, f64, f64) {
    let a = busy_seconds(runs, of_share("a"), from, to);
    let b = busy_seconds(runs, of_share("b"), from, to);
    (b / (a + b), a, b)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Share A (weight 1.0) and B (0.25), 200 one-vCPU one-second jobs each, A submitted first, on
/// a saturated 8-vCPU environment: while both have RUNNABLE work, B runs 80 % ± 5 % of the
/// vCPU-seconds (loads meet at 1.0·rA = 0.25·rB, rA + rB = 8: rB = 6.4); afterwards A alone
/// gets all 8 vCPUs.
///
/// `shareDecaySeconds: 10`, small against the run (about a minute) but not 0: with 0 only the
/// vCPUs running now count, and 8 one-vCPU slots cannot split 6.4/1.6 — every freed slot goes
/// back to the share that had it, so the split stays at 6/2 (75 %). Usage (its recent average,
/// usage/D) lets B hold a seventh slot part of the time, which brings the average to 80 %. A's
/// head start (it has the environment alone until B's jobs are admitted, about a second) weighs
/// little against ten seconds of decay.
///
/// The window starts one job duration after B's first start (A's pods placed before B's jobs
/// were RUNNABLE must end first) and ends at B's last start (B has no RUNNABLE work after it).
#[tokio::test]
async fn a_share_weighted_a_quarter_gets_four_fifths_of_a_saturated_environment() {
    const PER_SHARE: usize = 200;
    let began = Instant::now();
    let env = E2e::start_with("ratio", options()).await;
    two_share_environment(&env, 10).await;
    let history = env.watch_pod_history();
    let a = batch("a", "a", PER_SHARE, "one");
    let b = batch("b", "b", PER_SHARE, "one");
    submit(&env, "q", &a).await;
    submit(&env, "q", &b).await;
    let all: Vec<String> = names(&a).into_iter().chain(names(&b)).collect();
    wait_all_succeeded(&env, &all, RUN_LIMIT).await;
    let runs = runs_of(&history.snapshot());

    let (b_first, b_last) = start_range(&runs, "b");
    let from = b_first + Duration::from_secs(1);
    assert!(
        b_last > from + Duration::from_secs(10),
        "a long enough window: {from:?}–{b_last:?}"
    );
    let (fraction, a_secs, b_secs) = b_fraction(&runs, from, b_last);
    eprintln!(
        "ratio: B {:.1} % of the vCPU-seconds over {:.1} s (A {a_secs:.1}, B {b_secs:.1})",
        fraction * 100.0,
        (b_last - from).as_secs_f64()
    );
    assert!(
        (0.75..=0.85).contains(&fraction),
        "B's share of vCPU-seconds while both are active: {:.1} % (A {a_secs:.1} s, B {b_secs:.1} s)\n{}",
        fraction * 100.0,
        timeline(&runs, &["a", "b"], from, b_last)
    );

    // A alone: from B's last end to A's last start.
    let alone_from = last_end(&runs, "b");
    let (_, a_last) = start_range(&runs, "a");
    assert!(a_last > alone_from, "A has work left after B");
    let most = max_concurrent(&runs, of_share("a"), alone_from, a_last);
    let mean = busy_seconds(&runs, of_share("a"), alone_from, a_last)
        / (a_last - alone_from).as_secs_f64();
    eprintln!(
        "ratio: A alone for {:.1} s: at most {most} running, {mean:.2} on average; test {:.1} s",
        (a_last - alone_from).as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    assert_eq!(most, CE_VCPUS as usize, "A alone gets every vCPU");
    env.finish().await;
}

/// `computeReservation: 50` and one active share: (50/100)^1 of the 8 vCPUs is held back, so A
/// never runs more than 4 jobs at once though it has 8 RUNNABLE; a second share's first job
/// then starts within a pass of its submission (A's jobs run 6 s: waiting for one of them to
/// end would take seconds), and with two active shares (0.5)^2 of 8 = 2 vCPUs stay free.
#[tokio::test]
async fn a_compute_reservation_holds_half_the_environment_for_a_new_share() {
    /// From B's submission to its pod running: a pass (100 ms), admission and the pod's start,
    /// with room for the latency harness's 50 ms writes.
    const WITHIN_A_PASS: Duration = Duration::from_secs(2);
    let env = E2e::start_with("reserve", options()).await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", CE_VCPUS),
        scheduling_policy("p", 0, 50, &[]),
        fair_queue("q", &["ce"], "p", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", (CE_VCPUS / 2) as usize)
        .await;
    env.apply(&scripted_definition("six", "1", "6", "")).await;
    let history = env.watch_pod_history();
    let zero = Instant::now();
    let a = batch("a", "a", 8, "six");
    submit(&env, "q", &a).await;
    wait_running(&env, &names(&a), 4).await;
    // B arrives while A's first four run.
    let b = batch("b", "b", 1, "six");
    let b_submitted = zero.elapsed();
    submit(&env, "q", &b).await;
    let all: Vec<String> = names(&a).into_iter().chain(names(&b)).collect();
    wait_all_succeeded(&env, &all, RUN_LIMIT).await;
    let runs = runs_of(&history.snapshot());

    let a_alone = max_concurrent(&runs, of_share("a"), Duration::ZERO, b_submitted);
    assert_eq!(
        a_alone, 4,
        "one active share: A runs exactly half the 8 vCPUs before B arrives"
    );
    let (b_start, _) = start_range(&runs, "b");
    let waited = b_start.saturating_sub(b_submitted);
    eprintln!("reserve: B's first job started {waited:?} after its submission");
    assert!(
        waited <= WITHIN_A_PASS,
        "B's first job started {waited:?} after its submission (at {b_submitted:?}):\n{}",
        timeline(
            &runs,
            &["a", "b"],
            Duration::ZERO,
            b_start + Duration::from_secs(1)
        )
    );
    let both_end = last_end(&runs, "b");
    let together = max_concurrent(&runs, |_| true, b_submitted, both_end);
    assert!(
        together <= 6,
        "two active shares: (0.5)^2 of 8 = 2 vCPUs stay free, but {together} jobs ran at once"
    );
    env.finish().await;
}

/// Two shares of equal weight, `shareDecaySeconds: 5`. Right after A ran the whole environment
/// for 5 s (usage/D ≈ 5 vCPUs), B's jobs take at least 6 of the first 8 places though A's
/// were submitted first; once both usages have decayed (the queue's status lists neither),
/// they start even: 4 and 4 of the first 8 places.
#[tokio::test]
async fn after_usage_decays_two_shares_start_even() {
    let env = E2e::start_with("decay", options()).await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", CE_VCPUS),
        scheduling_policy("p", 5, 0, &[("a", 1.0), ("b", 1.0)]),
        fair_queue("q", &["ce"], "p", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", (CE_VCPUS / 2) as usize)
        .await;
    env.apply(&format!(
        "{}{}{}",
        scripted_definition("heavy", "1", "5", ""),
        scripted_definition("follow", "1", "2", ""),
        scripted_definition("hold", "1", "600", "")
    ))
    .await;
    let history = env.watch_pod_history();

    // Heavy usage by A, then followers of A and B waiting behind it.
    let heavy = batch("heavy", "a", 8, "heavy");
    submit(&env, "q", &heavy).await;
    wait_running(&env, &names(&heavy), 8).await;
    let fa1 = batch("fa1", "a", 8, "follow");
    let fb1 = batch("fb1", "b", 8, "follow");
    submit(&env, "q", &fa1).await;
    submit(&env, "q", &fb1).await;
    let followers1: Vec<String> = names(&fa1).into_iter().chain(names(&fb1)).collect();
    wait_all_runnable(&env, &followers1).await;
    wait_all_succeeded(&env, &followers1, RUN_LIMIT).await;
    let first = creation_order(&runs_of(&history.snapshot()), &followers1);
    let b_first: usize = first
        .iter()
        .take(8)
        .filter(|n| n.starts_with("fb1"))
        .count();
    eprintln!(
        "decay: right after A's heavy usage, first 8 places: {:?}",
        &first[..8]
    );
    assert!(
        b_first >= 6,
        "right after A's heavy usage B takes at least 6 of the first 8 places: {:?}",
        &first[..8]
    );

    // Wait until neither share has usage left (the ledger drops a share below 1 vCPU-second).
    let ended = jiff::Timestamp::now();
    env.wait_until_for("the usage of a and b to decay", RUN_LIMIT, || async {
        let status = fair_share_status(&env, "q").await?;
        let fresh = status.updated_at.as_ref().is_some_and(|t| t.0 > ended);
        let decayed = status
            .shares
            .iter()
            .filter(|s| s.share_identifier == "a" || s.share_identifier == "b")
            .all(|s| s.usage_vcpu_seconds < 1.0);
        (fresh && decayed).then_some(())
    })
    .await;

    // A third share holds the environment while A and B queue up, then lets go at once.
    let holds = batch("hold", "z", 8, "hold");
    submit(&env, "q", &holds).await;
    wait_running(&env, &names(&holds), 8).await;
    let fa2 = batch("fa2", "a", 8, "follow");
    let fb2 = batch("fb2", "b", 8, "follow");
    submit(&env, "q", &fa2).await;
    submit(&env, "q", &fb2).await;
    let followers2: Vec<String> = names(&fa2).into_iter().chain(names(&fb2)).collect();
    wait_all_runnable(&env, &followers2).await;
    terminate_all(&env, &names(&holds)).await;
    wait_all_succeeded(&env, &followers2, RUN_LIMIT).await;
    let second = creation_order(&runs_of(&history.snapshot()), &followers2);
    let a_second = second
        .iter()
        .take(8)
        .filter(|n| n.starts_with("fa2"))
        .count();
    eprintln!(
        "decay: after the usage decayed, first 8 places: {:?}",
        &second[..8]
    );
    assert_eq!(
        a_second,
        4,
        "decayed usage: A and B share the first 8 places evenly: {:?}",
        &second[..8]
    );
    env.finish().await;
}

/// `team-*` weighs 0.25: `team-a` and `team-b` both run 4× the vCPUs of `other` (unlisted, 1.0)
/// — loads meet at rOther = 0.25·rTeamA = 0.25·rTeamB, so `other` gets 1/9 of the environment
/// and each team 4/9. Were the prefix ignored, each would get a third. `shareDecaySeconds: 10`
/// for the reason the ratio test gives: with 0, 8 slots split 1/4/3 for good (ties go to the
/// first identifier).
#[tokio::test]
async fn a_wildcard_entry_weighs_every_matching_share() {
    const PER_SHARE: usize = 60;
    let env = E2e::start_with("wildcard", options()).await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", CE_VCPUS),
        scheduling_policy("p", 10, 0, &[("team-*", 0.25)]),
        fair_queue("q", &["ce"], "p", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", (CE_VCPUS / 2) as usize)
        .await;
    env.apply(&scripted_definition("one", "1", "1", "")).await;
    let history = env.watch_pod_history();
    let other = batch("o", "other", PER_SHARE, "one");
    let team_a = batch("ta", "team-a", PER_SHARE, "one");
    let team_b = batch("tb", "team-b", PER_SHARE, "one");
    submit(&env, "q", &other).await;
    submit(&env, "q", &team_a).await;
    submit(&env, "q", &team_b).await;
    let all: Vec<String> = [&other, &team_a, &team_b]
        .into_iter()
        .flat_map(|b| names(b))
        .collect();
    wait_all_succeeded(&env, &all, RUN_LIMIT).await;
    let runs = runs_of(&history.snapshot());
    let firsts = ["other", "team-a", "team-b"].map(|s| start_range(&runs, s));
    let from = firsts.iter().map(|(f, _)| *f).max().expect("starts") + Duration::from_secs(1);
    let to = firsts[1].1.min(firsts[2].1);
    assert!(
        to > from + Duration::from_secs(5),
        "a long enough window: {from:?}–{to:?}"
    );
    let secs = ["other", "team-a", "team-b"].map(|s| busy_seconds(&runs, of_share(s), from, to));
    let total: f64 = secs.iter().sum();
    let fractions = secs.map(|s| s / total);
    eprintln!(
        "wildcard: over {:.1} s other {:.1} %, team-a {:.1} %, team-b {:.1} %",
        (to - from).as_secs_f64(),
        fractions[0] * 100.0,
        fractions[1] * 100.0,
        fractions[2] * 100.0
    );
    assert!(
        fractions[0] <= 0.2,
        "the unlisted share gets about 1/9, not {:.1} %",
        fractions[0] * 100.0
    );
    for (share, fraction) in [("team-a", fractions[1]), ("team-b", fractions[2])] {
        assert!(
            (0.35..=0.55).contains(&fraction),
            "{share} gets about 4/9 under team-*, not {:.1} %",
            fraction * 100.0
        );
    }
    env.finish().await;
}

/// Within one share: `schedulingPriorityOverride: 100` submitted late runs first, then the job
/// whose definition says `schedulingPriority: 50`, then the others in submission order (one job
/// at a time on a one-node environment).
#[tokio::test]
async fn scheduling_priority_reorders_jobs_within_a_share() {
    let env = E2e::start_with("priority", options()).await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", 2),
        scheduling_policy("p", 0, 0, &[]),
        fair_queue("q", &["ce"], "p", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    env.apply(&format!(
        "{}{}{}",
        scripted_definition("hold", "2", "600", ""),
        scripted_definition("quick", "2", "0.2", ""),
        scripted_definition("quick50", "2", "0.2", "schedulingPriority: 50\n")
    ))
    .await;
    let history = env.watch_pod_history();
    let blocker = vec![Submit::new("blocker", "hold", "s")];
    submit(&env, "q", &blocker).await;
    wait_running(&env, &names(&blocker), 1).await;
    let queued = vec![
        Submit::new("j0", "quick", "s"),
        Submit::new("j1", "quick", "s"),
        Submit::new("mid", "quick50", "s"),
        Submit::new("j2", "quick", "s"),
        Submit::new("urgent", "quick", "s").priority(100),
        Submit::new("j3", "quick", "s"),
    ];
    submit_in_order(&env, "q", &queued).await;
    wait_all_runnable(&env, &names(&queued)).await;
    terminate_all(&env, &names(&blocker)).await;
    wait_all_succeeded(&env, &names(&queued), RUN_LIMIT).await;
    let order = creation_order(&runs_of(&history.snapshot()), &names(&queued));
    assert_eq!(
        order,
        ["urgent", "mid", "j0", "j1", "j2", "j3"],
        "priority first (override, then definition), then submission order"
    );
    env.finish().await;
}

/// Shares A (1.0) and B (0.25) with `shareDecaySeconds: 20`; the operator is SIGKILLed while
/// both run. The new operator's first `status.fairShare` carries the usage the old one wrote,
/// decayed by the time between the two (not usage accrued from zero), and B still gets 80 %
/// ± 5 % of the vCPU-seconds after the restart.
#[tokio::test]
async fn an_operator_restart_keeps_the_usage_and_the_ratio() {
    const PER_SHARE: usize = 200;
    const DECAY: f64 = 20.0;
    let began = Instant::now();
    let mut env = E2e::start_with("restart", options()).await;
    two_share_environment(&env, 20).await;
    let history = env.watch_pod_history();
    let zero = Instant::now();
    let a = batch("a", "a", PER_SHARE, "one");
    let b = batch("b", "b", PER_SHARE, "one");
    submit(&env, "q", &a).await;
    submit(&env, "q", &b).await;
    let b_names = names(&b);
    env.wait_until_for("80 of B's jobs to succeed", RUN_LIMIT, || async {
        let jobs = jobs_by_name(&env).await?;
        let done = b_names
            .iter()
            .filter(|n| jobs.get(*n).and_then(status_of) == Some(JobStatus::Succeeded))
            .count();
        (done >= 80).then_some(())
    })
    .await;
    let before = fair_share_status(&env, "q")
        .await
        .expect("status.fairShare while both shares run");
    let usage = |s: &FairShareStatus, share: &str| {
        s.shares
            .iter()
            .find(|x| x.share_identifier == share)
            .map_or(0.0, |x| x.usage_vcpu_seconds)
    };
    let target = |s: &FairShareStatus, share: &str| {
        s.shares
            .iter()
            .find(|x| x.share_identifier == share)
            .map_or(0.0, |x| x.target_fraction)
    };
    assert_eq!(before.active_shares, 2, "{before:#?}");
    assert!(
        (before.max_vcpus - f64::from(CE_VCPUS)).abs() < 1e-9,
        "{before:#?}"
    );
    assert!((target(&before, "b") - 0.8).abs() < 1e-6, "{before:#?}");
    assert!((target(&before, "a") - 0.2).abs() < 1e-6, "{before:#?}");
    assert_eq!(
        before.scheduling_policy_name.as_deref(),
        Some(env.render("${NS}-p").as_str())
    );
    assert!(usage(&before, "b") > 0.0, "{before:#?}");

    env.kill_operator();
    let killed = jiff::Timestamp::now();
    let restarted = zero.elapsed();
    env.start_operator();
    let after = env
        .wait_until("the new operator's status.fairShare", || async {
            fair_share_status(&env, "q")
                .await
                .filter(|s| s.updated_at.as_ref().is_some_and(|t| t.0 > killed))
        })
        .await;
    let stamp = |s: &FairShareStatus| s.updated_at.as_ref().map(|t| t.0).expect("updatedAt");
    // Times have whole seconds: the two stamps are at most a second further apart than they
    // read, and a ledger recovered from a stamp cut to the second decays up to a second more.
    let apart = stamp(&after).duration_since(stamp(&before)).as_secs_f64();
    for share in ["a", "b"] {
        let (was, now) = (usage(&before, share), usage(&after, share));
        let floor = was * (-(apart + 2.0) / DECAY).exp();
        eprintln!(
            "restart: {share}'s usage {was:.1} before, {now:.1} after ({apart:.0} s later; at least {floor:.1})"
        );
        assert!(
            now >= floor,
            "{share}'s usage after the restart is {now:.1}, below {floor:.1} ({was:.1} decayed over {apart:.0} s): reset?\nbefore {before:#?}\nafter {after:#?}"
        );
    }
    // A ledger reset at the restart holds at most all 8 vCPUs accrued since: B's floor must lie
    // above that for the check to tell a reset.
    let from_zero = f64::from(CE_VCPUS) * DECAY * (1.0 - (-(apart + 1.0) / DECAY).exp());
    let b_floor = usage(&before, "b") * (-(apart + 2.0) / DECAY).exp();
    assert!(
        b_floor > from_zero,
        "B ran too little before the restart to tell a reset: {b_floor:.1} vs {from_zero:.1}"
    );

    let all: Vec<String> = names(&a).into_iter().chain(names(&b)).collect();
    wait_all_succeeded(&env, &all, RUN_LIMIT).await;
    let runs = runs_of(&history.snapshot());
    let (_, b_last) = start_range(&runs, "b");
    let resumed = runs
        .iter()
        .filter_map(|r| r.start)
        .filter(|s| *s > restarted)
        .min()
        .expect("jobs started after the restart");
    let from = resumed + Duration::from_secs(1);
    assert!(
        b_last > from + Duration::from_secs(5),
        "a long enough window after the restart: {from:?}–{b_last:?}"
    );
    let (b_first, _) = start_range(&runs, "b");
    let (early, _, _) = b_fraction(&runs, b_first + Duration::from_secs(1), restarted);
    let (fraction, a_secs, b_secs) = b_fraction(&runs, from, b_last);
    eprintln!(
        "restart: B {:.1} % before the restart, {:.1} % over {:.1} s after it; test {:.1} s",
        early * 100.0,
        fraction * 100.0,
        (b_last - from).as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        (0.75..=0.85).contains(&fraction),
        "B's share of vCPU-seconds after the restart: {:.1} % (A {a_secs:.1} s, B {b_secs:.1} s)\n{}",
        fraction * 100.0,
        timeline(&runs, &["a", "b"], from, b_last)
    );
    env.finish().await;
}

/// The jobs of `status.frontOfQueue`, once it lists exactly `expected` (as a set: it is then
/// computed from a pass that saw them all RUNNABLE).
async fn front_listing(env: &E2e, queue: &str, expected: &[String]) -> FrontOfQueue {
    let mut wanted: Vec<&String> = expected.iter().collect();
    wanted.sort();
    let deadline = Instant::now() + support::WAIT;
    let mut last = None;
    loop {
        if let Some(front) = queue_status(env, queue)
            .await
            .and_then(|s| s.front_of_queue)
        {
            let mut listed: Vec<&String> = front.jobs.iter().map(|j| &j.name).collect();
            listed.sort();
            if listed == wanted {
                return front;
            }
            last = Some(front);
        }
        assert!(
            Instant::now() < deadline,
            "status.frontOfQueue of {queue} never listed {expected:?}; last seen: {last:#?}\n{}",
            env.operator_log()
        );
        tokio::time::sleep(support::POLL).await;
    }
}

/// A FIFO queue and a one-share fair-share queue with priorities, each on a one-node environment
/// held by a blocker: `status.frontOfQueue` lists the waiting jobs in the order they then start
/// once the blocker is gone (FIFO: submission order; fair share: priority, then submission).
#[tokio::test]
async fn the_front_of_the_queue_is_the_order_in_which_jobs_start() {
    let env = E2e::start_with("front", options()).await;
    env.apply(&format!(
        "{}{}{}{}{}",
        compute_environment("cf", 2),
        compute_environment("cs", 2),
        job_queue("fifo", 10, &["cf"]),
        scheduling_policy("p", 0, 0, &[]),
        fair_queue("fair", &["cs"], "p", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-cf", 1).await;
    env.wait_compute_environment("${NS}-cs", 1).await;
    env.apply(&format!(
        "{}{}",
        scripted_definition("hold", "2", "600", ""),
        scripted_definition("quick", "2", "0.2", "")
    ))
    .await;
    let history = env.watch_pod_history();
    let blockers = vec![
        Submit::new("fifo-blocker", "hold", "s"),
        Submit::new("fair-blocker", "hold", "s"),
    ];
    submit(&env, "fifo", &blockers[..1]).await;
    submit(&env, "fair", &blockers[1..]).await;
    wait_running(&env, &names(&blockers), 2).await;

    // FIFO: names that are neither alphabetical nor reversed; no share (none is needed).
    let fifo: Vec<Submit> = [3, 0, 5, 1, 4, 2]
        .iter()
        .map(|i| Submit {
            share: None,
            ..Submit::new(&format!("f-{i}"), "quick", "")
        })
        .collect();
    let fair: Vec<Submit> = [0, 5, 0, 9, 5, 1]
        .iter()
        .enumerate()
        .map(|(i, &p)| Submit::new(&format!("s-{i}"), "quick", "s").priority(p))
        .collect();
    submit_in_order(&env, "fifo", &fifo).await;
    submit_in_order(&env, "fair", &fair).await;
    wait_all_runnable(&env, &names(&fifo)).await;
    wait_all_runnable(&env, &names(&fair)).await;
    let fifo_front = front_listing(&env, "fifo", &names(&fifo)).await;
    let fair_front = front_listing(&env, "fair", &names(&fair)).await;
    let listed = |f: &FrontOfQueue| f.jobs.iter().map(|j| j.name.clone()).collect::<Vec<_>>();
    assert_eq!(listed(&fifo_front), names(&fifo), "FIFO: submission order");
    assert_eq!(
        listed(&fair_front),
        ["s-3", "s-1", "s-4", "s-5", "s-0", "s-2"],
        "fair share, one share: priority, then submission order"
    );
    for entry in &fair_front.jobs {
        assert_eq!(entry.namespace, env.ns);
        assert_eq!(entry.share_identifier.as_deref(), Some("s"), "{entry:?}");
        assert!(entry.earliest_time_at_position.is_some(), "{entry:?}");
    }
    assert_eq!(
        fair_front
            .jobs
            .iter()
            .map(|j| j.scheduling_priority)
            .collect::<Vec<_>>(),
        [9, 5, 5, 1, 0, 0]
    );

    terminate_all(&env, &names(&blockers)).await;
    let waiting: Vec<String> = names(&fifo).into_iter().chain(names(&fair)).collect();
    wait_all_succeeded(&env, &waiting, RUN_LIMIT).await;
    let runs = runs_of(&history.snapshot());
    assert_eq!(
        creation_order(&runs, &names(&fifo)),
        listed(&fifo_front),
        "FIFO jobs start in the order the front listed"
    );
    assert_eq!(
        creation_order(&runs, &names(&fair)),
        listed(&fair_front),
        "fair-share jobs start in the order the front listed"
    );
    env.finish().await;
}

/// A job of 4 vCPUs on a fair-share queue over c5.large (2 vCPUs) nodes can never run: it stays
/// RUNNABLE with `MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT` while a job of the same share beside
/// it succeeds, and the queue's `jobStateTimeLimitActions` entry (600 s, AWS's minimum) cancels
/// it with AWS's reason text. The test moves the job's recorded clock (its Schedulable
/// condition's transition time) ten minutes back instead of waiting.
#[tokio::test]
async fn a_time_limit_action_cancels_a_job_that_can_never_run() {
    let env = E2e::start_with("timelimit", options()).await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", CE_VCPUS),
        scheduling_policy("p", 0, 0, &[]),
        fair_queue(
            "q",
            &["ce"],
            "p",
            &format!("jobStateTimeLimitActions:\n  - {{reason: \"{BLOCKED_REASON_JOB_RESOURCE_REQUIREMENT}\", state: RUNNABLE, maxTimeSeconds: 600, action: CANCEL}}\n")
        )
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", (CE_VCPUS / 2) as usize)
        .await;
    env.apply(&format!(
        "{}{}",
        scripted_definition("huge", "4", "1", ""),
        scripted_definition("fine", "1", "0.5", "")
    ))
    .await;
    submit_in_order(
        &env,
        "q",
        &[
            Submit::new("stuck", "huge", "s"),
            Submit::new("beside", "fine", "s"),
        ],
    )
    .await;
    let stuck = env
        .wait_for(
            &env.jobs(),
            "stuck",
            "RUNNABLE with the resource reason",
            |j| {
                status_of(j) == Some(JobStatus::Runnable)
                    && status_reason(j).starts_with(BLOCKED_REASON_JOB_RESOURCE_REQUIREMENT)
            },
        )
        .await;
    env.wait_job("beside", JobStatus::Succeeded).await;
    let still = env.jobs().get("stuck").await.expect("stuck");
    assert_eq!(
        status_of(&still),
        Some(JobStatus::Runnable),
        "not cancelled before its time: {:?}",
        status_reason(&still)
    );

    // Ten minutes later, as far as the recorded clock goes.
    env.backdate_schedulable(&stuck, 601).await;
    let cancelled = env.wait_job("stuck", JobStatus::Failed).await;
    assert_eq!(
        status_reason(&cancelled),
        format!("{STATUS_REASON_CANCELED_BY_TIME_LIMIT_PREFIX}{BLOCKED_REASON_JOB_RESOURCE_REQUIREMENT}")
    );
    env.finish().await;
}

/// AWS refuses a job without `shareIdentifier` on a fair-share queue: it ends FAILED saying so.
/// A `shareIdentifier` on a FIFO queue is ignored: the job runs, and the queue keeps no
/// fair-share status.
#[tokio::test]
async fn share_identifiers_are_required_on_fair_share_queues_and_ignored_on_fifo_ones() {
    let env = E2e::start_with("admission", options()).await;
    env.apply(&format!(
        "{}{}{}{}",
        compute_environment("ce", 2),
        scheduling_policy("p", 0, 0, &[]),
        fair_queue("fair", &["ce"], "p", ""),
        job_queue("fifo", 10, &["ce"])
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    env.apply(&scripted_definition("quick", "1", "0.2", ""))
        .await;
    submit_in_order(
        &env,
        "fair",
        &[Submit {
            share: None,
            ..Submit::new("unshared", "quick", "")
        }],
    )
    .await;
    submit_in_order(&env, "fifo", &[Submit::new("shared", "quick", "x")]).await;
    let refused = env.wait_job("unshared", JobStatus::Failed).await;
    let reason = status_reason(&refused);
    assert!(
        reason.contains("shareIdentifier") && reason.contains(&env.render("${NS}-p")),
        "the reason names the missing shareIdentifier and the policy: {reason:?}"
    );
    assert!(
        refused
            .status
            .as_ref()
            .is_some_and(|s| s.attempts.is_empty()),
        "it never ran"
    );
    env.wait_job("shared", JobStatus::Succeeded).await;
    let fifo = queue_status(&env, "fifo").await.expect("FIFO queue status");
    assert!(
        fifo.fair_share.is_none(),
        "a FIFO queue keeps no usage: {:?}",
        fifo.fair_share
    );
    env.finish().await;
}

/// Waits until `status.fairShare` of queue `${NS}-<queue>` lists `share` with `weight`.
async fn wait_share_weight(env: &E2e, queue: &str, share: &str, weight: f64) {
    let deadline = Instant::now() + support::WAIT;
    loop {
        let status = fair_share_status(env, queue).await;
        if share_weight(status.as_ref(), share) == Some(weight) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status.fairShare of {queue} never gave {share} weight {weight}; last seen: {status:#?}\n{}",
            env.operator_log()
        );
        tokio::time::sleep(support::POLL).await;
    }
}

/// The weight `status` lists for `share`.
fn share_weight(status: Option<&FairShareStatus>, share: &str) -> Option<f64> {
    status?
        .shares
        .iter()
        .find(|s| s.share_identifier == share)
        .map(|s| s.weight_factor)
}

/// An idle operator leaves a queue-status round out when nothing the round reads changed since
/// a round whose writes all succeeded — never after a write that failed: a policy change whose
/// status write the API server refused reaches the queue's `status.fairShare` once writes are
/// accepted again, with nothing else changing meanwhile (a job waits behind a blocker; no usage
/// kept: shareDecaySeconds 0).
#[tokio::test]
async fn an_idle_operator_writes_a_refused_queue_status_once_the_api_server_accepts_it() {
    if support::skip_on_real_cluster(
        "an_idle_operator_writes_a_refused_queue_status_once_the_api_server_accepts_it",
    ) {
        return;
    }
    // Rounds every second (`options`): the idle wait spans several.
    const IDLE: Duration = Duration::from_secs(4);
    const PROMPTLY: Duration = Duration::from_secs(10);
    let env = E2e::start_with("idle-status", options()).await;
    env.apply(&format!(
        "{}{}{}",
        compute_environment("ce", 2),
        scheduling_policy("p", 0, 0, &[("a", 1.0)]),
        fair_queue("q", &["ce"], "p", "")
    ))
    .await;
    env.wait_compute_environment("${NS}-ce", 1).await;
    env.apply(&scripted_definition("hold", "2", "600", ""))
        .await;
    let blocker = vec![Submit::new("blocker", "hold", "a")];
    let waiting = vec![Submit::new("waits", "hold", "a")];
    submit(&env, "q", &blocker).await;
    wait_running(&env, &names(&blocker), 1).await;
    submit(&env, "q", &waiting).await;
    wait_all_runnable(&env, &names(&waiting)).await;
    front_listing(&env, "q", &names(&waiting)).await;
    wait_share_weight(&env, "q", "a", 1.0).await;

    let sim = env.sim_cluster().expect("simulated cluster");
    sim.faults().set(barge_sim::apiserver::faults::FaultConfig {
        error_rate: 1.0,
        error_codes: vec![500],
        verbs: vec!["patch".into()],
        resources: vec!["jobqueues/status".into()],
        ..Default::default()
    });
    env.apply(&scheduling_policy("p", 0, 0, &[("a", 0.5)]))
        .await;
    tokio::time::sleep(IDLE).await;
    assert_eq!(
        share_weight(fair_share_status(&env, "q").await.as_ref(), "a"),
        Some(1.0),
        "no queue status is written while the API server refuses it"
    );
    sim.faults().clear();
    let cleared = Instant::now();
    wait_share_weight(&env, "q", "a", 0.5).await;
    assert!(
        cleared.elapsed() < PROMPTLY,
        "the new weight was written {:?} after the API server accepted writes again",
        cleared.elapsed()
    );
    let all: Vec<String> = names(&blocker).into_iter().chain(names(&waiting)).collect();
    terminate_all(&env, &all).await;
    env.finish().await;
}
