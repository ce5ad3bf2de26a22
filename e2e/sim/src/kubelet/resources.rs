//! Resource arithmetic and kubelet admission. A pod's effective request is what the scheduler
//! and the kubelet use (`max(sum(containers), max(initContainers)) + overhead`, a container's
//! limit standing in for a missing request); admission compares it with the node's allocatable
//! minus what non-terminal pods already hold and refuses with the kubelet's `OutOf<resource>`
//! reason and message. Pure functions over plain maps of milli-units.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::consts::{RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PODS};
use super::quantity::{display_amount, parse_milli, QuantityError};

/// Resource name → amount in milli-units.
pub type Resources = BTreeMap<String, i128>;

/// Parses a `ResourceList` into milli-units.
pub fn parse_resources(list: &BTreeMap<String, Quantity>) -> Result<Resources, QuantityError> {
    list.iter()
        .map(|(k, v)| Ok((k.clone(), parse_milli(&v.0)?)))
        .collect()
}

/// Parses a resource map written as name → quantity string (the capacity annotation).
pub fn parse_resource_strings(list: &BTreeMap<String, String>) -> Result<Resources, QuantityError> {
    list.iter()
        .map(|(k, v)| Ok((k.clone(), parse_milli(v)?)))
        .collect()
}

/// Adds `b` into `a`.
pub fn add_into(a: &mut Resources, b: &Resources) {
    for (k, v) in b {
        *a.entry(k.clone()).or_insert(0) += v;
    }
}

/// Subtracts `b` from `a` (entries may go to zero; they are kept).
pub fn sub_from(a: &mut Resources, b: &Resources) {
    for (k, v) in b {
        *a.entry(k.clone()).or_insert(0) -= v;
    }
}

/// Container requests, a limit standing in for a missing request (as API defaulting does).
pub fn container_requests(c: &Container) -> Result<Resources, QuantityError> {
    let Some(res) = &c.resources else {
        return Ok(Resources::new());
    };
    let mut out = match &res.limits {
        Some(l) => parse_resources(l)?,
        None => Resources::new(),
    };
    if let Some(r) = &res.requests {
        out.extend(parse_resources(r)?);
    }
    Ok(out)
}

/// Container limits (used by `resourceFieldRef: limits.*`).
pub fn container_limits(c: &Container) -> Result<Resources, QuantityError> {
    match c.resources.as_ref().and_then(|r| r.limits.as_ref()) {
        Some(l) => parse_resources(l),
        None => Ok(Resources::new()),
    }
}

/// The pod's effective request, without the pod slot itself.
pub fn pod_requests(spec: &PodSpec) -> Result<Resources, QuantityError> {
    let mut sum = Resources::new();
    for c in &spec.containers {
        add_into(&mut sum, &container_requests(c)?);
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, v) in container_requests(c)? {
            let e = sum.entry(k).or_insert(0);
            if v > *e {
                *e = v;
            }
        }
    }
    if let Some(overhead) = &spec.overhead {
        add_into(&mut sum, &parse_resources(overhead)?);
    }
    Ok(sum)
}

/// Why a kubelet refused a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `OutOfcpu`, `OutOfmemory`, `OutOfpods`, `OutOfnvidia.com/gpu`, ...
    pub reason: String,
    /// `Node didn't have enough resource: cpu, requested: 2000, used: 3000, capacity: 4000`
    pub message: String,
}

