//! Which system calls the data path may use.
//!
//! On Linux berth sends blobs with sendfile(2), asks the page cache with
//! preadv2(RWF_NOWAIT) whether a read would wait for the disk, and starts
//! writeback of uploads with sync_file_range(2). Other systems (macOS, where
//! many KinD users are) lack these, and get plain portable code instead:
//! blobs read on a blocking thread and streamed, no writeback hint. The
//! portable code can be forced on Linux at run time, so that the one build
//! CI makes tests it too.

/// The environment variable that forces [`IoMode::Portable`] when set to
/// `1` or `true`.
pub const PORTABLE_IO_ENV: &str = "BERTH_PORTABLE_IO";

/// The I/O paths a store and the server take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// The fastest this system offers: Linux's calls on Linux, the portable
    /// paths elsewhere.
    #[default]
    Native,
    /// Only what every Unix offers, even on Linux.
    Portable,
}

impl IoMode {
    /// [`IoMode::Portable`] when `value` (of [`PORTABLE_IO_ENV`]) asks for it.
    pub fn from_env_value(value: Option<&str>) -> IoMode {
        match value.map(str::trim) {
            Some("1") => IoMode::Portable,
            Some(v) if v.eq_ignore_ascii_case("true") => IoMode::Portable,
            _ => IoMode::Native,
        }
    }

    /// Whether Linux-only calls may be made: on Linux, unless forced off.
    pub fn linux_calls(self) -> bool {
        cfg!(target_os = "linux") && self == IoMode::Native
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_yes_forces_the_portable_paths() {
        assert_eq!(IoMode::from_env_value(Some("1")), IoMode::Portable);
        assert_eq!(IoMode::from_env_value(Some("TRUE")), IoMode::Portable);
        assert_eq!(IoMode::from_env_value(Some("0")), IoMode::Native);
        assert_eq!(IoMode::from_env_value(Some("")), IoMode::Native);
        assert_eq!(IoMode::from_env_value(None), IoMode::Native);
        assert!(!IoMode::Portable.linux_calls());
        assert_eq!(IoMode::Native.linux_calls(), cfg!(target_os = "linux"));
    }
}
