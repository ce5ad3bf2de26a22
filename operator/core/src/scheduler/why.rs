//! Why a RUNNABLE workload waits (`barge why`), from the same snapshot and pass result the
//! scheduler decides on. Pure: the caller builds the [`Snapshot`] exactly as the scheduling loop
//! does, runs [`schedule`](super::schedule), and asks [`explain`] about one workload.
//!
//! The explanation has four parts:
//! 1. **the pass's verdict**: units placed now, and the [`Unplaced`] verdict of the rest (its
//!    message and AWS-style status reason);
//! 2. **position**: where the workload's first unit stands in its queue's order
//!    ([`queue_front`]: FIFO, or the fair-share merge given the usage now) — units and jobs
//!    ahead of it;
//! 3. **share** (fair-share queues): the job's share, its weight, running vCPUs and decayed
//!    usage, its target fraction and the fraction of the queue's running vCPUs it holds; over
//!    its target, the shares with a lower load go first; and the compute reservation when it
//!    leaves less room than the next unit needs;
//! 4. **each compute environment of the queue**, in `computeEnvironmentOrder`, why the unit
//!    does not fit there now: missing, DISABLED, INVALID; no instance type could ever take it,
//!    its request above `maxvCpus`; in budget mode the vCPU budget left; else, over its nodes,
//!    how many are not Ready, of another instance type, taken by a multi-node job, too small
//!    ever, and short now of CPU, memory, GPUs or pod slots (free room counts what this pass
//!    placed on them), with the nodes starting and whether the pool may still grow under
//!    `maxvCpus` (allocated vCPUs plus the smallest instance type that could take the unit).

use super::fair_share::{
    queue_front, queue_max_milli_cpu, reservation, share_of, share_views, step_milli_cpu,
    Reservation, ShareView,
};
use super::{EnvironmentSpec, PassResult, QueueSpec, Snapshot, Units, Unplaced, Workload};
use crate::resources::Resources;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Above this fraction of its target a share counts as over target (rounding of running vCPUs).
const OVER_TARGET_SLACK: f64 = 1e-9;

/// Why one workload waits.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub job: String,
    pub queue: String,
    /// What one unit (pod) asks for (a gang: its main node).
    pub request: Resources,
    /// Units (pods; a gang's nodes) of the workload.
    pub units: u64,
    /// Units the pass places now.
    pub placed_now: u64,
    /// The pass's verdict for the rest (None: everything is placed, or nothing is left).
    pub verdict: Option<Verdict>,
    /// Its place in the queue's order (None: its queue is not in the snapshot).
    pub position: Option<Position>,
    /// Fair-share queues: the job's share.
    pub share: Option<ShareReport>,
    /// One per compute environment of the queue, in order.
    pub environments: Vec<EnvironmentReport>,
}

/// The pass's verdict, as the job's condition would show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// The condition reason (`BlockedKind`), None for plain waiting for capacity.
    pub kind: Option<String>,
    pub status_reason: Option<String>,
    pub message: String,
}

/// Where the workload's first unit stands in its queue's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// Units tried before it (0: it is first in line).
    pub units_ahead: u64,
    /// Other jobs with units before it.
    pub jobs_ahead: u64,
    /// RUNNABLE units of the whole queue.
    pub queue_units: u64,
}

/// The job's share in a fair-share queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareReport {
    pub share: String,
    pub weight_factor: f64,
    pub running_vcpus: f64,
    /// Decayed usage, vCPU-seconds.
    pub usage_vcpu_seconds: f64,
    /// Its fraction of the queue's compute, given the active shares' weights.
    pub target_fraction: f64,
    /// Its fraction of the queue's running vCPUs now (0 when nothing runs).
    pub running_fraction: f64,
    /// It holds more than its target.
    pub over_target: bool,
    /// `weightFactor × (running vCPUs + usage/D)`: lower goes first.
    pub load: f64,
    /// Active shares with RUNNABLE work and a lower load: they go before it.
    pub shares_ahead: Vec<String>,
    /// The compute reservation, when the policy has one.
    pub reservation: Option<ReservationReport>,
}

/// A queue's compute reservation as it stands for the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationReport {
    pub max_milli_cpu: i64,
    pub reserved_milli_cpu: i64,
    pub running_milli_cpu: i64,
    pub active_shares: usize,
    /// Millicpu the active shares may still take once this pass's placements are counted.
    pub room_milli_cpu: i64,
    /// The next unit asks for more than that room.
    pub holds_back: bool,
}

/// Why the workload does not fit in one compute environment now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentReport {
    pub name: String,
    /// The blocker, first the one that decides.
    pub blocker: EnvironmentBlocker,
    /// Nodes that are starting (booting, or planned and not created yet).
    pub starting_nodes: u32,
    /// The pool's growth under `maxvCpus` (managed environments with known shapes).
    pub growth: Option<Growth>,
}

