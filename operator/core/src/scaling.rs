//! The scaling decision of managed compute environments (design §2, §4; issue 10), pure.
//!
//! Input: the scheduler's [`Snapshot`] (queues, environments, nodes with what their pods use,
//! RUNNABLE [`Workload`]s), one [`PoolSpec`] per scaled environment (`minvCpus`, `maxvCpus`,
//! `desiredvCpus`, `allocationStrategy`, expanded `instanceTypes`, `scaleDownDelaySeconds`),
//! [`NodeFacts`] per node (ready / booting / draining, Barge pods, idle since) and `now`.
//! Output: one [`ScalingDecision`] per pool: desired vCPUs, nodes to add (type, count), nodes
//! to remove (cordon, then delete), and the vCPUs wanted beyond `maxvCpus`.
//!
//! The decision, as a numbered recipe:
//! 1. capacity: every Ready or booting node of a pool offers its free allocatable (booting
//!    nodes count, so a pass never asks twice for the same demand); draining (cordoned or
//!    deleting) nodes offer nothing but still count against `maxvCpus`;
//! 2. demand: queues in priority order (then name), workloads FIFO within a queue (retried
//!    first). Each unit counts against the first ENABLED and VALID environment of its queue
//!    (`computeEnvironmentOrder`) that can take it: into free room of its existing nodes, or
//!    into a node this decision adds — when one of its instance types fits the unit and the
//!    node stays within `maxvCpus`. So work that spills to a later environment counts there.
//!    A unit no environment can take is "wanted beyond maxvCpus" by the first usable
//!    environment with an instance type that fits it. Disabled queues count nothing.
//!    A multi-node job (gang) wants whole nodes, one per member, in one environment that is
//!    not SPOT (no multi-node job runs on Spot, so SPOT pools never grow for one): members go
//!    largest first to existing nodes without any Barge pod that no other demand touched in
//!    this decision (best fit, matching the member's instance type; GPU members on GPU nodes,
//!    others on nodes without GPUs first), else to a node added for that member alone (its type
//!    chosen as in step 3). The gang counts in the first such environment where all its members
//!    find a node; failing that, in the first whose instance types fit every member: there, if
//!    its `maxvCpus` could ever hold the gang, the nodes that fit under `maxvCpus` now are added
//!    (the rest waits for busy nodes to free), and the members left over are wanted beyond
//!    `maxvCpus` (all of them when the gang can never fit: then nothing is added). A gang's
//!    demand is the vCPUs of the whole nodes it takes;
//! 3. new nodes: the type of a node to add, among the types that fit the unit (for a unit
//!    without GPUs, the types without GPUs when one fits it: no GPU node is added for, or
//!    filled with, work that does not need it), by
//!    `allocationStrategy` (see [`choose_type`]): BEST_FIT the cheapest, and it waits for that
//!    type when it does not fit under `maxvCpus` (or the catalog has no capacity for it);
//!    BEST_FIT_PROGRESSIVE the cheapest that fits under `maxvCpus` and has capacity;
//!    SPOT_CAPACITY_OPTIMIZED the deepest capacity pool, ties by price;
//!    SPOT_PRICE_CAPACITY_OPTIMIZED the cheapest per vCPU among pools at least half as deep as
//!    the deepest. Added nodes are filled next-fit, so one node takes many small units;
//! 4. floor: the pool keeps at least `minvCpus` (and `desiredvCpus` while ENABLED) of nodes
//!    ([`plan_fixed_pool`] for the gap, within `maxvCpus`);
//! 5. scale-in: an idle node (no Barge pod, no demand from this decision) whose idle time has
//!    reached `scaleDownDelaySeconds` is removed, longest idle first, while the pool stays at
//!    or above its floor. A node running a Barge pod is never removed. A draining node without
//!    Barge pods is removed at once. A DISABLED environment adds no node and shrinks to
//!    `minvCpus` as its nodes go idle.
//!
//! `desired_vcpus` = vCPUs in use by Barge pods on the pool's nodes + vCPUs of the demand
//! counted here, rounded up, clamped to [floor, `maxvCpus`].
//!
//! Cost: one walk over the units with a per-pool memo of the smallest request that found no
//! room in existing nodes (room only shrinks during a decision), and next-fit bins for added
//! nodes, so the walk costs O(workloads × (environments per queue + nodes that fill)).

