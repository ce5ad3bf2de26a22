//! AWS names and ARNs → Kubernetes object names.
//!
//! AWS Batch names allow upper case and underscores (`fetch_and_run`, `C4OnDemand`); Kubernetes
//! names are DNS-1123 (lower case, digits, `-`). References may be ARNs
//! (`arn:aws:batch:us-east-1:012345678910:compute-environment/C4OnDemand`), which become the
//! name they end with. Every change is reported as a note.

use barge_crds::common::{LABEL_MAX_LENGTH, NAME_MAX_LENGTH};

use super::{ImportError, Notes};

/// How long a converted name may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameLimit {
    /// Most objects: 253 characters.
    Object,
    /// Names Barge puts in label values — jobs, job queues, job definitions, compute
    /// environments (the API server refuses longer ones): 63 characters.
    Label,
}

impl NameLimit {
    fn max(self) -> usize {
        match self {
            NameLimit::Object => NAME_MAX_LENGTH,
            NameLimit::Label => LABEL_MAX_LENGTH,
        }
    }
}

/// The DNS-1123 form of an AWS name: lower case, every other character than a letter or digit
/// becomes `-`, no `-` at either end, at most `limit` characters. None when nothing is left.
pub(crate) fn dns_name(name: &str, limit: NameLimit) -> Option<String> {
    let mapped: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let truncated: String = trimmed.chars().take(limit.max()).collect();
    let result = truncated.trim_end_matches('-').to_string();
    (!result.is_empty()).then_some(result)
}

/// Converts the AWS name at `path` to a Kubernetes name, noting any change.
pub(crate) fn convert_name(
    name: &str,
    path: &str,
    limit: NameLimit,
    notes: &mut Notes,
) -> Result<String, ImportError> {
    let converted = dns_name(name, limit).ok_or_else(|| {
        ImportError::field(
            path,
            format!("{name:?} has no letters or digits to make a Kubernetes name from"),
        )
    })?;
    if converted != name {
        notes.add(
            path,
            format!("{name:?} becomes the Kubernetes name {converted:?} (lower case, '-' for other characters, at most {} characters)", limit.max()),
        );
    }
    Ok(converted)
}

/// The resource part of an AWS Batch ARN (`job-definition/name:3` → (`job-definition`,
/// `name:3`)), or None when `value` is not an ARN.
pub(crate) fn arn_resource(value: &str) -> Option<(&str, &str)> {
    let rest = value.strip_prefix("arn:")?;
    // partition:service:region:account:resource
    let mut parts = rest.splitn(5, ':');
    let (_partition, _service, _region, _account) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    parts.next()?.split_once('/')
}

/// A reference to another Barge object given by name or ARN; returns its Kubernetes name.
pub(crate) fn convert_reference(
    value: &str,
    path: &str,
    expected_resource: &str,
    limit: NameLimit,
    notes: &mut Notes,
) -> Result<String, ImportError> {
    let name = match arn_resource(value) {
        Some((resource, name)) if resource == expected_resource => {
            notes.add(
                path,
                format!("the ARN {value:?} becomes a reference by name to {name:?}"),
            );
            name
        }
        Some((resource, _)) => {
            return Err(ImportError::field(
                path,
                format!("{value:?} is an ARN of a {resource}, expected a {expected_resource}"),
            ))
        }
        None => value,
    };
    convert_name(name, path, limit, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_names_become_dns_names() {
        assert_eq!(
            dns_name("fetch_and_run", NameLimit::Object).as_deref(),
            Some("fetch-and-run")
        );
        assert_eq!(
            dns_name("C4OnDemand", NameLimit::Object).as_deref(),
            Some("c4ondemand")
        );
        assert_eq!(dns_name("_x_", NameLimit::Object).as_deref(), Some("x"));
        assert_eq!(dns_name("___", NameLimit::Object), None);
        let long = "a".repeat(62) + "_b";
        assert_eq!(
            dns_name(&long, NameLimit::Label).as_deref(),
            Some("a".repeat(62).as_str())
        );
    }

    #[test]
    fn arns_become_names_with_a_note() {
        let mut notes = Notes::default();
        let name = convert_reference(
            "arn:aws:batch:us-east-1:012345678910:compute-environment/C4OnDemand",
            "computeEnvironmentOrder[0].computeEnvironment",
            "compute-environment",
            NameLimit::Object,
            &mut notes,
        )
        .expect("converts");
        assert_eq!(name, "c4ondemand");
        assert_eq!(
            notes.warnings.len(),
            2,
            "one note for the ARN, one for the name"
        );
        let err = convert_reference(
            "arn:aws:batch:us-east-1:012345678910:job-queue/Q",
            "x",
            "compute-environment",
            NameLimit::Object,
            &mut notes,
        )
        .expect_err("wrong resource");
        assert!(err.to_string().contains("is an ARN of a job-queue"));
    }

    #[test]
    fn arn_resource_splits_type_and_name() {
        assert_eq!(
            arn_resource("arn:aws:batch:us-east-1:012345678910:job-definition/render:3"),
            Some(("job-definition", "render:3"))
        );
        assert_eq!(arn_resource("render:3"), None);
    }
}