/// What keeps a unit out of one environment.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum EnvironmentBlocker {
    /// The queue names an environment that does not exist.
    Missing,
    Disabled,
    Invalid,
    /// Multi-node jobs do not run on SPOT environments.
    GangOnSpot,
    /// Multi-node jobs need nodes Barge reserves: not in budget mode.
    GangInBudgetMode,
    /// No instance type of the environment can ever take the unit.
    NoInstanceTypeFits {
        /// The instance type the job asks for, when the environment has none of it.
        wanted_type: Option<String>,
        /// The largest allocatable of its shapes, field by field.
        largest: Resources,
    },
    /// The unit asks for more CPU than the environment's `maxvCpus`.
    ExceedsMaxvCpus {
        max_milli_cpu: i64,
    },
    /// Budget mode: what is left of the vCPU budget is less than the unit's CPU.
    BudgetExhausted {
        left_milli_cpu: i64,
    },
    /// Budget mode with room: the pass would admit the unit there (it waits for its turn).
    BudgetRoom {
        left_milli_cpu: i64,
    },
    /// Node mode: what its nodes say.
    Nodes(NodeCounts),
}

/// The nodes of one environment, judged for the unit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    pub nodes: u32,
    /// Not Ready, cordoned or being deleted.
    pub not_schedulable: u32,
    /// Not of the instance type the job asks for.
    pub other_instance_type: u32,
    /// Running (or reserved for, or placed by this pass for) a multi-node job: single tenant.
    pub exclusive: u32,
    /// Multi-node jobs: nodes with other Barge pods (a gang member needs a node of its own).
    pub busy: u32,
    /// Their allocatable can never hold the unit.
    pub too_small: u32,
    /// Nodes that could hold it once work ends, short now of: CPU …
    pub short_of_cpu: u32,
    /// … memory …
    pub short_of_memory: u32,
    /// … GPUs …
    pub short_of_gpus: u32,
    /// … pod slots.
    pub short_of_pods: u32,
    /// Nodes with room now that the pass did not use (held for a multi-node job waiting ahead,
    /// or taken in this pass by work the order put first).
    pub room_now: u32,
    /// The most free room of any node that could hold the unit, field by field.
    pub most_free: Resources,
}

/// Whether a managed pool may add a node for the unit under `maxvCpus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Growth {
    pub max_milli_cpu: i64,
    /// Allocatable CPU of the environment's nodes (every node counts against `maxvCpus`).
    pub allocated_milli_cpu: i64,
    /// CPU of the smallest instance type that could take the unit (None: none could).
    pub smallest_fit_milli_cpu: Option<i64>,
    /// Adding that node would go over `maxvCpus`.
    pub at_max: bool,
}

/// Explains workload `w` of `snapshot` given the pass's `result` (see the module docs).
pub fn explain(snapshot: &Snapshot, result: &PassResult, w: usize) -> Explanation {
    let workload = &snapshot.workloads[w];
    let verdict = result.verdicts.get(w);
    let queue = snapshot.queues.iter().find(|q| q.name == workload.queue);
    let placed_now = verdict.map_or(0, |v| v.placed);
    let position = queue.map(|q| position(snapshot, q, w));
    let share = queue.and_then(|q| share_report(snapshot, result, q, w));
    let environments = queue
        .map(|q| {
            q.environments
                .iter()
                .map(|name| environment_report(snapshot, result, workload, name))
                .collect()
        })
        .unwrap_or_default();
    Explanation {
        job: workload.job.to_string(),
        queue: workload.queue.to_string(),
        request: workload.request,
        units: workload.units.count(),
        placed_now,
        verdict: verdict
            .and_then(|v| v.unplaced.as_ref())
            .map(|u| verdict_of(u, &workload.queue)),
        position,
        share,
        environments,
    }
}

fn verdict_of(unplaced: &Unplaced, queue: &str) -> Verdict {
    Verdict {
        kind: unplaced.kind().map(|k| format!("{k:?}")),
        status_reason: unplaced.status_reason(),
        message: unplaced.message(queue),
    }
}

/// Units and jobs before `w`'s first unit in the queue's order.
fn position(snapshot: &Snapshot, queue: &QueueSpec, w: usize) -> Position {
    let queue_units: u64 = snapshot
        .workloads
        .iter()
        .filter(|x| x.queue == queue.name)
        .map(|x| x.units.count())
        .sum();
    let limit = usize::try_from(queue_units).unwrap_or(usize::MAX);
    let front = queue_front(snapshot, queue, limit);
    let own = &snapshot.workloads[w].job;
    let at = front.iter().position(|e| e.workload == w);
    let ahead = &front[..at.unwrap_or(front.len())];
    let jobs: HashSet<&super::JobKey> = ahead
        .iter()
        .map(|e| &snapshot.workloads[e.workload].job)
        .filter(|j| *j != own)
        .collect();
    Position {
        units_ahead: ahead.len() as u64,
        jobs_ahead: jobs.len() as u64,
        queue_units,
    }
}

