//! Authentication by impersonation, as kube-apiserver's `WithImpersonation` filter
//! (k8s.io/apiserver pkg/endpoints/filters/impersonation.go) does it.
//!
//! Headers: `Impersonate-User`, `Impersonate-Group` (repeated), `Impersonate-Uid` and
//! `Impersonate-Extra-KEY` (repeated; the key lower-cased and %-unescaped). Groups, extras or a
//! uid without a user are refused (500, as upstream). The impersonated user gets:
//! - for a service account user `system:serviceaccount:NS:NAME` with no `Impersonate-Group`:
//!   the groups `system:serviceaccounts` and `system:serviceaccounts:NS`;
//! - `system:authenticated`, unless `system:authenticated` or `system:unauthenticated` is among
//!   its groups (`system:unauthenticated` instead for `system:anonymous`).
//!
//! Upstream first authorizes the requester to `impersonate` each of users / groups /
//! serviceaccounts / uids / userextras. The sim's requester is always `system:admin` in
//! `system:masters` (it has no other authentication), which may impersonate anyone, so that check
//! always passes and is not evaluated.

use std::collections::BTreeMap;

use http::HeaderMap;

use super::UserInfo;

pub const IMPERSONATE_USER: &str = "impersonate-user";
pub const IMPERSONATE_GROUP: &str = "impersonate-group";
pub const IMPERSONATE_UID: &str = "impersonate-uid";
pub const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";

pub const ALL_AUTHENTICATED: &str = "system:authenticated";
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
pub const ANONYMOUS: &str = "system:anonymous";
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
pub const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// Whether a request carries any impersonation header (one pass over the header names; the
/// unimpersonated fast path pays nothing more).
pub fn requested(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-"))
}

/// `serviceaccount.SplitUsername`: (namespace, name) of a valid service-account user name.
pub fn split_service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    if name.contains(':') || ns.is_empty() || name.is_empty() {
        return None;
    }
    crate::apiserver::objects::check_label_name(ns).ok()?;
    crate::apiserver::objects::check_subdomain(name).ok()?;
    Some((ns, name))
}

/// `serviceaccount.MakeGroupNames`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        ALL_SERVICE_ACCOUNTS.to_string(),
        format!("{ALL_SERVICE_ACCOUNTS}:{namespace}"),
    ]
}

/// The user a request impersonates: None without impersonation headers, an error message for
/// headers upstream refuses.
pub fn impersonated_user(headers: &HeaderMap) -> Result<Option<UserInfo>, String> {
    let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let user = headers
        .get(IMPERSONATE_USER)
        .map(text)
        .filter(|u| !u.is_empty());
    let requested_groups: Vec<String> = headers
        .get_all(IMPERSONATE_GROUP)
        .iter()
        .map(text)
        .collect();
    let uid = headers
        .get(IMPERSONATE_UID)
        .map(text)
        .filter(|u| !u.is_empty());
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(IMPERSONATE_EXTRA_PREFIX) {
            extra
                .entry(unescape_extra_key(&key.to_lowercase()))
                .or_default()
                .push(text(value));
        }
    }
    let Some(username) = user else {
        if requested_groups.is_empty() && extra.is_empty() && uid.is_none() {
            return Ok(None);
        }
        let mut what = Vec::new();
        what.extend(requested_groups.iter().map(|g| format!("Group {g:?}")));
        what.extend(extra.keys().map(|k| format!("UserExtra {k:?}")));
        what.extend(uid.iter().map(|u| format!("UID {u:?}")));
        return Err(format!(
            "requested [{}] without impersonating a user",
            what.join(" ")
        ));
    };
    let groups_specified = !requested_groups.is_empty();
    let mut groups = Vec::new();
    if let Some((ns, _)) = split_service_account(&username) {
        if !groups_specified {
            groups = service_account_groups(ns);
        }
    }
    groups.extend(requested_groups);
    if username != ANONYMOUS {
        if !groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
        {
            groups.push(ALL_AUTHENTICATED.to_string());
        }
    } else if !groups.iter().any(|g| g == ALL_UNAUTHENTICATED) {
        groups.push(ALL_UNAUTHENTICATED.to_string());
    }
    Ok(Some(UserInfo {
        name: username,
        uid: uid.unwrap_or_default(),
        groups,
        extra,
    }))
}

/// `url.PathUnescape` of an extra key; a malformed key is kept as it is.
fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return key.to_string(),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn user(pairs: &[(&str, &str)]) -> UserInfo {
        impersonated_user(&headers(pairs)).unwrap().unwrap()
    }

    #[test]
    fn no_headers_no_impersonation() {
        let h = headers(&[("accept", "application/json")]);
        assert!(!requested(&h));
        assert_eq!(impersonated_user(&h), Ok(None));
        assert!(requested(&headers(&[("Impersonate-User", "alice")])));
    }

    #[test]
    fn user_gets_system_authenticated() {
        let u = user(&[("Impersonate-User", "alice")]);
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["system:authenticated"]);
        let u = user(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Uid", "1234"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Extra-Scopes", "development"),
            ("Impersonate-Extra-Acme.com%2Fproject", "x"),
        ]);
        assert_eq!(u.groups, vec!["devs", "ops", "system:authenticated"]);
        assert_eq!(u.uid, "1234");
        assert_eq!(u.extra["scopes"], vec!["view", "development"]);
        assert_eq!(u.extra["acme.com/project"], vec!["x"]);
        let u = user(&[
            ("Impersonate-User", "carol"),
            ("Impersonate-Group", "system:unauthenticated"),
        ]);
        assert_eq!(u.groups, vec!["system:unauthenticated"]);
        let u = user(&[("Impersonate-User", "system:anonymous")]);
        assert_eq!(u.groups, vec!["system:unauthenticated"]);
    }

    #[test]
    fn service_accounts_get_their_groups_unless_groups_are_given() {
        let u = user(&[(
            "Impersonate-User",
            "system:serviceaccount:barge-system:barge",
        )]);
        assert_eq!(
            u.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:barge-system",
                "system:authenticated"
            ]
        );
        let u = user(&[
            ("Impersonate-User", "system:serviceaccount:ns:sa"),
            ("Impersonate-Group", "g"),
        ]);
        assert_eq!(u.groups, vec!["g", "system:authenticated"]);
        // Not a valid service-account name: an ordinary user.
        let u = user(&[("Impersonate-User", "system:serviceaccount:Bad_NS:sa")]);
        assert_eq!(u.groups, vec!["system:authenticated"]);
        assert_eq!(split_service_account("system:serviceaccount:a:b:c"), None);
        assert_eq!(
            split_service_account("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
    }

    #[test]
    fn groups_without_user_are_refused() {
        let e = impersonated_user(&headers(&[("Impersonate-Group", "devs")])).unwrap_err();
        assert!(e.contains("without impersonating a user"), "{e}");
        assert!(impersonated_user(&headers(&[("Impersonate-Uid", "1")])).is_err());
        assert!(impersonated_user(&headers(&[("Impersonate-Extra-A", "1")])).is_err());
    }
}