/// The first resource that does not fit, in the kubelet's order: pods, cpu, memory, then the
/// others by name. `used` holds the requests of the node's non-terminal pods and `pods_used`
/// their count. A resource the node does not have counts as capacity 0.
pub fn first_insufficient(
    request: &Resources,
    used: &Resources,
    pods_used: i128,
    allocatable: &Resources,
) -> Option<Rejection> {
    let cap = |name: &str| allocatable.get(name).copied().unwrap_or(0);
    let pods_cap = milli_to_count(cap(RESOURCE_PODS));
    if pods_used + 1 > pods_cap {
        return Some(reject(RESOURCE_PODS, 1, pods_used, pods_cap));
    }
    let ordered = [RESOURCE_CPU, RESOURCE_MEMORY].into_iter().chain(
        request
            .keys()
            .map(String::as_str)
            .filter(|k| ![RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PODS].contains(k)),
    );
    for name in ordered {
        let want = request.get(name).copied().unwrap_or(0);
        if want <= 0 {
            continue;
        }
        let have = used.get(name).copied().unwrap_or(0);
        if want + have > cap(name) {
            return Some(reject(
                name,
                display_amount(name, want),
                display_amount(name, have),
                display_amount(name, cap(name)),
            ));
        }
    }
    None
}

fn milli_to_count(m: i128) -> i128 {
    m / 1000
}

fn reject(name: &str, requested: i128, used: i128, capacity: i128) -> Rejection {
    Rejection {
        reason: format!("OutOf{name}"),
        message: format!(
            "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: (!requests.is_empty()).then(|| q(requests)),
                limits: (!limits.is_empty()).then(|| q(limits)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn res(pairs: &[(&str, i128)]) -> Resources {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn effective_request_is_max_of_init_and_sum_of_containers_plus_overhead() {
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "500m")], &[]),
                container(&[], &[("cpu", "1"), ("memory", "1Gi")]),
            ],
            init_containers: Some(vec![container(&[("cpu", "2")], &[])]),
            overhead: Some(q(&[("cpu", "100m")])),
            ..Default::default()
        };
        let r = pod_requests(&spec).expect("valid");
        assert_eq!(r["cpu"], 2100);
        assert_eq!(r["memory"], 1_073_741_824_000);
    }

    #[test]
    fn refuses_cpu_with_the_kubelet_message() {
        let alloc = res(&[("cpu", 4000), ("memory", 8_000_000), ("pods", 110_000)]);
        let used = res(&[("cpu", 3000)]);
        let rej = first_insufficient(&res(&[("cpu", 2000)]), &used, 1, &alloc).expect("refused");
        assert_eq!(rej.reason, "OutOfcpu");
        assert_eq!(
            rej.message,
            "Node didn't have enough resource: cpu, requested: 2000, used: 3000, capacity: 4000"
        );
        assert!(first_insufficient(&res(&[("cpu", 1000)]), &used, 1, &alloc).is_none());
    }

    #[test]
    fn refuses_memory_pods_and_extended_resources() {
        let alloc = res(&[
            ("cpu", 4000),
            ("memory", 1_000_000),
            ("pods", 2000),
            ("nvidia.com/gpu", 1000),
        ]);
        let r = first_insufficient(&res(&[("memory", 2_000_000)]), &Resources::new(), 0, &alloc)
            .expect("memory");
        assert_eq!(r.reason, "OutOfmemory");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: memory, requested: 2000, used: 0, capacity: 1000"
        );
        let r = first_insufficient(&Resources::new(), &Resources::new(), 2, &alloc).expect("pods");
        assert_eq!(r.reason, "OutOfpods");
        assert_eq!(
            r.message,
            "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2"
        );
        let r = first_insufficient(
            &res(&[("nvidia.com/gpu", 2000)]),
            &Resources::new(),
            0,
            &alloc,
        )
        .expect("gpu");
        assert_eq!(r.reason, "OutOfnvidia.com/gpu");
        let no_gpu = res(&[("cpu", 4000), ("pods", 2000)]);
        let r = first_insufficient(
            &res(&[("example.com/fpga", 1000)]),
            &Resources::new(),
            0,
            &no_gpu,
        )
        .expect("missing resource");
        assert_eq!(r.reason, "OutOfexample.com/fpga");
    }

    #[test]
    fn bad_quantities_are_errors_not_panics() {
        let spec = PodSpec {
            containers: vec![container(&[("cpu", "lots")], &[])],
            ..Default::default()
        };
        assert!(pod_requests(&spec).is_err());
    }
}