/// The job's share, for a fair-share queue.
fn share_report(
    snapshot: &Snapshot,
    result: &PassResult,
    queue: &QueueSpec,
    w: usize,
) -> Option<ShareReport> {
    let fair = queue.fair_share.as_ref()?;
    let members: Vec<usize> = snapshot
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, x)| x.queue == queue.name)
        .map(|(i, _)| i)
        .collect();
    let views = share_views(fair, &snapshot.workloads, &members);
    let workload = &snapshot.workloads[w];
    let own_share = share_of(workload);
    let own: &ShareView = views.iter().find(|v| v.share == own_share)?;
    let total_running: i64 = views.iter().map(|v| v.running_milli_cpu).sum();
    let running_fraction = if total_running > 0 {
        own.running_milli_cpu as f64 / total_running as f64
    } else {
        0.0
    };
    let shares_ahead = views
        .iter()
        .filter(|v| v.share != own.share && v.runnable_units > 0 && v.load < own.load)
        .map(|v| v.share.clone())
        .collect();
    let reservation_report = (fair.policy.compute_reservation > 0).then(|| {
        let r: Reservation = reservation(fair, &views, queue_max_milli_cpu(snapshot, queue));
        let placed_here: i64 = result
            .placements
            .iter()
            .filter(|p| snapshot.workloads[p.workload].queue == queue.name)
            .map(|p| unit_request(&snapshot.workloads[p.workload], p.node_index).milli_cpu)
            .sum();
        // A newcomer that placed nothing in this pass may start in the reserve.
        let placed_for_share = result
            .placements
            .iter()
            .filter(|p| {
                let w = &snapshot.workloads[p.workload];
                w.queue == queue.name && share_of(w) == own.share
            })
            .count();
        let newcomer_now = own.is_newcomer() && placed_for_share == 0;
        let room = r
            .room_for(newcomer_now)
            .map_or(i64::MAX, |room| (room - placed_here).max(0));
        ReservationReport {
            max_milli_cpu: r.max_milli_cpu,
            reserved_milli_cpu: r.reserved_milli_cpu,
            running_milli_cpu: r.running_milli_cpu,
            active_shares: r.active_shares,
            room_milli_cpu: room,
            holds_back: r.compute_reservation > 0 && step_milli_cpu(workload) > room,
        }
    });
    Some(ShareReport {
        share: own.share.clone(),
        weight_factor: own.weight_factor,
        running_vcpus: own.running_milli_cpu as f64 / 1000.0,
        usage_vcpu_seconds: own.usage_vcpu_seconds,
        target_fraction: own.target_fraction,
        running_fraction,
        over_target: total_running > 0
            && running_fraction > own.target_fraction + OVER_TARGET_SLACK,
        load: own.load,
        shares_ahead,
        reservation: reservation_report,
    })
}

/// What one unit of `workload` asks for: a gang member's own request, else the workload's.
fn unit_request(workload: &Workload, node_index: Option<u32>) -> Resources {
    match (&workload.units, node_index) {
        (Units::Gang(gang), Some(i)) => gang
            .members
            .get(i as usize)
            .map_or(workload.request, |m| m.request),
        _ => workload.request,
    }
}

/// Why `workload`'s unit does not fit in environment `name` now.
fn environment_report(
    snapshot: &Snapshot,
    result: &PassResult,
    workload: &Workload,
    name: &str,
) -> EnvironmentReport {
    let Some(env) = snapshot.environments.iter().find(|e| e.name == name) else {
        return EnvironmentReport {
            name: name.to_string(),
            blocker: EnvironmentBlocker::Missing,
            starting_nodes: 0,
            growth: None,
        };
    };
    let request = workload.request;
    let wanted_type = workload.constraints.instance_type.as_deref();
    let growth = growth(snapshot, env, &request, wanted_type);
    let blocker = environment_blocker(snapshot, result, workload, env);
    EnvironmentReport {
        name: name.to_string(),
        blocker,
        starting_nodes: env.starting_nodes,
        growth,
    }
}

fn environment_blocker(
    snapshot: &Snapshot,
    result: &PassResult,
    workload: &Workload,
    env: &EnvironmentSpec,
) -> EnvironmentBlocker {
    let request = workload.request;
    let wanted_type = workload.constraints.instance_type.as_deref();
    let gang = matches!(workload.units, Units::Gang(_));
    if !env.enabled {
        return EnvironmentBlocker::Disabled;
    }
    if !env.valid {
        return EnvironmentBlocker::Invalid;
    }
    if gang && env.spot {
        return EnvironmentBlocker::GangOnSpot;
    }
    if gang && env.budget_milli_cpu.is_some() {
        return EnvironmentBlocker::GangInBudgetMode;
    }
    if let Some(shapes) = &env.shapes {
        let fits = |s: &&super::NodeShape| {
            wanted_type.is_none_or(|t| s.instance_type == t) && request.fits_in(&s.allocatable)
        };
        if !shapes.iter().any(|s| fits(&s)) {
            let offers_type =
                wanted_type.is_none_or(|t| shapes.iter().any(|s| s.instance_type == t));
            return EnvironmentBlocker::NoInstanceTypeFits {
                wanted_type: (!offers_type).then(|| wanted_type.unwrap_or_default().to_string()),
                largest: shapes
                    .iter()
                    .fold(Resources::ZERO, |acc, s| acc.max_each(&s.allocatable)),
            };
        }
    }
    if let Some(max) = env.max_milli_cpu {
        if request.milli_cpu > max {
            return EnvironmentBlocker::ExceedsMaxvCpus { max_milli_cpu: max };
        }
    }
    if let Some(budget) = env.budget_milli_cpu {
        let placed: i64 = result
            .placements
            .iter()
            .filter(|p| p.environment == env.name)
            .map(|p| unit_request(&snapshot.workloads[p.workload], p.node_index).milli_cpu)
            .sum();
        let left = (budget - placed).max(0);
        return if request.milli_cpu > left {
            EnvironmentBlocker::BudgetExhausted {
                left_milli_cpu: left,
            }
        } else {
            EnvironmentBlocker::BudgetRoom {
                left_milli_cpu: left,
            }
        };
    }
    EnvironmentBlocker::Nodes(node_counts(snapshot, result, workload, env))
}