use crate::pool::{plan_fixed_pool, AllocationStrategy, InstanceType};
use crate::resources::Resources;
use crate::scheduler::{order_queues, Fifo, Gang, GangMember, QueueOrder, Snapshot, Units};
use std::collections::{BTreeMap, HashMap};

/// One instance type a pool may add, with the capacity the catalog reports for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub instance_type: InstanceType,
    /// Depth of the capacity pool, 0 to 100 (0: none available now; see
    /// [`crate::pool::capacity_score`]).
    pub capacity: i64,
}

impl Offer {
    /// An offer with the catalog's capacity score for `instance_type`.
    pub fn of(instance_type: &InstanceType) -> Offer {
        Offer {
            capacity: crate::pool::capacity_score(instance_type),
            instance_type: instance_type.clone(),
        }
    }
}

/// A managed compute environment whose pool this decision sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// The environment's name (as in `Snapshot::environments` and the nodes' label).
    pub environment: String,
    pub min_vcpus: i64,
    pub max_vcpus: i64,
    /// `desiredvCpus`, a floor while ENABLED.
    pub desired_vcpus: Option<i64>,
    pub strategy: AllocationStrategy,
    /// The expanded `instanceTypes`.
    pub offers: Vec<Offer>,
    pub scale_down_delay_ms: i64,
}

/// What the pool knows of a node beyond the scheduler's view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub state: NodeState,
    /// Barge pods bound to it that have not finished.
    pub barge_pods: u32,
    /// Since when it has had no Barge pod (None: busy, or unknown).
    pub idle_since_ms: Option<i64>,
}

/// Lifecycle of a pool node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodeState {
    #[default]
    Ready,
    /// Created, not Ready yet.
    Booting,
    /// Cordoned or being deleted.
    Draining,
}

/// Nodes of one type to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodesToAdd {
    pub instance_type: String,
    pub count: u32,
}

/// The decision for one pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalingDecision {
    pub environment: String,
    /// vCPUs the pool should have (status `desiredvCpus`).
    pub desired_vcpus: i64,
    /// Millicpu of RUNNABLE work counted against this pool.
    pub demand_milli_cpu: i64,
    /// Nodes to create, by type name.
    pub add: Vec<NodesToAdd>,
    /// Nodes to cordon and then delete, by name.
    pub remove: Vec<String>,
    /// vCPUs of work that wanted this pool but found no room under `maxvCpus` (rounded up).
    pub wanted_beyond_max_vcpus: i64,
}

struct Bin {
    node: usize,
    free: Resources,
}

struct PoolState<'a> {
    spec: &'a PoolSpec,
    usable: bool,
    /// The environment is SPOT: no gang counts here.
    spot: bool,
    /// vCPUs of every node (ready, booting, draining) plus added ones.
    vcpus: i64,
    /// Existing nodes with room, in name order (swap-removed when full).
    bins: Vec<Bin>,
    /// Smallest request that found no room in `bins`.
    no_room: Option<Resources>,
    /// Requests (without an instance-type constraint) that found no room in added nodes nor
    /// headroom for a new one; room only shrinks, so they (and, except under BEST_FIT, larger
    /// ones) fail again.
    no_new_room: Vec<Resources>,
    /// Added nodes still being filled: (offer index, free room).
    open: Vec<(usize, Resources)>,
    added: BTreeMap<usize, u32>,
    demand_milli: i64,
    beyond_milli: i64,
    /// Existing nodes that took demand in this decision.
    touched: Vec<bool>,
    /// Existing nodes without any Barge pod and not reserved for a gang (a gang member may
    /// take one whole).
    empty: Vec<bool>,
}

