//! `metav1.Status` errors, worded as kube-apiserver words them.
//!
//! Every failure a handler can hit becomes an [`ApiError`]; its `IntoResponse` renders the JSON
//! `Status` body (`kind: Status`, `status: Failure`, `reason`, `code`, `details`) that kube-rs,
//! kubectl and Helm decode into their own error types.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A failed request: HTTP code plus the `Status` body sent to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
    /// Seconds for a `Retry-After` header (429 / throttling faults).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A Status with the given code, reason and message, and optional `details`.
    pub fn new(
        code: u16,
        reason: &str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "reason": reason,
            "code": code,
        });
        if let Some(d) = details {
            body["details"] = d;
        }
        ApiError {
            code,
            body,
            retry_after: None,
        }
    }

    /// A ready-made Status body (from apimachinery: 422 Invalid, 409 apply conflicts).
    pub fn from_status(body: Value) -> Self {
        let code = body.get("code").and_then(Value::as_u64).unwrap_or(500) as u16;
        ApiError {
            code,
            body,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    /// `pods "x" not found` (the resource is `plural` or `plural.group`).
    pub fn not_found(qualified_resource: &str, name: &str) -> Self {
        let (kind, group) = split_qualified(qualified_resource);
        Self::new(
            404,
            "NotFound",
            format!("{qualified_resource} \"{name}\" not found"),
            Some(json!({"name": name, "group": group, "kind": kind})),
        )
    }

    /// 404 for a URL that names no resource at all.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
            Some(json!({})),
        )
    }

    pub fn already_exists(qualified_resource: &str, name: &str) -> Self {
        let (kind, group) = split_qualified(qualified_resource);
        Self::new(
            409,
            "AlreadyExists",
            format!("{qualified_resource} \"{name}\" already exists"),
            Some(json!({"name": name, "group": group, "kind": kind})),
        )
    }

    /// The optimistic-concurrency 409.
    pub fn conflict(qualified_resource: &str, name: &str, why: &str) -> Self {
        let (kind, group) = split_qualified(qualified_resource);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {qualified_resource} \"{name}\": {why}"),
            Some(json!({"name": name, "group": group, "kind": kind})),
        )
    }

    pub fn stale(qualified_resource: &str, name: &str) -> Self {
        Self::conflict(qualified_resource, name, MSG_MODIFIED)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message, Some(json!({})))
    }

    pub fn unsupported_media(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"), Some(json!({})))
    }

    pub fn forbidden(qualified_resource: &str, name: &str, why: &str) -> Self {
        let (kind, group) = split_qualified(qualified_resource);
        Self::new(
            403,
            "Forbidden",
            format!("{qualified_resource} \"{name}\" is forbidden: {why}"),
            Some(json!({"name": name, "group": group, "kind": kind})),
        )
    }

    /// 410 Gone for a resourceVersion older than the watch history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message, None)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            message,
            Some(json!({"causes": [{"message": "injected or internal failure"}]})),
        )
    }

    pub fn too_many_requests() -> Self {
        let mut e = Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
            Some(json!({"retryAfterSeconds": 1})),
        );
        e.retry_after = Some(1);
        e
    }

    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, message: &str) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {field}: {message}"),
            Some(json!({"name": name, "group": group, "kind": kind,
                        "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]})),
        )
    }
}

/// The standard optimistic-concurrency conflict text.
pub const MSG_MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

fn split_qualified(q: &str) -> (&str, &str) {
    match q.split_once('.') {
        Some((r, g)) => (r, g),
        None => (q, ""),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, json_bytes(&self.body)).into_response();
        resp.headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// `application/json`.
pub const JSON: &str = "application/json";

/// Serialise a value; serde_json cannot fail on a `Value`.
pub fn json_bytes(v: &Value) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// A successful JSON response with the given code.
pub fn json_response(code: u16, body: bytes::Bytes) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let mut resp = (code, body).into_response();
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// `{"kind":"Status","status":"Success",...}` as returned by an immediate delete.
pub fn success_status(name: &str, group: &str, kind: &str, uid: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "details": {"name": name, "group": group, "kind": kind, "uid": uid}})
}

pub type ApiResult<T> = Result<T, ApiError>;