/// The environment's nodes judged for the unit, with this pass's placements counted.
fn node_counts(
    snapshot: &Snapshot,
    result: &PassResult,
    workload: &Workload,
    env: &EnvironmentSpec,
) -> NodeCounts {
    let request = workload.request;
    let wanted_type = workload.constraints.instance_type.as_deref();
    let gang = matches!(workload.units, Units::Gang(_));
    let mut placed_on: HashMap<&str, (Resources, bool)> = HashMap::new();
    for p in &result.placements {
        if let Some(node) = p.node.as_deref() {
            let entry = placed_on.entry(node).or_default();
            entry.0 = entry
                .0
                .saturating_add(&unit_request(&snapshot.workloads[p.workload], p.node_index));
            entry.1 |= p.node_index.is_some();
        }
    }
    let mut counts = NodeCounts::default();
    for node in snapshot
        .nodes
        .iter()
        .filter(|n| n.environment.as_deref() == Some(env.name.as_str()))
    {
        counts.nodes += 1;
        let (placed, gang_placed) = placed_on
            .get(node.name.as_str())
            .copied()
            .unwrap_or_default();
        if !node.schedulable {
            counts.not_schedulable += 1;
        } else if wanted_type.is_some_and(|t| node.instance_type.as_deref() != Some(t)) {
            counts.other_instance_type += 1;
        } else if node.exclusive || gang_placed {
            counts.exclusive += 1;
        } else if !request.fits_in(&node.allocatable) {
            counts.too_small += 1;
        } else if gang && (node.barge_pods > 0 || !placed.is_zero()) {
            counts.busy += 1;
        } else {
            let free = node
                .allocatable
                .saturating_sub(&node.used)
                .saturating_sub(&placed)
                .clamp_non_negative();
            counts.most_free = counts.most_free.max_each(&free);
            if request.fits_in(&free) {
                counts.room_now += 1;
            }
            counts.short_of_cpu += u32::from(request.milli_cpu > free.milli_cpu);
            counts.short_of_memory += u32::from(request.memory_mib > free.memory_mib);
            counts.short_of_gpus += u32::from(request.gpus > free.gpus);
            counts.short_of_pods += u32::from(request.pods > free.pods);
        }
    }
    counts
}

/// Whether a managed pool may add a node for a unit of `request` under its `maxvCpus`.
fn growth(
    snapshot: &Snapshot,
    env: &EnvironmentSpec,
    request: &Resources,
    wanted_type: Option<&str>,
) -> Option<Growth> {
    let max = env.max_milli_cpu?;
    let shapes = env.shapes.as_ref()?;
    let allocated: i64 = snapshot
        .nodes
        .iter()
        .filter(|n| n.environment.as_deref() == Some(env.name.as_str()))
        .map(|n| n.allocatable.milli_cpu.max(0))
        .sum();
    let smallest = shapes
        .iter()
        .filter(|s| {
            wanted_type.is_none_or(|t| s.instance_type == t) && request.fits_in(&s.allocatable)
        })
        .map(|s| s.allocatable.milli_cpu)
        .min();
    Some(Growth {
        max_milli_cpu: max,
        allocated_milli_cpu: allocated,
        smallest_fit_milli_cpu: smallest,
        at_max: smallest.is_none_or(|s| allocated.saturating_add(s) > max),
    })
}