impl PoolState<'_> {
    fn fails_again(&self, request: &Resources) -> bool {
        if self.spec.strategy == AllocationStrategy::BestFit {
            // The cheapest type fitting a larger request may be another one.
            self.no_new_room.iter().any(|f| f == request)
        } else {
            self.no_new_room.iter().any(|f| f.fits_in(request))
        }
    }
}

/// How many units of `request` fit in `free` (at most `want`).
fn units_fitting(request: &Resources, free: &Resources, want: u64) -> u64 {
    let mut n = i64::try_from(want).unwrap_or(i64::MAX);
    for (r, f) in [
        (request.milli_cpu, free.milli_cpu),
        (request.memory_mib, free.memory_mib),
        (request.gpus, free.gpus),
        (request.pods, free.pods),
    ] {
        if r > 0 {
            n = n.min(f.max(0) / r);
        } else if f < 0 {
            n = 0;
        }
    }
    n.max(0) as u64
}

/// Chooses the type of a node to add for a unit of `request` (see the module doc, step 3);
/// `headroom` is how many vCPUs the pool may still add. None: wait.
pub fn choose_type(
    offers: &[Offer],
    strategy: AllocationStrategy,
    request: &Resources,
    constraint: Option<&str>,
    headroom: i64,
) -> Option<usize> {
    let fits = |o: &Offer| {
        request.fits_in(&o.instance_type.capacity())
            && constraint.is_none_or(|c| o.instance_type.name == c)
    };
    // Work without GPUs gets a type without GPUs whenever one fits it (as the scheduler
    // prefers nodes without GPUs): a GPU node is not spent on it.
    let gpu_types_allowed =
        request.gpus > 0 || !offers.iter().any(|o| o.instance_type.gpus == 0 && fits(o));
    let fitting = || {
        offers
            .iter()
            .enumerate()
            .filter(move |(_, o)| fits(o) && (gpu_types_allowed || o.instance_type.gpus == 0))
    };
    let allowed = |o: &Offer| o.capacity > 0 && o.instance_type.vcpus <= headroom;
    let price = |o: &Offer| (o.instance_type.price_micros_per_hour, o.instance_type.vcpus);
    match strategy {
        AllocationStrategy::BestFit => fitting()
            .min_by_key(|(_, o)| (price(o), o.instance_type.name.clone()))
            .filter(|(_, o)| allowed(o))
            .map(|(i, _)| i),
        AllocationStrategy::BestFitProgressive => fitting()
            .filter(|(_, o)| allowed(o))
            .min_by_key(|(_, o)| (price(o), o.instance_type.name.clone()))
            .map(|(i, _)| i),
        AllocationStrategy::SpotCapacityOptimized => fitting()
            .filter(|(_, o)| allowed(o))
            .min_by_key(|(_, o)| {
                (
                    -o.capacity,
                    o.instance_type.price_per_vcpu(),
                    o.instance_type.name.clone(),
                )
            })
            .map(|(i, _)| i),
        AllocationStrategy::SpotPriceCapacityOptimized => {
            let deepest = fitting()
                .filter(|(_, o)| allowed(o))
                .map(|(_, o)| o.capacity)
                .max()?;
            fitting()
                .filter(|(_, o)| allowed(o) && o.capacity * 2 >= deepest)
                .min_by_key(|(_, o)| {
                    (
                        o.instance_type.price_per_vcpu(),
                        -o.capacity,
                        o.instance_type.name.clone(),
                    )
                })
                .map(|(i, _)| i)
        }
    }
}

