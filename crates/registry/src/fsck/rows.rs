//! The metadata as fsck reads it: every row of every table, read in one
//! transaction so that a server writing meanwhile cannot tear the picture.
//! Rows keep their SQLite `rowid`, so repair removes exactly what was found.

use rusqlite::{Connection, Row};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};

/// A row to remove: where it is and what it held (written to the quarantine).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub table: &'static str,
    pub rowid: i64,
    pub content: Value,
}

pub struct RepoBlobRow {
    pub rowid: i64,
    pub repo_id: i64,
    pub digest: String,
    pub size: i64,
}

pub struct ManifestRow {
    pub rowid: i64,
    pub repo_id: i64,
    pub digest: String,
    pub media_type: String,
    pub size: i64,
    /// The columns fsck does not check, kept whole for the quarantine record.
    pub rest: Value,
}

pub struct RefRow {
    pub rowid: i64,
    pub repo_id: i64,
    pub manifest: String,
    pub child: String,
}

pub struct TagRow {
    pub rowid: i64,
    pub repo_id: i64,
    pub name: String,
    pub digest: String,
    pub updated_at: i64,
}

pub struct UploadRow {
    pub rowid: i64,
    pub id: String,
    pub repository: String,
    pub bytes: i64,
    pub updated_at: i64,
}

/// Every row fsck looks at.
#[derive(Default)]
pub struct Snapshot {
    pub repositories: BTreeMap<i64, String>,
    pub repo_blobs: Vec<RepoBlobRow>,
    pub manifests: Vec<ManifestRow>,
    pub refs: Vec<RefRow>,
    pub tags: Vec<TagRow>,
    pub uploads: Vec<UploadRow>,
    /// Repositories that cache an upstream: their manifests' references
    /// are lazy (fetched when pulled), so absent ones are no fault.
    pub cached: HashSet<i64>,
}

fn all<T>(
    conn: &Connection,
    sql: &str,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare(sql)?.query_map([], map)?.collect()
}

impl Snapshot {
    pub fn load(conn: &Connection) -> rusqlite::Result<Snapshot> {
        conn.execute_batch("BEGIN")?;
        let snapshot = Self::read(conn);
        conn.execute_batch("COMMIT")?;
        snapshot
    }

    fn read(conn: &Connection) -> rusqlite::Result<Snapshot> {
        let repositories = all(conn, "SELECT id, name FROM repositories", |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .into_iter()
        .collect();
        let repo_blobs = all(
            conn,
            "SELECT rowid, repo_id, digest, size FROM repo_blobs",
            |r| {
                Ok(RepoBlobRow {
                    rowid: r.get(0)?,
                    repo_id: r.get(1)?,
                    digest: r.get(2)?,
                    size: r.get(3)?,
                })
            },
        )?;
        let manifests = all(
            conn,
            "SELECT rowid, repo_id, digest, media_type, size,
                    artifact_type, subject, annotations, pushed_at FROM manifests",
            |r| {
                Ok(ManifestRow {
                    rowid: r.get(0)?,
                    repo_id: r.get(1)?,
                    digest: r.get(2)?,
                    media_type: r.get(3)?,
                    size: r.get(4)?,
                    rest: json!({
                        "artifact_type": r.get::<_, Option<String>>(5)?,
                        "subject": r.get::<_, Option<String>>(6)?,
                        "annotations": r.get::<_, Option<String>>(7)?,
                        "pushed_at": r.get::<_, i64>(8)?,
                    }),
                })
            },
        )?;
        let refs = all(
            conn,
            "SELECT rowid, repo_id, manifest, child FROM manifest_refs",
            |r| {
                Ok(RefRow {
                    rowid: r.get(0)?,
                    repo_id: r.get(1)?,
                    manifest: r.get(2)?,
                    child: r.get(3)?,
                })
            },
        )?;
        let tags = all(
            conn,
            "SELECT rowid, repo_id, name, digest, updated_at FROM tags",
            |r| {
                Ok(TagRow {
                    rowid: r.get(0)?,
                    repo_id: r.get(1)?,
                    name: r.get(2)?,
                    digest: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            },
        )?;
        let uploads = all(
            conn,
            "SELECT rowid, id, repository, bytes, updated_at FROM uploads",
            |r| {
                Ok(UploadRow {
                    rowid: r.get(0)?,
                    id: r.get(1)?,
                    repository: r.get(2)?,
                    bytes: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            },
        )?;
        // Databases from before schema v7 have no such table: nothing is cached.
        let has_cache: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master
                            WHERE type = 'table' AND name = 'cached_repositories')",
            [],
            |r| r.get(0),
        )?;
        let cached = if has_cache {
            all(conn, "SELECT repo_id FROM cached_repositories", |r| {
                r.get(0)
            })?
            .into_iter()
            .collect()
        } else {
            HashSet::new()
        };
        Ok(Snapshot {
            cached,
            repositories,
            repo_blobs,
            manifests,
            refs,
            tags,
            uploads,
        })
    }

    /// The repository's name, or a placeholder for an id without a row.
    pub fn repo_name(&self, repo_id: i64) -> String {
        self.repositories
            .get(&repo_id)
            .cloned()
            .unwrap_or_else(|| format!("<repository id {repo_id}>"))
    }
}

impl RepoBlobRow {
    pub fn stored(&self, repo: &str) -> StoredRow {
        StoredRow {
            table: "repo_blobs",
            rowid: self.rowid,
            content: json!({"repository": repo, "repo_id": self.repo_id, "digest": self.digest, "size": self.size}),
        }
    }
}

impl ManifestRow {
    pub fn stored(&self, repo: &str) -> StoredRow {
        StoredRow {
            table: "manifests",
            rowid: self.rowid,
            content: json!({"repository": repo, "repo_id": self.repo_id, "digest": self.digest,
                            "media_type": self.media_type, "size": self.size,
                            "artifact_type": self.rest["artifact_type"], "subject": self.rest["subject"],
                            "annotations": self.rest["annotations"], "pushed_at": self.rest["pushed_at"]}),
        }
    }
}

impl RefRow {
    pub fn stored(&self, repo: &str) -> StoredRow {
        StoredRow {
            table: "manifest_refs",
            rowid: self.rowid,
            content: json!({"repository": repo, "repo_id": self.repo_id,
                            "manifest": self.manifest, "child": self.child}),
        }
    }
}

impl TagRow {
    pub fn stored(&self, repo: &str) -> StoredRow {
        StoredRow {
            table: "tags",
            rowid: self.rowid,
            content: json!({"repository": repo, "repo_id": self.repo_id,
                            "name": self.name, "digest": self.digest, "updated_at": self.updated_at}),
        }
    }
}

impl UploadRow {
    pub fn stored(&self) -> StoredRow {
        StoredRow {
            table: "uploads",
            rowid: self.rowid,
            content: json!({"id": self.id, "repository": self.repository,
                            "bytes": self.bytes, "updated_at": self.updated_at}),
        }
    }
}
