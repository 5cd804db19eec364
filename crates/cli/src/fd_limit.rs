//! The open-file limit: every connection, blob being sent and upload holds a
//! descriptor, and the usual soft limit (1,024) is far below what a busy
//! registry needs, while the hard limit is usually generous.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Descriptors kept back from connections for the database, blob and
/// upload files, and the listener.
const RESERVE: u64 = 64;

/// Raises the soft open-file limit to the hard limit; returns the limit in
/// force afterwards (`None` when unlimited).
pub fn raise() -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
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
}