/// The scaling decision for every pool in `pools` (keyed by environment name).
pub fn decide_scaling(
    snapshot: &Snapshot,
    pools: &[PoolSpec],
    facts: &HashMap<String, NodeFacts>,
    now_ms: i64,
) -> BTreeMap<String, ScalingDecision> {
    let env_spec: HashMap<&str, (bool, bool, bool)> = snapshot
        .environments
        .iter()
        .map(|e| (e.name.as_str(), (e.enabled, e.valid, e.spot)))
        .collect();
    let mut states: Vec<PoolState> = pools
        .iter()
        .map(|spec| {
            let (enabled, valid, spot) = env_spec
                .get(spec.environment.as_str())
                .copied()
                .unwrap_or((false, false, false));
            PoolState {
                spec,
                usable: enabled && valid,
                spot,
                vcpus: 0,
                bins: Vec::new(),
                no_room: None,
                no_new_room: Vec::new(),
                open: Vec::new(),
                added: BTreeMap::new(),
                demand_milli: 0,
                beyond_milli: 0,
                touched: Vec::new(),
                empty: Vec::new(),
            }
        })
        .collect();
    let pool_of: HashMap<&str, usize> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.environment.as_str(), i))
        .collect();

    // 1. capacity
    let mut pool_nodes: Vec<Vec<usize>> = vec![Vec::new(); pools.len()];
    for (n, node) in snapshot.nodes.iter().enumerate() {
        let Some(p) = node.environment.as_deref().and_then(|e| pool_of.get(e)) else {
            continue;
        };
        pool_nodes[*p].push(n);
    }
    let mut running_milli: Vec<i64> = vec![0; pools.len()];
    for (p, state) in states.iter_mut().enumerate() {
        let nodes = &mut pool_nodes[p];
        nodes.sort_by(|&a, &b| snapshot.nodes[a].name.cmp(&snapshot.nodes[b].name));
        state.touched = vec![false; nodes.len()];
        state.empty = vec![false; nodes.len()];
        for (k, &n) in nodes.iter().enumerate() {
            let node = &snapshot.nodes[n];
            let fact = node_facts(facts, node);
            state.empty[k] = fact.barge_pods == 0 && node.barge_pods == 0 && !node.exclusive;
            state.vcpus += node.allocatable.milli_cpu.max(0) / 1000;
            if fact.barge_pods > 0 {
                running_milli[p] += node.used.milli_cpu.max(0);
            }
            if fact.state != NodeState::Draining {
                let free = node.allocatable.saturating_sub(&node.used);
                if free.milli_cpu > 0 && free.pods > 0 {
                    state.bins.push(Bin { node: k, free });
                }
            }
        }
    }

    // 2. demand
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); snapshot.queues.len()];
    let queue_of: HashMap<&str, usize> = snapshot
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (q.name.as_str(), i))
        .collect();
    for (w, work) in snapshot.workloads.iter().enumerate() {
        if let Some(q) = queue_of.get(work.queue.as_str()) {
            members[*q].push(w);
        }
    }
    for q in order_queues(&snapshot.queues) {
        let queue = &snapshot.queues[q];
        if !queue.enabled || members[q].is_empty() {
            continue;
        }
        let queue_pools: Vec<usize> = queue
            .environments
            .iter()
            .filter_map(|e| pool_of.get(e.as_str()).copied())
            .filter(|p| states[*p].usable)
            .collect();
        if queue_pools.is_empty() {
            continue;
        }
        let mut order = std::mem::take(&mut members[q]);
        Fifo.order(queue, &snapshot.workloads, &mut order);
        for w in order {
            let work = &snapshot.workloads[w];
            if let Units::Gang(gang) = &work.units {
                count_gang(
                    &mut states,
                    &queue_pools,
                    &snapshot.nodes,
                    &pool_nodes,
                    gang,
                );
                continue;
            }
            let mut left = work.units.count();
            let constraint = work.constraints.instance_type.as_deref();
            let mut first_fitting: Option<usize> = None;
            for &p in &queue_pools {
                if left == 0 {
                    break;
                }
                let state = &mut states[p];
                left -= place_in_existing(state, &snapshot.nodes, &pool_nodes[p], work, left);
                if left == 0 {
                    break;
                }
                if constraint.is_none() && state.fails_again(&work.request) {
                    first_fitting.get_or_insert(p);
                    continue;
                }
                let could_fit = state.spec.offers.iter().any(|o| {
                    work.request.fits_in(&o.instance_type.capacity())
                        && constraint.is_none_or(|c| o.instance_type.name == c)
                });
                if could_fit && first_fitting.is_none() {
                    first_fitting = Some(p);
                }
                if could_fit {
                    left -= place_in_added(state, work, left);
                    if left > 0 && constraint.is_none() && state.no_new_room.len() < 16 {
                        state.no_new_room.push(work.request);
                    }
                }
            }
            if left > 0 {
                if let Some(p) = first_fitting {
                    let milli = work.request.milli_cpu.saturating_mul(left as i64);
                    states[p].beyond_milli = states[p].beyond_milli.saturating_add(milli);
                }
            }
        }
    }

    // 3.–5.
    states
        .iter()
        .enumerate()
        .map(|(p, state)| {
            let decision = finish(
                state,
                &snapshot.nodes,
                &pool_nodes[p],
                facts,
                running_milli[p],
                now_ms,
            );
            (decision.environment.clone(), decision)
        })
        .collect()
}

