//! Name and label validators of `k8s.io/apimachinery/pkg/util/validation`, with its messages.
//! Each returns `Err` with the messages joined by `"; "` (the API server reports them as the
//! detail of one `field.Invalid`).

use regex::Regex;
use std::sync::OnceLock;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Longest DNS-1123 subdomain (object names of most kinds).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1123 / DNS-1035 label, label value and qualified-name name part.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;

fn subdomain_fmt() -> String {
    format!("{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*")
}

fn label_value_fmt() -> String {
    format!("({QUALIFIED_NAME_FMT})?")
}

fn anchored(cell: &'static OnceLock<Regex>, f: impl FnOnce() -> String) -> &'static Regex {
    cell.get_or_init(|| Regex::new(&format!("^{}$", f())).expect("static name regex compiles"))
}

/// `validation.RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(e);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn join(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// `IsDNS1123Subdomain` as a list of messages.
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !anchored(&R, subdomain_fmt).is_match(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            &subdomain_fmt(),
            &["example.com"],
        ));
    }
    errs
}

/// Object names of most kinds: a DNS-1123 subdomain (`ValidateObjectMeta` with `NameIsDNSSubdomain`).
pub fn validate_object_name(name: &str) -> Result<(), String> {
    join(dns1123_subdomain_errors(name))
}

/// `IsDNS1123Label` (names of namespaces, services, ...).
pub fn validate_dns1123_label(value: &str) -> Result<(), String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !anchored(&R, || DNS1123_LABEL_FMT.to_string()).is_match(value) {
        errs.push(regex_error(
            DNS1123_LABEL_ERR,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    join(errs)
}

/// `IsDNS1035Label` (service names).
pub fn validate_dns1035_label(value: &str) -> Result<(), String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !anchored(&R, || DNS1035_LABEL_FMT.to_string()).is_match(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    join(errs)
}

/// `IsQualifiedName`: label and annotation keys, `[prefix/]name`.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let qualified = anchored(&R, || QUALIFIED_NAME_FMT.to_string());
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(dns1123_subdomain_errors(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return Err(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ))
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(DNS1123_LABEL_MAX_LENGTH)
        ));
    }
    if !qualified.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    join(errs)
}

/// `IsValidLabelValue`.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !anchored(&R, label_value_fmt).is_match(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            &label_value_fmt(),
            &["MyValue", "my_value", "12345"],
        ));
    }
    join(errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_subdomains() {
        assert!(validate_object_name("my-job.v1").is_ok());
        let err = validate_object_name("My_Job").unwrap_err();
        assert_eq!(
            err,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        let long = "a".repeat(254);
        assert!(validate_object_name(&long)
            .unwrap_err()
            .starts_with("must be no more than 253 characters"));
        assert!(validate_object_name("").is_err());
    }

    #[test]
    fn labels_follow_qualified_name_rules() {
        assert!(validate_label_key("app.kubernetes.io/managed-by").is_ok());
        assert!(validate_label_key("batch.barge.dev/job-name").is_ok());
        assert!(validate_label_key("simple").is_ok());
        assert_eq!(
            validate_label_key("/x").unwrap_err(),
            "prefix part must be non-empty"
        );
        assert!(validate_label_key("a/b/c")
            .unwrap_err()
            .starts_with("a qualified name must consist of"));
        assert!(validate_label_key("Bad_Prefix/x")
            .unwrap_err()
            .starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert!(validate_label_key("-x")
            .unwrap_err()
            .starts_with("name part must consist of"));
        assert_eq!(
            validate_label_key(&"a".repeat(64)).unwrap_err(),
            "name part must be no more than 63 characters"
        );
        assert!(validate_label_value("").is_ok());
        assert!(validate_label_value("v1.2_3-x").is_ok());
        assert!(validate_label_value("-bad")
            .unwrap_err()
            .starts_with("a valid label must be an empty string"));
        assert!(validate_label_value(&"a".repeat(64))
            .unwrap_err()
            .starts_with("must be no more than 63 characters"));
    }

    #[test]
    fn dns_labels() {
        assert!(validate_dns1123_label("default").is_ok());
        assert!(validate_dns1123_label("a.b")
            .unwrap_err()
            .starts_with("a lowercase RFC 1123 label"));
        assert!(validate_dns1035_label("1abc").is_err());
        assert!(validate_dns1035_label("abc-1").is_ok());
    }
}
