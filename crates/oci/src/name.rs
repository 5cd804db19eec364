//! Repository names, validated against the distribution spec's grammar:
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
//!
//! Because every path component must start and end with an alphanumeric,
//! a valid name can never contain `..`, an empty segment or a leading `/`,
//! which is what keeps names safe to use anywhere near a filesystem.

use std::fmt;
use std::str::FromStr;

/// Longest name we accept; clients reject names whose host plus path exceed 255.
pub const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("repository name is empty")]
    Empty,
    #[error("repository name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("invalid repository name component {0:?}")]
    BadComponent(String),
}

/// A validated repository name such as `myorg/team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or `-+`.
fn is_valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|s| s == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for RepositoryName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if let Some(bad) = s.split('/').find(|c| !is_valid_component(c)) {
            return Err(NameError::BadComponent(bad.to_string()));
        }
        Ok(RepositoryName(s.to_string()))
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_examples() {
        for good in [
            "busybox",
            "myorg/team/app",
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "library/ubuntu-22.04",
            "0/1/2",
        ] {
            assert!(good.parse::<RepositoryName>().is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn rejects_traversal_case_and_bad_separators() {
        for bad in [
            "", "../x", "x/..", "a//b", "/a", "a/", "Busybox", "a..b", "a___b", "a.-b", "-a", "a-",
            ".", "a b", "a/./b", "a%2fb",
        ] {
            assert!(bad.parse::<RepositoryName>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "x".repeat(256).parse::<RepositoryName>(),
            Err(NameError::TooLong)
        );
    }
}
