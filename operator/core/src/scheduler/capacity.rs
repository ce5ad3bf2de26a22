//! Free capacity of the nodes of each compute environment, indexed for best-fit placement.
//!
//! Per environment, nodes are grouped into pools by (has GPUs, instance type); each pool keeps
//! its nodes in a `BTreeSet` ordered by (free millicpu, free memory, node). The best fit in a
//! pool is the first node at or above the request's CPU that also fits memory, GPUs and pod
//! slots; the best fit in an environment is the best over its pools (least CPU, then memory,
//! left over). Non-GPU requests try non-GPU pools first and use GPU nodes only when nothing else
//! fits. Placing a unit shrinks its node's free capacity (remove + reinsert).
//!
//! Each pool keeps two trees: `open`, the nodes single units (and array children) may use, and
//! `empty`, the subset without any Barge pod, which gang members may use. A node leaves `empty`
//! when a unit is placed on it (it now has a Barge pod), and leaves both trees when a gang takes
//! it (single tenant: nothing else goes there) or holds it for the rest of the pass (see
//! [`CapacityIndex::hold_for_gang`]). Nodes already `exclusive` in the snapshot are in neither.
//!
//! An environment in budget mode (`bindingMode: KubeScheduler`, see
//! [`EnvironmentSpec::budget_milli_cpu`]) is one capacity pool rather than nodes: a unit fits
//! while its CPU fits in what is left of the budget, and its nodes are not indexed (so no gang
//! goes there: nodes cannot be reserved).
//!
//! Free capacity only shrinks within a pass, so once a request failed in an environment, any
//! request at least as large (field by field, same constraint) fails too: each environment
//! remembers the minimal failed requests and answers those in O(1) without touching nodes. The
//! same holds for gang members searching empty nodes (a separate memo, fed only by searches that
//! no other member of the same gang had narrowed), and a gang with more members than the
//! environment has empty nodes fails at once.

use super::{EnvironmentSpec, GangMember, NodeSnapshot};
use crate::resources::Resources;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// (free millicpu, free memory MiB, node index)
type Entry = (i64, i64, usize);

struct Pool {
    has_gpu: bool,
    instance_type: Option<String>,
    /// Nodes open to single units.
    open: BTreeSet<Entry>,
    /// The nodes of `open` without a Barge pod: open to gang members too.
    empty: BTreeSet<Entry>,
}

/// Which of a pool's trees a search looks in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tree {
    Open,
    Empty,
}

impl Pool {
    fn tree(&self, which: Tree) -> &BTreeSet<Entry> {
        match which {
            Tree::Open => &self.open,
            Tree::Empty => &self.empty,
        }
    }
}

/// What a node of a node-mode environment may still take in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeUse {
    /// In its pool's `open` tree (and in `empty` while it has no Barge pod).
    Open,
    /// Runs, or is reserved for, a node of a multi-node job: nothing else goes there.
    Exclusive,
    /// Held for a waiting gang until the end of the pass.
    Held,
}

struct EnvironmentCapacity {
    pools: Vec<Pool>,
    /// Budget mode: the millicpu left of the environment's vCPU budget.
    budget: Option<i64>,
    /// Budget mode: the node shapes (instance type, allocatable) the environment has or could
    /// have, when known: a unit no shape can hold is not admitted (it can never run there).
    shapes: Option<Vec<(String, Resources)>>,
    /// Minimal failed requests per instance-type constraint.
    failed: HashMap<Option<String>, Vec<Resources>>,
    /// Minimal failed gang-member requests (searching `empty` trees) per constraint.
    gang_failed: HashMap<Option<String>, Vec<Resources>>,
    /// Nodes in the `empty` trees.
    empty_nodes: usize,
    /// Its schedulable nodes (indexes, in name order), whatever their use: the nodes a waiting
    /// gang may hold.
    nodes: Vec<usize>,
    /// How many of `nodes` are held.
    held: usize,
}

impl EnvironmentCapacity {
    /// Is `request` (with `constraint`) known to find no node in this memo?
    fn known_to_fail(
        memo: &HashMap<Option<String>, Vec<Resources>>,
        request: &Resources,
        constraint: Option<&str>,
    ) -> bool {
        memo.iter().any(|(key, failed)| {
            key.as_deref() == constraint && failed.iter().any(|f| f.fits_in(request))
        })
    }

    fn remember_failure(
        memo: &mut HashMap<Option<String>, Vec<Resources>>,
        request: &Resources,
        constraint: Option<&str>,
    ) {
        let failed = memo.entry(constraint.map(str::to_string)).or_default();
        failed.retain(|f| !request.fits_in(f));
        failed.push(*request);
    }
}

