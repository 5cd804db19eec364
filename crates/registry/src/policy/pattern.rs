//! [`NamePattern`]: which repositories or tags a policy rule applies to.

use std::fmt;

/// A name with `*` wildcards: `*` matches any run of characters, `/`
/// included (so `team/*` covers `team/a/b`); every other character matches
/// itself. Compared whole: `v1` does not match `v10`.
#[derive(Clone, PartialEq, Eq)]
pub struct NamePattern {
    text: String,
}

/// A pattern that can match nothing useful.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a name pattern cannot be empty (use \"*\" for every name)")]
pub struct EmptyPattern;

impl NamePattern {
    pub fn new(text: &str) -> Result<Self, EmptyPattern> {
        if text.is_empty() {
            return Err(EmptyPattern);
        }
        Ok(NamePattern {
            text: text.to_string(),
        })
    }

    /// The pattern matching every name.
    pub fn any() -> Self {
        NamePattern { text: "*".into() }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.text.split('*');
        // Text before the first `*` anchors the start.
        let first = parts.next().unwrap_or("");
        let Some(mut rest) = name.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            // No `*` at all: the whole name must be the pattern.
            return rest.is_empty();
        };
        // Each middle piece at its earliest place leaves the most room for
        // the rest; the last piece anchors the end.
        for piece in middle {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.ends_with(last)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> NamePattern {
        NamePattern::new(text).unwrap()
    }

    #[test]
    fn a_pattern_without_wildcards_matches_only_itself() {
        assert!(p("library/nginx").matches("library/nginx"));
        assert!(!p("library/nginx").matches("library/nginx2"));
        assert!(!p("v1").matches("v10"));
        assert!(!p("v1").matches("xv1"));
    }

    #[test]
    fn a_star_matches_any_run_including_slashes_and_nothing() {
        assert!(p("*").matches("a/b/c"));
        assert!(p("*").matches(""));
        assert!(p("team/*").matches("team/a/b"));
        assert!(p("team/*").matches("team/"));
        assert!(!p("team/*").matches("team"));
        assert!(!p("team/*").matches("other/team/a"));
        assert!(p("v*").matches("v1.2.3"));
        assert!(!p("v*").matches("latest"));
        assert!(p("*-rc*").matches("1.0-rc2"));
        assert!(!p("*-rc*").matches("1.0"));
        assert!(p("*/cache").matches("a/b/cache"));
        assert!(!p("*/cache").matches("a/b/cache2"));
        assert!(p("a*b*c").matches("abc"));
        assert!(p("a*b*c").matches("a-b-b-c"));
        assert!(!p("a*b*c").matches("a-c-b"));
        // The end anchor must not reuse what a middle piece consumed.
        assert!(!p("*ab*ab").matches("ab"));
        assert!(p("*ab*ab").matches("abab"));
    }

    #[test]
    fn an_empty_pattern_is_refused() {
        assert_eq!(NamePattern::new(""), Err(EmptyPattern));
        assert!(NamePattern::any().matches("anything/at/all"));
    }
}
