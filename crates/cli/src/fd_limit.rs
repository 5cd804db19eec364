//! The open-file limit: every connection, blob being sent and upload holds a
//! descriptor, and the usual soft limit (1,024) is far below what a busy
//! registry needs, while the hard limit is usually generous.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Descriptors kept back from connections for the database, blob and
/// upload files, and the listener.
const RESERVE: u64 = 64;

/// The most a process may ask for on macOS whatever its hard limit says
/// (`OPEN_MAX`): asking for more, or for "unlimited", fails there.
const MACOS_OPEN_MAX: u64 = 10240;

/// The soft limit to ask for: the hard limit, or `cap` when that is lower
/// (an unlimited hard limit is `None`).
fn wanted(maximum: Option<u64>, cap: Option<u64>) -> Option<u64> {
    match (maximum, cap) {
        (Some(max), Some(cap)) => Some(max.min(cap)),
        (None, Some(cap)) => Some(cap),
        (max, None) => max,
    }
}

/// Raises the soft open-file limit to the hard limit; returns the limit in
/// force afterwards (`None` when unlimited).
pub fn raise() -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    let cap = cfg!(target_os = "macos").then_some(MACOS_OPEN_MAX);
    let want = wanted(limit.maximum, cap);
    // Only ever raised: a soft limit already above the cap stays.
    if limit.current.is_some_and(|c| want.is_none_or(|w| c < w)) {
        limit.current = want;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, soft = ?before, "cannot raise the open-file limit");
            return before;
        }
    }
    let now = getrlimit(Resource::Nofile).current;
    tracing::info!(before = ?before, now = ?now, "open-file limit");
    now
}

/// A connection cap that leaves descriptors for the files each connection
/// may have open (a blob being sent, an upload being written).
pub fn default_max_connections(limit: Option<u64>) -> usize {
    let limit = limit.unwrap_or(1 << 20);
    let per_connection = 2;
    usize::try_from(limit.saturating_sub(RESERVE) / per_connection)
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_files() {
        assert_eq!(default_max_connections(Some(256)), 96);
        assert_eq!(default_max_connections(Some(1024)), 480);
        assert_eq!(default_max_connections(Some(10)), 1);
        assert!(default_max_connections(None) > 100_000);
    }

    #[test]
    fn asks_for_the_hard_limit_but_never_past_the_cap() {
        assert_eq!(wanted(Some(4096), None), Some(4096));
        assert_eq!(wanted(None, None), None);
        assert_eq!(wanted(None, Some(MACOS_OPEN_MAX)), Some(MACOS_OPEN_MAX));
        assert_eq!(
            wanted(Some(1 << 20), Some(MACOS_OPEN_MAX)),
            Some(MACOS_OPEN_MAX)
        );
        assert_eq!(wanted(Some(256), Some(MACOS_OPEN_MAX)), Some(256));
    }
}
