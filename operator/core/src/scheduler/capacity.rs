//! Free capacity of the nodes of each compute environment, indexed for best-fit placement.
//!
//! Per environment, nodes are grouped into pools by (has GPUs, instance type); each pool keeps
//! its nodes in a `BTreeSet` ordered by (free millicpu, free memory, node). The best fit in a
//! pool is the first node at or above the request's CPU that also fits memory, GPUs and pod
//! slots; the best fit in an environment is the best over its pools (least CPU, then memory,
//! left over). Non-GPU requests try non-GPU pools first and use GPU nodes only when nothing else
//! fits. Placing a unit shrinks its node's free capacity (remove + reinsert).
//!
//! An environment in budget mode (`bindingMode: KubeScheduler`, see
//! [`EnvironmentSpec::budget_milli_cpu`]) is one capacity pool rather than nodes: a unit fits
//! while its CPU fits in what is left of the budget, and its nodes are not indexed.
//!
//! Free capacity only shrinks within a pass, so once a request failed in an environment, any
//! request at least as large (field by field, same constraint) fails too: each environment
//! remembers the minimal failed requests and answers those in O(1) without touching nodes.

use super::{EnvironmentSpec, NodeSnapshot};
use crate::resources::Resources;
use std::collections::{BTreeSet, HashMap};

struct Pool {
    has_gpu: bool,
    instance_type: Option<String>,
    /// (free millicpu, free memory MiB, node index)
    tree: BTreeSet<(i64, i64, usize)>,
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
    pool_of: Vec<(usize, usize)>,
    environments: Vec<EnvironmentCapacity>,
    /// Requests answered by the failure memo without looking at nodes.
    pub memo_hits: u64,
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
            pool_of: Vec::with_capacity(nodes.len()),
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
                })
                .collect(),
            memo_hits: 0,
        };
        for (i, node) in nodes.iter().enumerate() {
            let free = node.allocatable.saturating_sub(&node.used);
            index.free.push(free);
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
                        tree: BTreeSet::new(),
                    });
                    cap.pools.len() - 1
                }
            };
            cap.pools[pool]
                .tree
                .insert((free.milli_cpu, free.memory_mib, i));
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
        let key = instance_type.map(str::to_string);
        if cap
            .failed
            .get(&key)
            .is_some_and(|failed| failed.iter().any(|f| f.fits_in(request)))
        {
            self.memo_hits += 1;
            return None;
        }
        // GPU requests only on GPU nodes; other requests prefer nodes without GPUs.
        let passes: &[bool] = if request.gpus > 0 {
            &[true]
        } else {
            &[false, true]
        };
        for &gpu_pass in passes {
            let mut best: Option<(i64, i64, usize)> = None;
            for pool in cap.pools.iter().filter(|p| {
                p.has_gpu == gpu_pass
                    && instance_type.is_none_or(|t| p.instance_type.as_deref() == Some(t))
            }) {
                let found = pool
                    .tree
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
                return Some(Spot::Node(node));
            }
        }
        let failed = cap.failed.entry(key).or_default();
        failed.retain(|f| !request.fits_in(f));
        failed.push(*request);
        None
    }

    /// Takes `request` out of the free capacity of `spot` in environment `env`.
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
        if let Some(cap) = self.environments.get_mut(env) {
            let tree = &mut cap.pools[pool].tree;
            tree.remove(&(old.milli_cpu, old.memory_mib, node));
            tree.insert((new.milli_cpu, new.memory_mib, node));
        }
    }
}