/// Where the members of a gang go in one pool (see [`plan_gang`]).
struct GangPlan {
    /// Positions in the pool's `bins` of the existing nodes taken, one member each.
    existing: Vec<usize>,
    /// Offers of the nodes to add, one member each.
    added: Vec<usize>,
    /// Members (indexes) that found no node under `maxvCpus`.
    missing: Vec<usize>,
}

/// Members of a gang, largest first (GPUs, CPU, memory), ties by index.
fn largest_members_first(members: &[GangMember]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&members[a].request, &members[b].request);
        (rb.gpus, rb.milli_cpu, rb.memory_mib, a).cmp(&(ra.gpus, ra.milli_cpu, ra.memory_mib, b))
    });
    order
}

/// Plans the members of `gang` (in `order`) in one pool without changing it: each on an
/// existing node without Barge pods that no demand touched (best fit), else on a node added for
/// it alone within what is left of `maxvCpus`.
fn plan_gang(
    state: &PoolState,
    nodes: &[crate::scheduler::NodeSnapshot],
    pool_nodes: &[usize],
    gang: &Gang,
    order: &[usize],
) -> GangPlan {
    let mut plan = GangPlan {
        existing: Vec::new(),
        added: Vec::new(),
        missing: Vec::new(),
    };
    let mut taken = vec![false; state.bins.len()];
    let mut headroom = state.spec.max_vcpus - state.vcpus;
    for &m in order {
        let member = &gang.members[m];
        let request = &member.request;
        let constraint = member.constraints.instance_type.as_deref();
        let passes: &[bool] = if request.gpus > 0 {
            &[true]
        } else {
            &[false, true]
        };
        let existing = passes.iter().find_map(|&gpu| {
            state
                .bins
                .iter()
                .enumerate()
                .filter(|&(i, bin)| {
                    let node = &nodes[pool_nodes[bin.node]];
                    !taken[i]
                        && state.empty[bin.node]
                        && !state.touched[bin.node]
                        && (node.allocatable.gpus > 0) == gpu
                        && constraint.is_none_or(|c| node.instance_type.as_deref() == Some(c))
                        && request.fits_in(&bin.free)
                })
                .min_by_key(|&(_, bin)| (bin.free.milli_cpu, bin.free.memory_mib, bin.node))
                .map(|(i, _)| i)
        });
        if let Some(i) = existing {
            taken[i] = true;
            plan.existing.push(i);
            continue;
        }
        match choose_type(
            &state.spec.offers,
            state.spec.strategy,
            request,
            constraint,
            headroom,
        ) {
            Some(offer) => {
                headroom -= state.spec.offers[offer].instance_type.vcpus;
                plan.added.push(offer);
            }
            None => plan.missing.push(m),
        }
    }
    plan
}

