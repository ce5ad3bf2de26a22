//! The request log: one [`RequestRecord`] per impersonated request (who, what, allowed or not,
//! answer code), for tests that check what a client did as which user, or derive the
//! permissions it needs. Unimpersonated requests (the `system:admin` fast path) are not
//! recorded. Bounded: the oldest records are dropped beyond [`REQUEST_LOG_LIMIT`].

use std::collections::VecDeque;
use std::sync::Mutex;

use super::requestinfo::RequestInfo;
use super::UserInfo;

/// Records kept; older ones are dropped.
pub const REQUEST_LOG_LIMIT: usize = 100_000;

/// One authorized (or refused) request. Strings are empty where the attribute does not apply,
/// as in kube-apiserver's authorization attributes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The URL path.
    pub path: String,
    /// A resource request (else a non-resource path such as `/api` or `/version`).
    pub resource_request: bool,
    /// Whether the authorizer allowed it (false too when the max-in-flight filter refused it
    /// before authorization: code 429).
    pub allowed: bool,
    /// The HTTP status code of the answer (403 when refused by the authorizer, 429 by the
    /// max-in-flight filter).
    pub code: u16,
}

impl RequestRecord {
    pub fn new(user: &UserInfo, info: &RequestInfo, allowed: bool, code: u16) -> Self {
        RequestRecord {
            user: user.name.clone(),
            groups: user.groups.clone(),
            verb: info.verb.clone(),
            api_group: info.api_group.clone(),
            api_version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            path: info.path.clone(),
            resource_request: info.is_resource_request,
            allowed,
            code,
        }
    }
}

/// The server's request log.
#[derive(Debug, Default)]
pub struct RequestLog(Mutex<VecDeque<RequestRecord>>);

impl RequestLog {
    pub fn record(&self, r: RequestRecord) {
        if let Ok(mut log) = self.0.lock() {
            if log.len() == REQUEST_LOG_LIMIT {
                log.pop_front();
            }
            log.push_back(r);
        }
    }

    /// The records so far, oldest first.
    pub fn snapshot(&self) -> Vec<RequestRecord> {
        self.0
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut l) = self.0.lock() {
            l.clear();
        }
    }
}
