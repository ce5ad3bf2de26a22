//! The authorization attributes of a request, computed from its method, path and query as
//! kube-apiserver's `RequestInfoFactory.NewRequestInfo` (k8s.io/apiserver
//! pkg/endpoints/request/requestinfo.go) computes them:
//!
//! - `/api/v1/...` and `/apis/GROUP/VERSION/...` with at least one segment after the version are
//!   resource requests; everything else (`/api`, `/apis/g/v`, `/version`, `/healthz`,
//!   `/openapi/v3`, ...) is a non-resource request whose verb is the lower-cased HTTP method;
//! - the verb comes from the method (POST create, GET/HEAD get, PUT update, PATCH patch, DELETE
//!   delete) or from a special first segment (`/api/v1/watch/...`, `/api/v1/proxy/...`);
//! - `namespaces/NS/...` sets the namespace (and `namespaces/NS` itself is the namespace object,
//!   in its own namespace; `status` and `finalize` are its subresources);
//! - a GET without a name is `list`, or `watch` with `?watch=` anything but `0`/`false`; a
//!   `fieldSelector` of `metadata.name=X` names the object; a DELETE without a name is
//!   `deletecollection`.

/// Attributes of one request (resource or non-resource), as authorizers see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// A resource request (else a non-resource path).
    pub is_resource_request: bool,
    /// The URL path.
    pub path: String,
    pub verb: String,
    /// `api` or `apis` (resource requests).
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    /// Empty for cluster-scoped requests and requests across all namespaces.
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The path segments from the resource on.
    pub parts: Vec<String>,
}

/// Verbs that may come first in a resource path.
const SPECIAL_VERBS: &[&str] = &["proxy", "watch"];
/// Special verbs whose trailing segments are not a subresource.
const SPECIAL_VERBS_NO_SUBRESOURCES: &[&str] = &["proxy"];
/// Subresources of a namespace (`/api/v1/namespaces/NS/status`).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];
const API_PREFIXES: &[&str] = &["api", "apis"];
const GROUPLESS_API_PREFIXES: &[&str] = &["api"];

/// A path kube-apiserver cannot make sense of (a special verb with nothing after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfoError(pub String);

/// The request attributes of `method path?query`.
pub fn request_info(
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Result<RequestInfo, RequestInfoError> {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.to_lowercase(),
        ..RequestInfo::default()
    };
    let mut parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|_| !path.trim_matches('/').is_empty())
        .map(String::from)
        .collect();
    if parts.len() < 3 || !API_PREFIXES.contains(&parts[0].as_str()) {
        return Ok(info);
    }
    let prefix = parts.remove(0);
    if !GROUPLESS_API_PREFIXES.contains(&prefix.as_str()) {
        // The prefix is consumed: "do we have a group, a version and a resource?"
        if parts.len() < 3 {
            return Ok(info);
        }
        info.api_group = parts.remove(0);
    }
    info.api_prefix = prefix;
    info.is_resource_request = true;
    info.api_version = parts.remove(0);

    if SPECIAL_VERBS.contains(&parts[0].as_str()) {
        if parts.len() < 2 {
            return Err(RequestInfoError(format!(
                "unable to determine kind and namespace from url, {path}"
            )));
        }
        info.verb = parts.remove(0);
    } else {
        info.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }

    if parts[0] == "namespaces" && parts.len() > 1 {
        info.namespace = parts[1].clone();
        // Another segment that is not a namespace subresource: a resource in the namespace.
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2].as_str()) {
            parts.drain(..2);
        }
    }
    if !parts.is_empty() {
        info.resource = parts[0].clone();
    }
    if parts.len() >= 2 {
        info.name = parts[1].clone();
    }
    if parts.len() >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.contains(&info.verb.as_str()) {
        info.subresource = parts[2].clone();
    }
    info.parts = parts;

    if info.name.is_empty() && info.verb == "get" {
        let q = ListQuery::parse(query);
        info.verb = if q.watch { "watch" } else { "list" }.to_string();
        if let Some(name) = q.name_from_field_selector {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_string();
    }
    Ok(info)
}

/// What requestinfo.go reads of a list's query: `watch` and a `metadata.name` field selector.
struct ListQuery {
    watch: bool,
    name_from_field_selector: Option<String>,
}

impl ListQuery {
    fn parse(query: Option<&str>) -> ListQuery {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let first = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        // metav1's string→bool conversion: absent is false, "0" and "false" (any case) are
        // false, anything else (even empty) is true.
        let watch = first("watch").is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        let name_from_field_selector = first("fieldSelector")
            .and_then(exact_name_match)
            .filter(|n| valid_path_segment_name(n));
        ListQuery {
            watch,
            name_from_field_selector,
        }
    }
}

/// The value of a `metadata.name=X` / `metadata.name==X` term of a field selector.
fn exact_name_match(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let term = term.trim();
        if term.contains("!=") {
            return None;
        }
        let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
        (k.trim() == "metadata.name").then(|| v.trim().to_string())
    })
}