impl Explanation {
    /// The explanation as text, one finding per line.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("blocker: {}", self.blocker())];
        match (&self.verdict, self.placed_now) {
            (None, placed) if placed > 0 => out.push(format!(
                "the scheduler would place it now ({placed} of {} units): it waits for the next pass",
                self.units
            )),
            (None, _) => out.push("nothing left to place".to_string()),
            (Some(v), placed) => {
                let mut line = format!("scheduler: {}", v.message);
                if let Some(reason) = &v.status_reason {
                    line.push_str(&format!(" [{reason}]"));
                }
                if placed > 0 {
                    line.push_str(&format!(" ({placed} of {} units placed now)", self.units));
                }
                out.push(line);
            }
        }
        if let Some(p) = &self.position {
            out.push(if p.units_ahead == 0 {
                format!(
                    "position: first in line in queue {} ({} RUNNABLE)",
                    self.queue,
                    plural(p.queue_units, "unit")
                )
            } else {
                format!(
                    "position: {} of {} ahead of it in queue {} ({} RUNNABLE)",
                    plural(p.units_ahead, "unit"),
                    plural(p.jobs_ahead, "other job"),
                    self.queue,
                    plural(p.queue_units, "unit")
                )
            });
        }
        if let Some(s) = &self.share {
            out.push(format!(
                "share {:?}: weight {}, running {} vCPUs ({:.0}% of the queue's running vCPUs), usage {:.0} vCPU-seconds, target {:.0}%{}",
                s.share,
                s.weight_factor,
                s.running_vcpus,
                s.running_fraction * 100.0,
                s.usage_vcpu_seconds,
                s.target_fraction * 100.0,
                if s.over_target { " — over its target" } else { "" }
            ));
            if !s.shares_ahead.is_empty() {
                out.push(format!(
                    "shares with a lower load go first: {}",
                    s.shares_ahead.join(", ")
                ));
            }
            if let Some(r) = &s.reservation {
                if r.holds_back {
                    out.push(format!(
                        "compute reservation: {} of the queue's {} vCPUs are held back for shares not active yet ({} active); {}m CPU left for active shares",
                        vcpus(r.reserved_milli_cpu),
                        vcpus(r.max_milli_cpu),
                        r.active_shares,
                        r.room_milli_cpu
                    ));
                }
            }
        }
        out.push(format!("request: {} per pod", self.request));
        for e in &self.environments {
            out.push(format!("compute environment {}: {}", e.name, e.describe()));
        }
        out
    }

    /// The one thing that decides, in order: a verdict the job's condition shows (queue or
    /// environments unusable, can never run, no room soon, strict FIFO); nothing (placed now);
    /// the compute reservation; its share over target; work ahead of it; no room now.
    pub fn blocker(&self) -> String {
        if let Some(v) = self.verdict.as_ref().filter(|v| v.kind.is_some()) {
            return v.message.clone();
        }
        if self.verdict.is_none() {
            return "none: the scheduler would place it in its next pass".to_string();
        }
        if let Some(share) = &self.share {
            if share.reservation.as_ref().is_some_and(|r| r.holds_back) {
                return format!(
                    "the compute reservation of queue {}: the room left is held back for shares not active yet",
                    self.queue
                );
            }
            if share.over_target {
                return format!(
                    "share {:?} is over its target: it runs {:.0}% of the queue's vCPUs, its target is {:.0}%",
                    share.share,
                    share.running_fraction * 100.0,
                    share.target_fraction * 100.0
                );
            }
        }
        let room = format!(
            "no compute environment of its queue has room for it now ({})",
            self.environments
                .iter()
                .map(|e| format!("{}: {}", e.name, e.gist()))
                .collect::<Vec<_>>()
                .join("; ")
        );
        match &self.position {
            Some(p) if p.units_ahead > 0 => format!(
                "{} ahead of it in queue {}, and {room}",
                plural(p.units_ahead, "unit"),
                self.queue
            ),
            _ => room,
        }
    }
}

/// "1 unit", "2 units".
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