/// vCPUs of the node a member would need (the type the pool would choose with no `maxvCpus`
/// limit), or its own request rounded up when no type fits.
fn member_node_milli(spec: &PoolSpec, member: &GangMember) -> i64 {
    choose_type(
        &spec.offers,
        spec.strategy,
        &member.request,
        member.constraints.instance_type.as_deref(),
        i64::MAX,
    )
    .map(|o| Resources::vcpus(spec.offers[o].instance_type.vcpus))
    .unwrap_or(member.request.milli_cpu)
}

/// Counts a gang's demand (see the module doc, step 2): the first pool of the queue (not SPOT)
/// where every member finds a node; else the first whose types fit every member, adding what
/// fits under `maxvCpus` when the gang could ever fit there, and counting the rest beyond it.
fn count_gang(
    states: &mut [PoolState],
    queue_pools: &[usize],
    nodes: &[crate::scheduler::NodeSnapshot],
    pool_nodes: &[Vec<usize>],
    gang: &Gang,
) {
    let order = largest_members_first(&gang.members);
    let candidates: Vec<usize> = queue_pools
        .iter()
        .copied()
        .filter(|&p| !states[p].spot)
        .collect();
    for &p in &candidates {
        let plan = plan_gang(&states[p], nodes, &pool_nodes[p], gang, &order);
        if plan.missing.is_empty() {
            commit_gang(&mut states[p], nodes, &pool_nodes[p], gang, plan);
            return;
        }
    }
    let fits_every_member = |state: &PoolState| {
        gang.members.iter().all(|member| {
            state.spec.offers.iter().any(|o| {
                member.request.fits_in(&o.instance_type.capacity())
                    && member
                        .constraints
                        .instance_type
                        .as_deref()
                        .is_none_or(|c| o.instance_type.name == c)
            })
        })
    };
    let Some(p) = candidates
        .into_iter()
        .find(|&p| fits_every_member(&states[p]))
    else {
        return;
    };
    let state = &mut states[p];
    let whole_gang_milli: i64 = gang
        .members
        .iter()
        .map(|member| member_node_milli(state.spec, member))
        .sum();
    if whole_gang_milli > Resources::vcpus(state.spec.max_vcpus) {
        // It can never fit: no node is added for it.
        state.beyond_milli = state.beyond_milli.saturating_add(whole_gang_milli);
        return;
    }
    let plan = plan_gang(state, nodes, &pool_nodes[p], gang, &order);
    commit_gang(state, nodes, &pool_nodes[p], gang, plan);
}

/// Applies a gang's plan to its pool: existing nodes taken whole, nodes added one per member,
/// the members left over wanted beyond `maxvCpus`.
fn commit_gang(
    state: &mut PoolState,
    nodes: &[crate::scheduler::NodeSnapshot],
    pool_nodes: &[usize],
    gang: &Gang,
    mut plan: GangPlan,
) {
    for &i in &plan.existing {
        let k = state.bins[i].node;
        state.touched[k] = true;
        let node_milli = nodes[pool_nodes[k]].allocatable.milli_cpu.max(0);
        state.demand_milli = state.demand_milli.saturating_add(node_milli);
    }
    // Highest positions first, so that swap-removal does not move a bin still to remove.
    plan.existing.sort_unstable_by(|a, b| b.cmp(a));
    for i in plan.existing {
        state.bins.swap_remove(i);
    }
    for offer in plan.added {
        let vcpus = state.spec.offers[offer].instance_type.vcpus;
        *state.added.entry(offer).or_insert(0) += 1;
        state.vcpus += vcpus;
        state.demand_milli = state.demand_milli.saturating_add(Resources::vcpus(vcpus));
    }
    for m in plan.missing {
        let milli = member_node_milli(state.spec, &gang.members[m]);
        state.beyond_milli = state.beyond_milli.saturating_add(milli);
    }
}

