//! AWS Batch patterns (`evaluateOnExit.onExitCode/onReason/onStatusReason`,
//! `jobStateTimeLimitActions.reason`, fair-share `shareIdentifier`).
//!
//! AWS Batch's "glob" is deliberately small: up to 512 characters, an optional `*` that may only
//! be the last character (the rest must then be a prefix of the value), an exact match
//! otherwise. Exit-code patterns hold digits only. Matching is case-sensitive.
//! A missing value (no exit code, no reason) is matched as the empty string, so `"*"` matches
//! anything, which is how AWS's documented catch-all `{"onReason": "*", "action": "EXIT"}` works.

use crate::error::{Error, Result};
use std::fmt;

/// Longest pattern AWS Batch accepts.
pub const MAX_PATTERN_LEN: usize = 512;

/// Which field a pattern is for; exit codes accept digits only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternKind {
    /// `onExitCode`: digits, optionally ending with `*`.
    ExitCode,
    /// `onReason`, `onStatusReason`, time-limit reasons, share identifiers: printable text.
    Text,
}

/// A validated AWS Batch pattern.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    source: String,
    prefix: String,
    wildcard: bool,
}

impl Glob {
    /// Validates `pattern` for the given field.
    pub fn parse(pattern: &str, kind: PatternKind) -> Result<Glob> {
        let fail = |problem: String| Error::Glob {
            pattern: pattern.to_string(),
            problem,
        };
        let chars = pattern.chars().count();
        if chars > MAX_PATTERN_LEN {
            return Err(fail(format!(
                "is {chars} characters long; at most {MAX_PATTERN_LEN} are allowed"
            )));
        }
        if pattern.is_empty() {
            return Err(fail("is empty".into()));
        }
        let (prefix, wildcard) = match pattern.strip_suffix('*') {
            Some(p) => (p, true),
            None => (pattern, false),
        };
        if prefix.contains('*') {
            return Err(fail("'*' is only allowed as the last character".into()));
        }
        for c in prefix.chars() {
            let ok = match kind {
                PatternKind::ExitCode => c.is_ascii_digit(),
                PatternKind::Text => {
                    c.is_alphanumeric() || c == ' ' || c == '\t' || c.is_ascii_punctuation()
                }
            };
            if !ok {
                let allowed = match kind {
                    PatternKind::ExitCode => "digits",
                    PatternKind::Text => "letters, digits, spaces, tabs and punctuation",
                };
                return Err(fail(format!(
                    "character {c:?} is not allowed (only {allowed})"
                )));
            }
        }
        Ok(Glob {
            source: pattern.to_string(),
            prefix: prefix.to_string(),
            wildcard,
        })
    }

    /// A text pattern (`onReason`, `onStatusReason`, ...).
    pub fn text(pattern: &str) -> Result<Glob> {
        Glob::parse(pattern, PatternKind::Text)
    }

    /// An `onExitCode` pattern.
    pub fn exit_code(pattern: &str) -> Result<Glob> {
        Glob::parse(pattern, PatternKind::ExitCode)
    }

    /// Does `value` match? With a trailing `*` the rest is a prefix; otherwise exact.
    pub fn matches(&self, value: &str) -> bool {
        if self.wildcard {
            value.starts_with(&self.prefix)
        } else {
            value == self.prefix
        }
    }

    /// Matches an optional value; a missing value is the empty string.
    pub fn matches_opt(&self, value: Option<&str>) -> bool {
        self.matches(value.unwrap_or(""))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern ends with `*`.
    pub fn is_prefix(&self) -> bool {
        self.wildcard
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_star_matches_prefix() {
        let g = Glob::text("Host EC2*").expect("valid");
        assert!(g.matches("Host EC2 (instance node-7) terminated."));
        assert!(g.matches("Host EC2"));
        assert!(
            !g.matches("host EC2 (instance x) terminated."),
            "case-sensitive"
        );
        assert!(!g.matches("Essential container in task exited"));
        assert!(g.is_prefix());
    }

    #[test]
    fn without_star_is_exact() {
        let g = Glob::text("AGENT").expect("valid");
        assert!(g.matches("AGENT"));
        assert!(!g.matches("AGENTS"));
        assert!(!g.matches("AGEN"));
        assert!(!g.is_prefix());
    }

    #[test]
    fn star_alone_matches_everything_including_missing() {
        let g = Glob::text("*").expect("valid");
        assert!(g.matches(""));
        assert!(g.matches_opt(None));
        assert!(g.matches("OutOfMemoryError: Container killed due to memory usage"));
    }

    #[test]
    fn exit_codes_are_digits() {
        let g = Glob::exit_code("13*").expect("valid");
        assert!(g.matches("137"));
        assert!(!g.matches("1"));
        assert!(!g.matches_opt(None));
        assert!(Glob::exit_code("1").expect("valid").matches("1"));
        let e = Glob::exit_code("1a").unwrap_err();
        assert!(e.to_string().contains("only digits"), "{e}");
        assert!(Glob::exit_code("-1").is_err());
    }

    #[test]
    fn star_only_at_the_end() {
        let e = Glob::text("Host*EC2").unwrap_err();
        assert!(
            e.to_string().contains("only allowed as the last character"),
            "{e}"
        );
        assert!(Glob::text("**").is_err());
        assert!(Glob::text("a*b*").is_err());
    }

    #[test]
    fn length_and_characters_are_checked() {
        let long = "a".repeat(MAX_PATTERN_LEN);
        assert!(Glob::text(&long).is_ok());
        let too_long = "a".repeat(MAX_PATTERN_LEN + 1);
        let e = Glob::text(&too_long).unwrap_err();
        assert!(e.to_string().contains("at most 512"), "{e}");
        assert!(Glob::text("").is_err());
        assert!(Glob::text("line\nbreak").is_err());
        assert!(Glob::text("CannotPullContainerError: (x) y-z.").is_ok());
        assert!(Glob::text("tab\tok").is_ok());
        assert_eq!(Glob::text("AG*").expect("valid").to_string(), "AG*");
    }
}