impl EnvironmentReport {
    /// A few words on why the unit does not fit there now: the resources short on its nodes,
    /// and whether the pool is at `maxvCpus`, starting nodes or may add one.
    pub fn gist(&self) -> String {
        let EnvironmentBlocker::Nodes(c) = &self.blocker else {
            return self.describe();
        };
        let mut parts = Vec::new();
        let short: Vec<&str> = [
            (c.short_of_cpu, "cpu"),
            (c.short_of_memory, "memory"),
            (c.short_of_gpus, "GPUs"),
            (c.short_of_pods, "pod slots"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(_, what)| *what)
        .collect();
        if !short.is_empty() {
            parts.push(format!("short of {}", short.join(" and ")));
        } else if c.nodes == 0 {
            parts.push("no nodes".to_string());
        } else if c.room_now > 0 {
            parts.push("room taken by work ahead".to_string());
        } else {
            parts.push("no node that could take it".to_string());
        }
        if self.starting_nodes > 0 {
            parts.push(format!(
                "{} starting",
                plural(u64::from(self.starting_nodes), "node")
            ));
        }
        match &self.growth {
            Some(g) if g.at_max => parts.push("at maxvCpus".to_string()),
            Some(_) => parts.push("below maxvCpus".to_string()),
            None => {}
        }
        parts.join(", ")
    }

    /// One line on why the unit does not fit there now.
    pub fn describe(&self) -> String {
        let mut text = match &self.blocker {
            EnvironmentBlocker::Missing => "does not exist".to_string(),
            EnvironmentBlocker::Disabled => "DISABLED".to_string(),
            EnvironmentBlocker::Invalid => "INVALID".to_string(),
            EnvironmentBlocker::GangOnSpot => "SPOT: multi-node jobs do not run there".to_string(),
            EnvironmentBlocker::GangInBudgetMode => {
                "binds through the kube-scheduler: multi-node jobs need reserved nodes".to_string()
            }
            EnvironmentBlocker::NoInstanceTypeFits {
                wanted_type: Some(t),
                ..
            } => format!("can never run it: it offers no instance type {t}"),
            EnvironmentBlocker::NoInstanceTypeFits { largest, .. } => format!(
                "can never run it: no instance type is big enough (largest: {largest})"
            ),
            EnvironmentBlocker::ExceedsMaxvCpus { max_milli_cpu } => format!(
                "can never run it: it asks for more CPU than maxvCpus {}",
                vcpus(*max_milli_cpu)
            ),
            EnvironmentBlocker::BudgetExhausted { left_milli_cpu } => format!(
                "its vCPU budget is used up ({left_milli_cpu}m CPU left)"
            ),
            EnvironmentBlocker::BudgetRoom { left_milli_cpu } => format!(
                "has room in its vCPU budget ({left_milli_cpu}m CPU left): the job waits for its turn"
            ),
            EnvironmentBlocker::Nodes(c) => c.describe(),
        };
        let never = matches!(
            self.blocker,
            EnvironmentBlocker::Missing
                | EnvironmentBlocker::Disabled
                | EnvironmentBlocker::Invalid
                | EnvironmentBlocker::GangOnSpot
                | EnvironmentBlocker::GangInBudgetMode
                | EnvironmentBlocker::NoInstanceTypeFits { .. }
                | EnvironmentBlocker::ExceedsMaxvCpus { .. }
        );
        if never {
            return text;
        }
        if self.starting_nodes > 0 {
            text.push_str(&format!(
                "; {} starting",
                plural(u64::from(self.starting_nodes), "node")
            ));
        }
        if let Some(g) = &self.growth {
            text.push_str(&match (g.at_max, g.smallest_fit_milli_cpu) {
                (true, Some(node)) => format!(
                    "; at maxvCpus: {} of {} vCPUs allocated, a node that could take it adds {}",
                    vcpus(g.allocated_milli_cpu),
                    vcpus(g.max_milli_cpu),
                    vcpus(node)
                ),
                (true, None) => format!(
                    "; at maxvCpus: {} of {} vCPUs allocated",
                    vcpus(g.allocated_milli_cpu),
                    vcpus(g.max_milli_cpu)
                ),
                (false, _) => format!(
                    "; below maxvCpus ({} of {} vCPUs allocated): the pool may add a node",
                    vcpus(g.allocated_milli_cpu),
                    vcpus(g.max_milli_cpu)
                ),
            });
        }
        text
    }
}

impl NodeCounts {
    /// Its nodes, the reasons for each group of them.
    pub fn describe(&self) -> String {
        if self.nodes == 0 {
            return "has no nodes".to_string();
        }
        let mut parts = Vec::new();
        let mut push = |n: u32, what: &str| {
            if n > 0 {
                parts.push(format!(
                    "{what} on {n} node{}",
                    if n == 1 { "" } else { "s" }
                ));
            }
        };
        push(self.short_of_cpu, "not enough free cpu");
        push(self.short_of_memory, "not enough free memory");
        push(self.short_of_gpus, "not enough free GPUs");
        push(self.short_of_pods, "no free pod slot");
        push(self.too_small, "too small ever");
        push(self.other_instance_type, "another instance type");
        push(self.exclusive, "taken by a multi-node job");
        push(
            self.busy,
            "other Barge pods (a multi-node job needs empty nodes)",
        );
        push(self.not_schedulable, "not Ready or cordoned");
        push(
            self.room_now,
            "room now, taken by work ahead in this pass or held for a multi-node job",
        );
        let mut text = format!(
            "{}: {}",
            plural(u64::from(self.nodes), "node"),
            parts.join(", ")
        );
        if self.short_of_cpu + self.short_of_memory + self.short_of_gpus + self.short_of_pods > 0 {
            text.push_str(&format!(" (most free: {})", self.most_free));
        }
        text
    }
}

/// Millicpu as vCPUs for text ("2", "0.5").
fn vcpus(milli_cpu: i64) -> String {
    if milli_cpu % 1000 == 0 {
        (milli_cpu / 1000).to_string()
    } else {
        format!("{}", milli_cpu as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{alloc, environment, node, queue, req, snapshot, workload, T0};
    use crate::scheduler::{schedule, FairSharePolicy, ShareState, ShareWeight};

    fn explain_job(s: &Snapshot, job: &str) -> Explanation {
        let r = schedule(s);
        let w = s
            .workloads
            .iter()
            .position(|w| w.job.name == job)
            .expect("the job is in the snapshot");
        explain(s, &r, w)
    }

    fn nodes_of(e: &EnvironmentReport) -> &NodeCounts {
        match &e.blocker {
            EnvironmentBlocker::Nodes(c) => c,
            other => panic!("expected node counts, got {other:?}"),
        }
    }

    #[test]
    fn a_job_behind_others_names_its_position_and_the_resource_short_on_each_node() {
        // Two 2-vCPU nodes, both full of running work after the pass places `first`.
        let s = snapshot()
            .queue(queue("q", &["ce"]))
            .environment(
                environment("ce")
                    .shape("c5.large", alloc(2, 4096, 0))
                    .max_vcpus(4),
            )
            .node(node("n1", "ce", alloc(2, 4096, 0)).used(req(1000, 512, 0)))
            .node(node("n2", "ce", alloc(2, 4096, 0)).used(req(2000, 512, 0)))
            .workload(workload("first", "q", req(1000, 256, 0), T0))
            .workload(workload("second", "q", req(1000, 256, 0), T0 + 1))
            .build();
        let e = explain_job(&s, "second");
        assert_eq!(e.placed_now, 0);
        assert_eq!(
            e.position,
            Some(Position {
                units_ahead: 1,
                jobs_ahead: 1,
                queue_units: 2
            })
        );
        let ce = &e.environments[0];
        let counts = nodes_of(ce);
        // n1 lost its last vCPU to `first` in this pass; n2 was full.
        assert_eq!((counts.nodes, counts.short_of_cpu), (2, 2));
        assert_eq!(counts.short_of_memory, 0);
        let growth = ce.growth.clone().expect("a managed pool");
        assert!(growth.at_max, "4 of 4 vCPUs allocated");
        let text = e.lines().join("\n");
        assert!(
            text.contains("position: 1 unit of 1 other job ahead"),
            "{text}"
        );
        assert!(
            text.starts_with("blocker: 1 unit ahead of it in queue q, and no compute environment"),
            "{text}"
        );
        assert!(text.contains("not enough free cpu on 2 nodes"), "{text}");
        assert!(
            text.contains("at maxvCpus: 4 of 4 vCPUs allocated"),
            "{text}"
        );
        // The first job is placed now.
        let first = explain_job(&s, "first");
        assert_eq!((first.placed_now, first.verdict.clone()), (1, None));
        assert!(first.lines()[1].contains("would place it now"));
        assert!(first.lines()[0].starts_with("blocker: none"));
    }

    #[test]
    fn memory_short_now_on_a_pool_that_may_grow() {
        let s = snapshot()
            .queue(queue("q", &["ce"]))
            .environment(
                environment("ce")
                    .shape("c5.large", alloc(2, 4096, 0))
                    .max_vcpus(8)
                    .starting_nodes(1),
            )
            .node(node("n1", "ce", alloc(2, 4096, 0)).used(req(500, 3072, 0)))
            .workload(workload("big", "q", req(500, 2048, 0), T0))
            .build();
        let e = explain_job(&s, "big");
        let ce = &e.environments[0];
        let counts = nodes_of(ce);
        assert_eq!((counts.short_of_memory, counts.short_of_cpu), (1, 0));
        assert_eq!(counts.most_free.memory_mib, 1024);
        assert!(!ce.growth.clone().expect("managed").at_max);
        let line = ce.describe();
        assert!(line.contains("not enough free memory on 1 node"), "{line}");
        assert!(line.contains("1 node starting"), "{line}");
        assert_eq!(
            e.blocker(),
            "no compute environment of its queue has room for it now (ce: short of memory, 1 node starting, below maxvCpus)"
        );
        assert!(
            line.contains("below maxvCpus (2 of 8 vCPUs allocated)"),
            "{line}"
        );
    }

    #[test]
    fn environments_that_can_never_take_it_or_take_nothing_say_why() {
        let s = snapshot()
            .queue(queue(
                "q",
                &["off", "broken", "small", "capped", "gone", "budget"],
            ))
            .environment(environment("off").disabled())
            .environment(environment("broken").invalid())
            .environment(environment("small").shape("c5.large", alloc(2, 4096, 0)))
            .environment(
                environment("capped")
                    .shape("c5.4xlarge", alloc(16, 32768, 0))
                    .max_vcpus(2),
            )
            .environment(environment("budget").budget_vcpus(1))
            .workload(workload("huge", "q", req(4000, 8192, 0), T0))
            .build();
        let e = explain_job(&s, "huge");
        let blockers: Vec<&EnvironmentBlocker> =
            e.environments.iter().map(|x| &x.blocker).collect();
        assert_eq!(blockers[0], &EnvironmentBlocker::Disabled);
        assert_eq!(blockers[1], &EnvironmentBlocker::Invalid);
        assert!(matches!(
            blockers[2],
            EnvironmentBlocker::NoInstanceTypeFits { wanted_type: None, largest } if largest.memory_mib == 4096
        ));
        assert_eq!(
            blockers[3],
            &EnvironmentBlocker::ExceedsMaxvCpus {
                max_milli_cpu: 2000
            }
        );
        assert_eq!(blockers[4], &EnvironmentBlocker::Missing);
        assert_eq!(
            blockers[5],
            &EnvironmentBlocker::BudgetExhausted {
                left_milli_cpu: 1000
            }
        );
        let text = e.lines().join("\n");
        assert!(
            text.contains(
                "compute environment small: can never run it: no instance type is big enough"
            ),
            "{text}"
        );
        assert!(text.contains("compute environment capped: can never run it: it asks for more CPU than maxvCpus 2"), "{text}");
        assert!(text.starts_with("blocker: "), "{text}");
        assert!(
            text.contains("request: cpu=4000m memory=8192Mi per pod"),
            "{text}"
        );
    }

    #[test]
    fn an_instance_type_the_environment_lacks_and_nodes_of_other_types() {
        let s = snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce"))
            .node(node("n1", "ce", alloc(4, 8192, 0)).instance_type("m5.xlarge"))
            .node(node("n2", "ce", alloc(4, 8192, 0)).unschedulable())
            .workload(workload("typed", "q", req(1000, 256, 0), T0).instance_type("p3.2xlarge"))
            .build();
        let e = explain_job(&s, "typed");
        let counts = nodes_of(&e.environments[0]);
        assert_eq!((counts.other_instance_type, counts.not_schedulable), (1, 1));
        assert!(e.environments[0].growth.is_none(), "no maxvCpus known");
        let with_shapes = snapshot()
            .queue(queue("q", &["ce"]))
            .environment(environment("ce").shape("m5.xlarge", alloc(4, 8192, 0)))
            .workload(workload("typed", "q", req(1000, 256, 0), T0).instance_type("p3.2xlarge"))
            .build();
        let e = explain_job(&with_shapes, "typed");
        assert_eq!(
            e.environments[0].describe(),
            "can never run it: it offers no instance type p3.2xlarge"
        );
    }

    fn fair_queue(reservation: u32, shares: Vec<ShareState>) -> crate::fixtures::QueueBuilder {
        queue("q", &["ce"]).fair_share(
            FairSharePolicy {
                share_decay_seconds: 0,
                compute_reservation: reservation,
                weights: vec![ShareWeight {
                    share_identifier: "b".into(),
                    weight_factor: 0.25,
                }],
            },
            shares,
        )
    }

    #[test]
    fn a_share_over_its_target_waits_behind_shares_with_a_lower_load() {
        // Share a (weight 1) runs all 4 vCPUs; b (weight 0.25, target 80 %) runs nothing.
        let s = snapshot()
            .queue(fair_queue(
                0,
                vec![ShareState {
                    share: "a".into(),
                    running_milli_cpu: 4000,
                    usage_vcpu_seconds: 0.0,
                    live_jobs: 5,
                }],
            ))
            .environment(environment("ce"))
            .node(node("n1", "ce", alloc(4, 8192, 0)).used(req(4000, 1024, 0)))
            .workload(workload("a5", "q", req(1000, 256, 0), T0).share("a", 0))
            .workload(workload("b1", "q", req(1000, 256, 0), T0 + 5).share("b", 0))
            .build();
        let a = explain_job(&s, "a5");
        let share = a.share.clone().expect("a fair-share queue");
        assert_eq!(share.share, "a");
        assert!(share.over_target);
        assert!((share.target_fraction - 0.2).abs() < 1e-9);
        assert!((share.running_fraction - 1.0).abs() < 1e-9);
        assert_eq!(share.running_vcpus, 4.0);
        assert_eq!(share.shares_ahead, vec!["b".to_string()]);
        assert_eq!(a.position.clone().map(|p| p.units_ahead), Some(1));
        let text = a.lines().join("\n");
        assert!(
            text.contains("share \"a\": weight 1, running 4 vCPUs (100% of the queue's running vCPUs), usage 0 vCPU-seconds, target 20% — over its target"),
            "{text}"
        );
        assert!(
            text.contains("shares with a lower load go first: b"),
            "{text}"
        );
        assert!(
            text.starts_with("blocker: share \"a\" is over its target: it runs 100% of the queue's vCPUs, its target is 20%"),
            "{text}"
        );
        let b = explain_job(&s, "b1");
        let share = b.share.expect("fair share");
        assert!(!share.over_target);
        assert!((share.target_fraction - 0.8).abs() < 1e-9);
        assert_eq!(b.position.map(|p| p.units_ahead), Some(0));
    }

    #[test]
    fn the_compute_reservation_holding_back_the_next_unit_is_named() {
        // 50 % of 4 vCPUs held back with one active share: 2 may run, 2 already do.
        let s = snapshot()
            .queue(fair_queue(
                50,
                vec![ShareState {
                    share: "a".into(),
                    running_milli_cpu: 2000,
                    usage_vcpu_seconds: 0.0,
                    live_jobs: 3,
                }],
            ))
            .environment(environment("ce").max_vcpus(4))
            .node(node("n1", "ce", alloc(4, 8192, 0)).used(req(2000, 512, 0)))
            .workload(workload("a3", "q", req(1000, 256, 0), T0).share("a", 0))
            .build();
        let e = explain_job(&s, "a3");
        assert_eq!(e.placed_now, 0);
        let r = e
            .share
            .clone()
            .and_then(|s| s.reservation)
            .expect("a reservation");
        assert_eq!(
            (r.reserved_milli_cpu, r.room_milli_cpu, r.holds_back),
            (2000, 0, true)
        );
        let counts = nodes_of(&e.environments[0]);
        assert_eq!(
            counts.room_now, 1,
            "the node has room: the reservation is the blocker"
        );
        let text = e.lines().join("\n");
        assert!(
            text.contains("compute reservation: 2 of the queue's 4 vCPUs are held back"),
            "{text}"
        );
        assert!(
            text.starts_with("blocker: the compute reservation of queue q"),
            "{text}"
        );
    }
}