fn node_facts(
    facts: &HashMap<String, NodeFacts>,
    node: &crate::scheduler::NodeSnapshot,
) -> NodeFacts {
    facts.get(&node.name).copied().unwrap_or(NodeFacts {
        state: if node.schedulable {
            NodeState::Ready
        } else {
            NodeState::Booting
        },
        barge_pods: 0,
        idle_since_ms: None,
    })
}

fn place_in_existing(
    state: &mut PoolState,
    nodes: &[crate::scheduler::NodeSnapshot],
    pool_nodes: &[usize],
    work: &crate::scheduler::Workload,
    want: u64,
) -> u64 {
    let request = &work.request;
    if let Some(failed) = &state.no_room {
        if failed.fits_in(request) {
            return 0;
        }
    }
    let constraint = work.constraints.instance_type.as_deref();
    let mut placed = 0u64;
    let mut i = 0;
    while i < state.bins.len() && placed < want {
        let bin = &mut state.bins[i];
        if let Some(c) = constraint {
            if nodes[pool_nodes[bin.node]].instance_type.as_deref() != Some(c) {
                i += 1;
                continue;
            }
        }
        let n = units_fitting(request, &bin.free, want - placed);
        if n > 0 {
            bin.free = bin.free.saturating_sub(&request.saturating_mul(n as i64));
            placed += n;
            state.touched[bin.node] = true;
            state.demand_milli = state
                .demand_milli
                .saturating_add(request.milli_cpu.saturating_mul(n as i64));
        }
        if bin.free.milli_cpu <= 0 || bin.free.pods <= 0 {
            state.bins.swap_remove(i);
        } else {
            i += 1;
        }
    }
    if placed < want && constraint.is_none() {
        state.no_room = Some(match state.no_room {
            Some(old) => old.min_each(request),
            None => *request,
        });
    }
    placed
}

fn place_in_added(state: &mut PoolState, work: &crate::scheduler::Workload, want: u64) -> u64 {
    let request = &work.request;
    let constraint = work.constraints.instance_type.as_deref();
    let mut placed = 0u64;
    // Work without GPUs stays off added GPU nodes when a type without GPUs fits it.
    let avoid_gpu_nodes = request.gpus == 0
        && state.spec.offers.iter().any(|o| {
            o.instance_type.gpus == 0
                && request.fits_in(&o.instance_type.capacity())
                && constraint.is_none_or(|c| o.instance_type.name == c)
        });
    // Next-fit: the open nodes of this decision (one per type, the last added).
    for (offer, free) in state.open.iter_mut() {
        if placed == want {
            break;
        }
        let ty = &state.spec.offers[*offer].instance_type;
        if constraint.is_some_and(|c| ty.name != c) || (avoid_gpu_nodes && ty.gpus > 0) {
            continue;
        }
        let n = units_fitting(request, free, want - placed);
        *free = free.saturating_sub(&request.saturating_mul(n as i64));
        placed += n;
    }
    while placed < want {
        let headroom = state.spec.max_vcpus - state.vcpus;
        let Some(offer) = choose_type(
            &state.spec.offers,
            state.spec.strategy,
            request,
            constraint,
            headroom,
        ) else {
            break;
        };
        let ty = &state.spec.offers[offer].instance_type;
        let capacity = ty.capacity();
        let per_node = units_fitting(request, &capacity, u64::MAX).max(1);
        // Whole nodes at once (arrays), bounded by maxvCpus.
        let wanted_nodes = (want - placed).div_ceil(per_node) as i64;
        let nodes = wanted_nodes.min(headroom / ty.vcpus.max(1)).max(1);
        *state.added.entry(offer).or_insert(0) += nodes as u32;
        state.vcpus += nodes * ty.vcpus;
        let n = (per_node * nodes as u64).min(want - placed);
        placed += n;
        // The last node keeps the rest of its room open.
        let on_last = n - per_node * (nodes as u64 - 1);
        let free = capacity.saturating_sub(&request.saturating_mul(on_last as i64));
        match state.open.iter_mut().find(|(o, _)| *o == offer) {
            Some(slot) => slot.1 = free,
            None => state.open.push((offer, free)),
        }
    }
    state.demand_milli = state
        .demand_milli
        .saturating_add(request.milli_cpu.saturating_mul(placed as i64));
    placed
}

