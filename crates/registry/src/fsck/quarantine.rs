//! `--repair`: nothing is deleted. Bad files move to
//! `quarantine/<UTC time>/` under the same relative path; rows that point at
//! missing or corrupt content are written to `rows.json` there, then removed
//! from the database in one transaction.
//!
//! Order matters for a crash halfway: files move first (a row left pointing
//! at a moved file is found again by the next fsck), the JSON is durable
//! before the rows go, and the rows go all at once.

use super::problem::{Problem, Remedy};
use super::rows::StoredRow;
use super::FsckError;
use rusqlite::{params, Connection, OpenFlags};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What repair did.
#[derive(Debug, Default)]
pub struct Repaired {
    /// The quarantine folder, if anything was moved or removed.
    pub folder: Option<PathBuf>,
    /// Paths (relative to the data folder) moved into the quarantine.
    pub moved: Vec<PathBuf>,
    pub rows_removed: usize,
    pub rows_added: usize,
    /// Findings repair has no remedy for.
    pub left: Vec<Problem>,
}

/// `YYYYMMDDTHHMMSSZ` for a time in seconds since the epoch (proleptic Gregorian, UTC).
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A new, empty folder under `<root>/quarantine/` named by the current time.
fn new_folder(root: &Path) -> Result<PathBuf, FsckError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = root.join("quarantine");
    std::fs::create_dir_all(&base).map_err(FsckError::io(&base))?;
    let stamp = utc_stamp(secs);
    for n in 0..1000 {
        let name = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let folder = base.join(name);
        match std::fs::create_dir(&folder) {
            Ok(()) => return Ok(folder),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(FsckError::Io(folder, e)),
        }
    }
    Err(FsckError::Io(
        base,
        std::io::Error::other("too many quarantine folders for one second"),
    ))
}

fn sync_dir(dir: &Path) -> Result<(), FsckError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsckError::io(dir))
}

/// Applies the remedies of `problems` to the data folder at `root`.
pub fn repair(root: &Path, problems: &[Problem]) -> Result<Repaired, FsckError> {
    let mut repaired = Repaired::default();
    let mut moves = BTreeSet::new();
    let mut removals: BTreeMap<(&'static str, i64), StoredRow> = BTreeMap::new();
    let (mut links, mut refs) = (Vec::new(), Vec::new());
    for problem in problems {
        let remedies = problem.remedies();
        if remedies.is_empty() {
            repaired.left.push(problem.clone());
        }
        for remedy in remedies {
            match remedy {
                Remedy::Quarantine(path) => {
                    moves.insert(path);
                }
                Remedy::DeleteRows(rows) => {
                    for row in rows {
                        removals.insert((row.table, row.rowid), row);
                    }
                }
                Remedy::LinkBlob {
                    repo_id,
                    digest,
                    size,
                } => links.push((repo_id, digest, size)),
                Remedy::InsertRef {
                    repo_id,
                    manifest,
                    child,
                } => refs.push((repo_id, manifest, child)),
            }
        }
    }
    if moves.is_empty() && removals.is_empty() && links.is_empty() && refs.is_empty() {
        return Ok(repaired);
    }
    let folder = new_folder(root)?;

    for path in moves {
        let (from, to) = (root.join(&path), folder.join(&path));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(FsckError::io(parent))?;
        }
        std::fs::rename(&from, &to).map_err(FsckError::io(&from))?;
        if let Some(parent) = from.parent() {
            sync_dir(parent)?;
        }
        repaired.moved.push(path);
    }

    let record = json!({
        "removed": removals.values().map(|r| json!({"table": r.table, "row": r.content})).collect::<Vec<_>>(),
        "added": links.iter().map(|(repo_id, digest, size)| json!({"table": "repo_blobs", "row": {"repo_id": repo_id, "digest": digest, "size": size}}))
            .chain(refs.iter().map(|(repo_id, manifest, child)| json!({"table": "manifest_refs", "row": {"repo_id": repo_id, "manifest": manifest, "child": child}})))
            .collect::<Vec<_>>(),
    });
    let json_path = folder.join("rows.json");
    let mut file = std::fs::File::create(&json_path).map_err(FsckError::io(&json_path))?;
    file.write_all(format!("{record:#}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(FsckError::io(&json_path))?;
    sync_dir(&folder)?;
    for dir in folder.ancestors().skip(1).take(2) {
        sync_dir(dir)?;
    }

    let db = root.join("meta.db");
    let mut conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let tx = conn.transaction()?;
    for row in removals.values() {
        let sql = format!("DELETE FROM {} WHERE rowid = ?1", row.table);
        repaired.rows_removed += tx.execute(&sql, [row.rowid])?;
    }
    for (repo_id, digest, size) in &links {
        repaired.rows_added += tx.execute(
            "INSERT OR IGNORE INTO repo_blobs (repo_id, digest, size) VALUES (?1, ?2, ?3)",
            params![repo_id, digest, *size as i64],
        )?;
    }
    for (repo_id, manifest, child) in &refs {
        repaired.rows_added += tx.execute(
            "INSERT OR IGNORE INTO manifest_refs (repo_id, manifest, child) VALUES (?1, ?2, ?3)",
            params![repo_id, manifest, child],
        )?;
    }
    tx.commit()?;
    repaired.folder = Some(folder);
    Ok(repaired)
}

#[cfg(test)]
mod tests {
    use super::utc_stamp;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_796_013_045), "20261130T043045Z");
    }
}