/// `path.IsValidPathSegmentName`: not `.` or `..`, no `/` or `%`.
fn valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ri(method: &str, url: &str) -> RequestInfo {
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        request_info(method, path, query).unwrap()
    }

    /// (verb, apiGroup, namespace, resource, subresource, name)
    type Attrs<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

    fn attrs(i: &RequestInfo) -> Attrs<'_> {
        (
            &i.verb,
            &i.api_group,
            &i.namespace,
            &i.resource,
            &i.subresource,
            &i.name,
        )
    }

    #[test]
    fn resource_requests_as_upstream_parses_them() {
        // Cases from requestinfo_test.go's TestGetAPIRequestInfo, plus the sim's kinds.
        let cases: &[(&str, &str, Attrs<'static>)] = &[
            (
                "GET",
                "/api/v1/namespaces",
                ("list", "", "", "namespaces", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other",
                ("get", "", "other", "namespaces", "", "other"),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods",
                ("list", "", "other", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods/foo",
                ("get", "", "other", "pods", "", "foo"),
            ),
            (
                "HEAD",
                "/api/v1/namespaces/other/pods/foo",
                ("get", "", "other", "pods", "", "foo"),
            ),
            ("GET", "/api/v1/pods", ("list", "", "", "pods", "", "")),
            (
                "GET",
                "/api/v1/namespaces/other/pods/foo/log",
                ("get", "", "other", "pods", "log", "foo"),
            ),
            (
                "POST",
                "/api/v1/namespaces/other/pods/foo/binding",
                ("create", "", "other", "pods", "binding", "foo"),
            ),
            (
                "GET",
                "/api/v1/watch/pods",
                ("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=true",
                ("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=false",
                ("list", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=0",
                ("list", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=",
                ("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods?watch=1&watch=false",
                ("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/other/pods",
                ("watch", "", "other", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo",
                ("list", "", "other", "pods", "", "foo"),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods?watch=true&fieldSelector=metadata.name%3D%3Dfoo",
                ("watch", "", "other", "pods", "", "foo"),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods?fieldSelector=metadata.name%21%3Dfoo",
                ("list", "", "other", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods?fieldSelector=spec.nodeName%3Dn1",
                ("list", "", "other", "pods", "", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/other/pods",
                ("create", "", "other", "pods", "", ""),
            ),
            (
                "PUT",
                "/api/v1/namespaces/other/pods/foo",
                ("update", "", "other", "pods", "", "foo"),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/other/pods/foo",
                ("patch", "", "other", "pods", "", "foo"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/other/pods/foo",
                ("delete", "", "other", "pods", "", "foo"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/other/pods",
                ("deletecollection", "", "other", "pods", "", ""),
            ),
            (
                "PUT",
                "/api/v1/namespaces/other/finalize",
                ("update", "", "other", "namespaces", "finalize", "other"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/other/status",
                ("update", "", "other", "namespaces", "status", "other"),
            ),
            (
                "GET",
                "/apis/extensions/v1beta1/namespaces/other/extensions",
                ("list", "extensions", "other", "extensions", "", ""),
            ),
            (
                "GET",
                "/apis/batch.barge.dev/v1/namespaces/team-a/jobs/j1/status",
                ("get", "batch.barge.dev", "team-a", "jobs", "status", "j1"),
            ),
            (
                "POST",
                "/apis/batch.barge.dev/v1/namespaces/team-a/jobs",
                ("create", "batch.barge.dev", "team-a", "jobs", "", ""),
            ),
            (
                "GET",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/edit",
                (
                    "get",
                    "rbac.authorization.k8s.io",
                    "",
                    "clusterroles",
                    "",
                    "edit",
                ),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/d/deployments/web/scale",
                ("update", "apps", "d", "deployments", "scale", "web"),
            ),
            (
                "GET",
                "/api/v1/proxy/namespaces/other/pods/foo/sub/path",
                ("proxy", "", "other", "pods", "", "foo"),
            ),
        ];
        for (method, url, want) in cases {
            let got = ri(method, url);
            assert!(got.is_resource_request, "{method} {url}");
            assert_eq!(attrs(&got), *want, "{method} {url}");
        }
    }

    #[test]
    fn non_resource_requests() {
        for (method, url, verb) in [
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis", "get"),
            ("GET", "/apis/apps", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("GET", "/version", "get"),
            ("GET", "/healthz", "get"),
            ("GET", "/openapi/v3/apis/batch.barge.dev/v1", "get"),
            ("POST", "/sim/v1/compact", "post"),
            ("GET", "/", "get"),
        ] {
            let got = ri(method, url);
            assert!(!got.is_resource_request, "{url}");
            assert_eq!(got.verb, verb, "{url}");
            assert_eq!(got.path, url.split('?').next().unwrap());
        }
    }

    #[test]
    fn special_verb_without_resource_is_an_error() {
        for path in [
            "/api/v1/watch",
            "/api/v1/watch/",
            "/apis/apps/v1/watch",
            "/api/v1/proxy",
        ] {
            assert!(request_info("GET", path, None).is_err(), "{path}");
        }
    }
}