fn finish(
    state: &PoolState,
    nodes: &[crate::scheduler::NodeSnapshot],
    pool_nodes: &[usize],
    facts: &HashMap<String, NodeFacts>,
    running_milli: i64,
    now_ms: i64,
) -> ScalingDecision {
    let spec = state.spec;
    let max = spec.max_vcpus.max(0);
    let floor = if state.usable {
        spec.min_vcpus.max(spec.desired_vcpus.unwrap_or(0))
    } else {
        spec.min_vcpus
    }
    .clamp(0, max);
    let mut added = state.added.clone();
    // 4. floor: nodes that are not draining plus added ones.
    let live_vcpus: i64 = pool_nodes
        .iter()
        .map(|&n| &nodes[n])
        .filter(|node| node_facts(facts, node).state != NodeState::Draining)
        .map(|node| node.allocatable.milli_cpu.max(0) / 1000)
        .sum::<i64>()
        + added
            .iter()
            .map(|(o, n)| spec.offers[*o].instance_type.vcpus * i64::from(*n))
            .sum::<i64>();
    if live_vcpus < floor && state.usable {
        let candidates: Vec<&InstanceType> = spec
            .offers
            .iter()
            .filter(|o| o.capacity > 0)
            .map(|o| &o.instance_type)
            .collect();
        let headroom = max - state.vcpus;
        if let Ok(plan) = plan_fixed_pool(floor - live_vcpus, &candidates, spec.strategy) {
            let mut room = headroom;
            for (ty, n) in plan {
                let n = i64::from(n).min(room / ty.vcpus.max(1));
                if n <= 0 {
                    continue;
                }
                room -= n * ty.vcpus;
                if let Some(o) = spec
                    .offers
                    .iter()
                    .position(|o| o.instance_type.name == ty.name)
                {
                    *added.entry(o).or_insert(0) += n as u32;
                }
            }
        }
    }
    // 5. scale-in
    let mut idle: Vec<(i64, &str, i64)> = Vec::new();
    let mut remove = Vec::new();
    let mut remaining = live_vcpus;
    for (k, &n) in pool_nodes.iter().enumerate() {
        let node = &nodes[n];
        let fact = node_facts(facts, node);
        if fact.barge_pods > 0 || state.touched[k] {
            continue;
        }
        let vcpus = node.allocatable.milli_cpu.max(0) / 1000;
        match (fact.state, fact.idle_since_ms) {
            (NodeState::Draining, _) => remove.push(node.name.clone()),
            (NodeState::Ready, Some(since))
                if now_ms.saturating_sub(since) >= spec.scale_down_delay_ms =>
            {
                idle.push((since, node.name.as_str(), vcpus))
            }
            _ => {}
        }
    }
    idle.sort();
    for (_, name, vcpus) in idle {
        if remaining - vcpus >= floor {
            remaining -= vcpus;
            remove.push(name.to_string());
        }
    }
    remove.sort();
    let demand = running_milli.saturating_add(state.demand_milli);
    let desired = ((demand + 999) / 1000).clamp(floor, max.max(floor));
    ScalingDecision {
        environment: spec.environment.clone(),
        desired_vcpus: desired,
        demand_milli_cpu: state.demand_milli,
        add: added
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(o, count)| NodesToAdd {
                instance_type: spec.offers[o].instance_type.name.to_string(),
                count,
            })
            .collect(),
        remove,
        wanted_beyond_max_vcpus: (state.beyond_milli + 999) / 1000,
    }
}

#[cfg(test)]
mod tests;
