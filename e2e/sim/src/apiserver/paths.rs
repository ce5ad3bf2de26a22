//! Parsing of REST paths (`/api/v1/namespaces/ns/pods/p/status`, `/apis/g/v/...`) and query
//! parameters into plain values the handlers dispatch on.

use std::collections::BTreeMap;

/// What a resource URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Subresources of namespaces (which would otherwise read as a resource inside a namespace).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parse a resource path; None when the path is not a resource URL (discovery, unknown).
pub fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    if rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    let s = |x: &&str| x.to_string();
    let t = |namespace: Option<String>,
             resource: &str,
             name: Option<String>,
             sub: Option<String>| Target {
        group: group.clone(),
        version: version.clone(),
        namespace,
        resource: resource.to_string(),
        name,
        subresource: sub,
    };
    Some(match rest {
        [res] => t(None, res, None, None),
        ["namespaces", ns] => t(None, "namespaces", Some(s(ns)), None),
        ["namespaces", ns, sub] if NAMESPACE_SUBRESOURCES.contains(sub) => {
            t(None, "namespaces", Some(s(ns)), Some(s(sub)))
        }
        ["namespaces", ns, res] => t(Some(s(ns)), res, None, None),
        ["namespaces", ns, res, name] => t(Some(s(ns)), res, Some(s(name)), None),
        ["namespaces", ns, res, name, sub] => t(Some(s(ns)), res, Some(s(name)), Some(s(sub))),
        [res, name] => t(None, res, Some(s(name)), None),
        [res, name, sub] => t(None, res, Some(s(name)), Some(s(sub))),
        _ => return None,
    })
}

/// Query parameters, decoded.
#[derive(Debug, Clone, Default)]
pub struct Query(pub BTreeMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.0.get(k).map(String::as_str),
            Some("true") | Some("1") | Some("")
        ) && self.0.contains_key(k)
            && self.0.get(k).map(String::as_str) != Some("false")
    }

    pub fn int(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.parse().ok())
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgt(g: &str, ns: Option<&str>, r: &str, n: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            group: g.into(),
            version: "v1".into(),
            namespace: ns.map(Into::into),
            resource: r.into(),
            name: n.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn parses_core_and_group_paths() {
        assert_eq!(
            parse_target("/api/v1/pods"),
            Some(tgt("", None, "pods", None, None))
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/default/pods"),
            Some(tgt("", Some("default"), "pods", None, None))
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/d/pods/p/status"),
            Some(tgt("", Some("d"), "pods", Some("p"), Some("status")))
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/d"),
            Some(tgt("", None, "namespaces", Some("d"), None))
        );
        assert_eq!(
            parse_target("/api/v1/namespaces/d/finalize"),
            Some(tgt("", None, "namespaces", Some("d"), Some("finalize")))
        );
        assert_eq!(
            parse_target("/api/v1/nodes/n1/status"),
            Some(tgt("", None, "nodes", Some("n1"), Some("status")))
        );
        assert_eq!(
            parse_target("/apis/batch.barge.dev/v1/namespaces/x/jobs/j"),
            Some(tgt("batch.barge.dev", Some("x"), "jobs", Some("j"), None))
        );
        assert_eq!(parse_target("/apis/apps/v1"), None);
        assert_eq!(parse_target("/api"), None);
    }

    #[test]
    fn query_flags() {
        let q = Query::parse(Some(
            "watch=true&labelSelector=a%3Db&limit=5&dryRun=All&x=false",
        ));
        assert!(q.flag("watch"));
        assert!(!q.flag("x"));
        assert!(!q.flag("y"));
        assert_eq!(q.get("labelSelector"), Some("a=b"));
        assert_eq!(q.int("limit"), Some(5));
        assert!(q.dry_run());
    }
}
