//! Upload files against upload sessions: a file no session owns (including
//! the `mono-*`/`put-*` temp files of killed requests), a session whose file
//! is gone, a session that claims more bytes than its file holds.

use super::problem::Problem;
use super::rows::Snapshot;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Findings {
    pub problems: Vec<Problem>,
    /// Files and sessions left alone because a running server may be using them.
    pub in_flight: usize,
}

/// Whether `time` is within `grace` of now (so a running server may still be writing).
fn recent(time: SystemTime, grace: Option<Duration>) -> bool {
    grace.is_some_and(|g| SystemTime::now().duration_since(time).unwrap_or_default() < g)
}

/// `grace` is set when a server may be running: what changed within it is skipped.
pub fn check(root: &Path, snap: &Snapshot, grace: Option<Duration>) -> io::Result<Findings> {
    let mut findings = Findings {
        problems: Vec::new(),
        in_flight: 0,
    };
    let mut files: HashMap<String, (PathBuf, u64, SystemTime)> = HashMap::new();
    let dir = root.join("uploads");
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = match entry.metadata() {
                // Finished or expired by a running server since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => other?,
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = Path::new("uploads").join(entry.file_name());
            let size = if meta.is_file() { meta.len() } else { 0 };
            files.insert(name, (path, size, meta.modified()?));
        }
    }
    for row in &snap.uploads {
        let updated = UNIX_EPOCH + Duration::from_secs(row.updated_at.max(0) as u64);
        let file = files.remove(&row.id);
        let modified = file.as_ref().map(|(_, _, m)| *m).unwrap_or(updated);
        if recent(updated.max(modified), grace) {
            findings.in_flight += 1;
            continue;
        }
        match file {
            None => findings.problems.push(Problem::SessionWithoutFile {
                id: row.id.clone(),
                row: row.stored(),
            }),
            Some((path, actual, _)) if row.bytes < 0 || row.bytes as u64 > actual => {
                findings.problems.push(Problem::SessionBeyondFile {
                    id: row.id.clone(),
                    recorded: row.bytes.max(0) as u64,
                    actual,
                    path,
                    row: row.stored(),
                })
            }
            Some(_) => {}
        }
    }
    let mut leftovers: Vec<_> = files.into_values().collect();
    leftovers.sort();
    for (path, size, modified) in leftovers {
        if recent(modified, grace) {
            findings.in_flight += 1;
        } else {
            findings
                .problems
                .push(Problem::LeftoverUpload { path, size });
        }
    }
    Ok(findings)
}