/// Where a unit fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spot {
    /// On this node (index in the sorted node list).
    Node(usize),
    /// In the environment's vCPU budget (budget mode: the kube-scheduler picks the node).
    Budget,
}

/// The mutable capacity state of one scheduling pass.
pub(crate) struct CapacityIndex {
    free: Vec<Resources>,
    allocatable: Vec<Resources>,
    /// Barge pods on each node, counting units placed in this pass.
    barge_pods: Vec<u32>,
    /// Per node: its environment and pool (`usize::MAX` for nodes outside every node-mode
    /// environment or not schedulable) and its use.
    pool_of: Vec<(usize, usize)>,
    node_use: Vec<NodeUse>,
    environments: Vec<EnvironmentCapacity>,
    /// Requests answered by the failure memo without looking at nodes.
    pub memo_hits: u64,
    /// Gangs that hold nodes in this pass.
    pub gangs_holding: u64,
}

/// Orders requests largest first (GPUs, then CPU, then memory): gang members are placed and
/// held in this order, so the hardest member chooses first.
pub(crate) fn largest_first(a: &Resources, b: &Resources) -> Ordering {
    (b.gpus, b.milli_cpu, b.memory_mib).cmp(&(a.gpus, a.milli_cpu, a.memory_mib))
}

/// The best-fitting node for `request` among `pools` (restricted to `instance_type` when
/// given), searching the `which` trees: GPU requests only on GPU nodes, other requests on nodes
/// without GPUs first.
fn best_fit(
    pools: &[Pool],
    which: Tree,
    free: &[Resources],
    request: &Resources,
    instance_type: Option<&str>,
) -> Option<usize> {
    let passes: &[bool] = if request.gpus > 0 {
        &[true]
    } else {
        &[false, true]
    };
    for &gpu_pass in passes {
        let mut best: Option<Entry> = None;
        for pool in pools.iter().filter(|p| {
            p.has_gpu == gpu_pass
                && instance_type.is_none_or(|t| p.instance_type.as_deref() == Some(t))
        }) {
            let found = pool
                .tree(which)
                .range((request.milli_cpu, i64::MIN, 0)..)
                .find(|&&(_, _, node)| request.fits_in(&free[node]));
            if let Some(&(cpu, mem, node)) = found {
                let candidate = (cpu - request.milli_cpu, mem - request.memory_mib, node);
                if best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
        }
        if let Some((_, _, node)) = best {
            return Some(node);
        }
    }
    None
}

impl CapacityIndex {
    /// Builds the index. `nodes` must be sorted by name (node index order breaks ties);
    /// `env_index` maps an environment name to its position in `environments`.
    pub fn build(
        environments: &[EnvironmentSpec],
        nodes: &[&NodeSnapshot],
        env_index: &HashMap<&str, usize>,
    ) -> CapacityIndex {
        let mut index = CapacityIndex {
            free: Vec::with_capacity(nodes.len()),
            allocatable: Vec::with_capacity(nodes.len()),
            barge_pods: Vec::with_capacity(nodes.len()),
            pool_of: Vec::with_capacity(nodes.len()),
            node_use: Vec::with_capacity(nodes.len()),
            environments: environments
                .iter()
                .map(|e| EnvironmentCapacity {
                    pools: Vec::new(),
                    budget: e.budget_milli_cpu,
                    shapes: e.shapes.as_ref().map(|shapes| {
                        shapes
                            .iter()
                            .map(|s| (s.instance_type.clone(), s.allocatable))
                            .collect()
                    }),
                    failed: HashMap::new(),
                    gang_failed: HashMap::new(),
                    empty_nodes: 0,
                    nodes: Vec::new(),
                    held: 0,
                })
                .collect(),
            memo_hits: 0,
            gangs_holding: 0,
        };
        for (i, node) in nodes.iter().enumerate() {
            let free = node.allocatable.saturating_sub(&node.used);
            index.free.push(free);
            index.allocatable.push(node.allocatable);
            index.barge_pods.push(node.barge_pods);
            let use_ = if node.exclusive {
                NodeUse::Exclusive
            } else {
                NodeUse::Open
            };
            index.node_use.push(use_);
            let env = node
                .environment
                .as_deref()
                .and_then(|e| env_index.get(e).copied())
                .filter(|&e| node.schedulable && environments[e].budget_milli_cpu.is_none());
            let Some(env) = env else {
                index.pool_of.push((usize::MAX, usize::MAX));
                continue;
            };
            let cap = &mut index.environments[env];
            let has_gpu = node.allocatable.gpus > 0;
            let pool = match cap
                .pools
                .iter()
                .position(|p| p.has_gpu == has_gpu && p.instance_type == node.instance_type)
            {
                Some(p) => p,
                None => {
                    cap.pools.push(Pool {
                        has_gpu,
                        instance_type: node.instance_type.clone(),
                        open: BTreeSet::new(),
                        empty: BTreeSet::new(),
                    });
                    cap.pools.len() - 1
                }
            };
            cap.nodes.push(i);
            if use_ == NodeUse::Open {
                let entry = (free.milli_cpu, free.memory_mib, i);
                cap.pools[pool].open.insert(entry);
                if node.barge_pods == 0 {
                    cap.pools[pool].empty.insert(entry);
                    cap.empty_nodes += 1;
                }
            }
            index.pool_of.push((env, pool));
        }
        index
    }

    /// Finds the best node of environment `env` for `request` (restricted to `instance_type`
    /// when given), or room in its budget (budget mode), or None. Remembers failures.
    pub fn find(
        &mut self,
        env: usize,
        request: &Resources,
        instance_type: Option<&str>,
    ) -> Option<Spot> {
        let free = &self.free;
        let cap = self.environments.get_mut(env)?;
        if let Some(left) = cap.budget {
            // The pod's instance type (if any) is the kube-scheduler's to honour; memory and
            // GPUs are not budgeted, but a unit no shape could hold is not admitted.
            let some_shape_holds = cap.shapes.as_ref().is_none_or(|shapes| {
                shapes.iter().any(|(t, allocatable)| {
                    instance_type.is_none_or(|want| want == t) && request.fits_in(allocatable)
                })
            });
            return (some_shape_holds && request.milli_cpu <= left).then_some(Spot::Budget);
        }
        if EnvironmentCapacity::known_to_fail(&cap.failed, request, instance_type) {
            self.memo_hits += 1;
            return None;
        }
        match best_fit(&cap.pools, Tree::Open, free, request, instance_type) {
            Some(node) => Some(Spot::Node(node)),
            None => {
                EnvironmentCapacity::remember_failure(&mut cap.failed, request, instance_type);
                None
            }
        }
    }

    /// Takes `request` out of the free capacity of `spot` in environment `env`: a single unit
    /// (or array child). Its node now has a Barge pod, so no gang member goes there any more.
    pub fn reserve(&mut self, env: usize, spot: Spot, request: &Resources) {
        let node = match spot {
            Spot::Node(node) => node,
            Spot::Budget => {
                if let Some(left) = self
                    .environments
                    .get_mut(env)
                    .and_then(|c| c.budget.as_mut())
                {
                    *left -= request.milli_cpu;
                }
                return;
            }
        };
        let (env, pool) = self.pool_of[node];
        let old = self.free[node];
        let new = old.saturating_sub(request);
        self.free[node] = new;
        let had_pods = self.barge_pods[node] > 0;
        self.barge_pods[node] = self.barge_pods[node].saturating_add(1);
        if let Some(cap) = self.environments.get_mut(env) {
            let pool = &mut cap.pools[pool];
            let old_entry = (old.milli_cpu, old.memory_mib, node);
            pool.open.remove(&old_entry);
            pool.open.insert((new.milli_cpu, new.memory_mib, node));
            if !had_pods && pool.empty.remove(&old_entry) {
                cap.empty_nodes -= 1;
            }
        }
    }

    /// Places a whole gang in environment `env`, all or nothing: every member on a distinct
    /// node without a Barge pod (not exclusive, not held) that fits its request and instance
    /// type, best fit, largest members first. On success the nodes become exclusive for the
    /// rest of the pass and their node indexes come back aligned with `members`; otherwise
    /// nothing changes.
    pub fn place_gang(&mut self, env: usize, members: &[GangMember]) -> Option<Vec<usize>> {
        let CapacityIndex {
            free,
            barge_pods,
            pool_of,
            node_use,
            environments,
            memo_hits,
            ..
        } = self;
        let cap = environments.get_mut(env)?;
        if cap.budget.is_some() {
            return None;
        }
        if members.len() > cap.empty_nodes {
            *memo_hits += 1;
            return None;
        }
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| {
            largest_first(&members[a].request, &members[b].request).then(a.cmp(&b))
        });
        let mut chosen = vec![usize::MAX; members.len()];
        // Nodes taken out of `empty` for this gang so far, with their entries.
        let mut taken: Vec<(usize, Entry)> = Vec::with_capacity(members.len());
        let mut complete = true;
        for &m in &order {
            let member = &members[m];
            let constraint = member.constraints.instance_type.as_deref();
            if EnvironmentCapacity::known_to_fail(&cap.gang_failed, &member.request, constraint) {
                *memo_hits += 1;
                complete = false;
                break;
            }
            match best_fit(&cap.pools, Tree::Empty, free, &member.request, constraint) {
                Some(node) => {
                    let entry = (free[node].milli_cpu, free[node].memory_mib, node);
                    let pool = pool_of[node].1;
                    cap.pools[pool].empty.remove(&entry);
                    taken.push((pool, entry));
                    chosen[m] = node;
                }
                None => {
                    // Only a search no other member narrowed tells about later gangs.
                    if taken.is_empty() {
                        EnvironmentCapacity::remember_failure(
                            &mut cap.gang_failed,
                            &member.request,
                            constraint,
                        );
                    }
                    complete = false;
                    break;
                }
            }
        }
        if !complete {
            for (pool, entry) in taken {
                cap.pools[pool].empty.insert(entry);
            }
            return None;
        }
        for (m, &node) in chosen.iter().enumerate() {
            let pool = pool_of[node].1;
            let old = free[node];
            cap.pools[pool]
                .open
                .remove(&(old.milli_cpu, old.memory_mib, node));
            free[node] = old.saturating_sub(&members[m].request);
            barge_pods[node] = barge_pods[node].saturating_add(1);
            node_use[node] = NodeUse::Exclusive;
        }
        cap.empty_nodes -= members.len();
        Some(chosen)
    }

    /// Holds nodes of environment `env` for a gang that does not fit now, so that no later
    /// unit of this pass takes them: for each member (largest first) the candidate that would
    /// free soonest — fewest Barge pods (a node running a gang counts as busy), then least
    /// used, then name — among the schedulable nodes not held yet whose allocatable fits the
    /// member and whose instance type matches (GPU members on GPU nodes only; other members on
    /// nodes without GPUs first). All members or none: returns whether the gang holds nodes.
    pub fn hold_for_gang(&mut self, env: usize, members: &[GangMember]) -> bool {
        let CapacityIndex {
            free,
            allocatable,
            barge_pods,
            pool_of,
            node_use,
            environments,
            gangs_holding,
            ..
        } = self;
        let Some(cap) = environments.get_mut(env) else {
            return false;
        };
        if cap.budget.is_some() || members.len() > cap.nodes.len() - cap.held {
            return false;
        }
        let mut candidates: Vec<(u32, i64, i64, usize)> = cap
            .nodes
            .iter()
            .filter(|&&n| node_use[n] != NodeUse::Held)
            .map(|&n| {
                let pods = match node_use[n] {
                    NodeUse::Exclusive => barge_pods[n].max(1),
                    _ => barge_pods[n],
                };
                let used = allocatable[n].saturating_sub(&free[n]);
                (pods, used.milli_cpu, used.memory_mib, n)
            })
            .collect();
        candidates.sort_unstable();
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| {
            largest_first(&members[a].request, &members[b].request).then(a.cmp(&b))
        });
        let mut picked = vec![false; candidates.len()];
        let mut chosen = Vec::with_capacity(members.len());
        for &m in &order {
            let member = &members[m];
            let constraint = member.constraints.instance_type.as_deref();
            let passes: &[bool] = if member.request.gpus > 0 {
                &[true]
            } else {
                &[false, true]
            };
            let found = passes.iter().find_map(|&gpu_pass| {
                (0..candidates.len()).find(|&c| {
                    let n = candidates[c].3;
                    let pool = &cap.pools[pool_of[n].1];
                    !picked[c]
                        && pool.has_gpu == gpu_pass
                        && constraint.is_none_or(|t| pool.instance_type.as_deref() == Some(t))
                        && member.request.fits_in(&allocatable[n])
                })
            });
            let Some(c) = found else {
                return false;
            };
            picked[c] = true;
            chosen.push(candidates[c].3);
        }
        for node in chosen {
            let pool = &mut cap.pools[pool_of[node].1];
            if node_use[node] == NodeUse::Open {
                let entry = (free[node].milli_cpu, free[node].memory_mib, node);
                pool.open.remove(&entry);
                if pool.empty.remove(&entry) {
                    cap.empty_nodes -= 1;
                }
            }
            node_use[node] = NodeUse::Held;
            cap.held += 1;
        }
        *gangs_holding += 1;
        true
    }
}
