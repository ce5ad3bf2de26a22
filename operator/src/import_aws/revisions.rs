//! AWS job definition revisions → Barge definitions.
//!
//! AWS Batch keeps every registered revision of a definition (`render:1`, `render:2`, ...) and
//! DescribeJobDefinitions lists them all, ACTIVE and INACTIVE. A Barge JobDefinition holds one
//! spec; its controller numbers the specs it sees from 1 (`status.revision`), so AWS revision
//! numbers cannot be carried over. The importer therefore imports, per definition name, the
//! newest ACTIVE revision of the input (a warning names every other revision it leaves out:
//! INACTIVE ones cannot take new jobs in AWS either) and records which AWS revision that was
//! ([`ImportedRevisions`]). A job's `name:N` (or ARN ending in `:N`) is then carried only when
//! revision N of `name` is the one imported in the same run: the job names the definition
//! without a revision, which runs its latest Barge revision — the imported spec. Any other
//! `name:N` is refused, since Barge's revision N is a different spec.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::names::{dns_name, NameLimit};
use super::reader::describe;
use super::{detect, DocumentKind, ImportError, Note};

/// Definitions imported in a run (by Kubernetes name) → the AWS revision each was imported from
/// (None: a RegisterJobDefinition document, which has no revision yet).
pub(crate) type ImportedRevisions = BTreeMap<String, Option<i32>>;

/// The choice among the documents of a run.
pub(crate) struct Selection<'a> {
    /// Indices of the documents not imported.
    pub(crate) skipped: BTreeSet<usize>,
    /// What was imported per definition name.
    pub(crate) imported: ImportedRevisions,
    /// A warning per document left out, with its file.
    pub(crate) notes: Vec<(&'a str, Note)>,
}

/// A job definition document with a revision (DescribeJobDefinitions output).
struct Revisioned<'a> {
    index: usize,
    file: &'a str,
    path: &'a str,
    revision: i32,
    active: bool,
}

fn field(path: &str, key: &str) -> String {
    super::reader::join(path, key)
}

/// `revision` and `status` of a definition document, when it has a revision.
fn revision_of(path: &str, document: &Value) -> Result<Option<(i32, bool)>, ImportError> {
    let revision = match document.get("revision") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_i64()
                .and_then(|r| i32::try_from(r).ok())
                .filter(|r| *r >= 1)
                .ok_or_else(|| {
                    ImportError::field(
                        field(path, "revision"),
                        format!("expected a revision number from 1, got {}", describe(value)),
                    )
                })?,
        ),
    };
    let active = match document.get("status") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) if s == "ACTIVE" => true,
        Some(Value::String(s)) if s == "INACTIVE" => false,
        Some(other) => {
            return Err(ImportError::field(
                field(path, "status"),
                format!("expected ACTIVE or INACTIVE, got {}", describe(other)),
            ))
        }
    };
    match revision {
        Some(revision) => Ok(Some((revision, active))),
        None if !active => Err(ImportError::field(
            field(path, "status"),
            "an INACTIVE definition without its revision: expected DescribeJobDefinitions output",
        )),
        None => Ok(None),
    }
}

/// Chooses the documents to import among `documents` (file, path, JSON); see the module docs.
pub(crate) fn select<'a>(
    documents: Vec<(&'a str, &'a str, &'a Value)>,
) -> Result<Selection<'a>, ImportError> {
    let mut by_name: BTreeMap<String, Vec<Revisioned<'a>>> = BTreeMap::new();
    let mut imported = ImportedRevisions::new();
    for (index, (file, path, document)) in documents.iter().enumerate() {
        if detect(document) != Some(DocumentKind::RegisterJobDefinition) {
            continue;
        }
        let Some(name) = document
            .get("jobDefinitionName")
            .and_then(Value::as_str)
            .and_then(|n| dns_name(n, NameLimit::Label))
        else {
            // The conversion reports the bad name.
            continue;
        };
        let in_file = |e: ImportError| ImportError {
            file: file.to_string(),
            ..e
        };
        match revision_of(path, document).map_err(in_file)? {
            Some((revision, active)) => by_name.entry(name).or_default().push(Revisioned {
                index,
                file,
                path,
                revision,
                active,
            }),
            None => {
                imported.entry(name).or_insert(None);
            }
        }
    }
    let mut skipped = BTreeSet::new();
    let mut notes = Vec::new();
    for (name, mut revisions) in by_name {
        revisions.sort_by_key(|r| std::cmp::Reverse(r.revision));
        let chosen = revisions.iter().find(|r| r.active).map(|r| r.revision);
        if let Some(revision) = chosen {
            imported.insert(name.clone(), Some(revision));
        }
        let mut taken = false;
        for r in &revisions {
            if r.active && !taken && imported.get(&name) == Some(&Some(r.revision)) {
                taken = true;
                continue;
            }
            skipped.insert(r.index);
            let why = match chosen {
                Some(newest) if r.active && newest == r.revision => {
                    format!("revision {newest} is listed twice; the first is imported")
                }
                Some(newest) if r.active => format!("an older ACTIVE revision; a Barge JobDefinition holds one spec, and revision {newest} is the one imported (a job naming {name}:{} is refused)", r.revision),
                _ => "INACTIVE (deregistered: AWS Batch takes no new jobs on it either)".to_string(),
            };
            notes.push((
                r.file,
                Note {
                    file: String::new(),
                    path: r.path.to_string(),
                    message: format!("revision {} of {name} not imported: {why}", r.revision),
                },
            ));
        }
    }
    Ok(Selection {
        skipped,
        imported,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(name: &str, revision: i32, status: &str) -> Value {
        json!({"jobDefinitionName": name, "revision": revision, "status": status, "type": "container"})
    }

    #[test]
    fn the_newest_active_revision_of_each_name_is_imported() {
        let docs = [
            definition("render", 1, "ACTIVE"),
            definition("render", 3, "ACTIVE"),
            definition("render", 4, "INACTIVE"),
            definition("only_old", 2, "INACTIVE"),
            json!({"jobDefinitionName": "fresh", "type": "container"}),
            json!({"jobName": "j", "jobQueue": "q", "jobDefinition": "render:3"}),
        ];
        let paths: Vec<String> = (0..docs.len()).map(|i| format!("[{i}]")).collect();
        let selection = select(
            docs.iter()
                .zip(&paths)
                .map(|(d, p)| ("f.json", p.as_str(), d))
                .collect(),
        )
        .expect("selects");
        assert_eq!(selection.skipped, BTreeSet::from([0, 2, 3]));
        assert_eq!(
            selection.imported,
            ImportedRevisions::from([("render".to_string(), Some(3)), ("fresh".to_string(), None)])
        );
        let notes: Vec<String> = selection.notes.iter().map(|(_, n)| n.to_string()).collect();
        assert!(
            notes.iter().any(|n| n
                .starts_with("[0]: revision 1 of render not imported: an older ACTIVE revision")
                && n.contains("render:1 is refused")),
            "{notes:?}"
        );
        assert!(notes
            .iter()
            .any(|n| n.starts_with("[2]: revision 4 of render not imported: INACTIVE")));
        assert!(notes
            .iter()
            .any(|n| n.starts_with("[3]: revision 2 of only-old not imported: INACTIVE")));
    }

    #[test]
    fn malformed_revisions_and_statuses_are_named() {
        let doc = json!({"jobDefinitionName": "x", "revision": "3"});
        let err = select(vec![("f", "jobDefinitions[0]", &doc)])
            .err()
            .expect("refused");
        assert_eq!(
            err.to_string(),
            "f: jobDefinitions[0].revision: expected a revision number from 1, got \"3\""
        );
        let doc = json!({"jobDefinitionName": "x", "revision": 3, "status": "DELETED"});
        let err = select(vec![("", "", &doc)]).err().expect("refused");
        assert_eq!(
            err.to_string(),
            "status: expected ACTIVE or INACTIVE, got \"DELETED\""
        );
    }
}
