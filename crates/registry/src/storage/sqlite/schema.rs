//! The schema, versioned: `PRAGMA user_version` says how many of
//! [`MIGRATIONS`] a database has had, and opening it applies the rest, each
//! in its own transaction. Existing table and column names stay stable
//! (`berth fsck` reads them); migrations only add.

use rusqlite::Connection;

/// Every migration in order; index `i` takes a database to version `i + 1`.
/// Never edit one that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // v1: the schema berth started with. `IF NOT EXISTS`, because databases
    // created before versioning hold these tables at user_version 0.
    "
    CREATE TABLE IF NOT EXISTS repositories (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE IF NOT EXISTS repo_blobs (
        repo_id INTEGER NOT NULL REFERENCES repositories(id),
        digest  TEXT NOT NULL,
        size    INTEGER NOT NULL,
        PRIMARY KEY (repo_id, digest)
    );
    CREATE TABLE IF NOT EXISTS manifests (
        repo_id       INTEGER NOT NULL REFERENCES repositories(id),
        digest        TEXT NOT NULL,
        media_type    TEXT NOT NULL,
        size          INTEGER NOT NULL,
        artifact_type TEXT,
        subject       TEXT,
        annotations   TEXT,
        pushed_at     INTEGER NOT NULL,
        PRIMARY KEY (repo_id, digest)
    );
    CREATE INDEX IF NOT EXISTS manifests_by_subject ON manifests (repo_id, subject);
    CREATE TABLE IF NOT EXISTS manifest_refs (
        repo_id  INTEGER NOT NULL,
        manifest TEXT NOT NULL,
        child    TEXT NOT NULL,
        PRIMARY KEY (repo_id, manifest, child)
    );
    CREATE TABLE IF NOT EXISTS tags (
        repo_id    INTEGER NOT NULL REFERENCES repositories(id),
        name       TEXT NOT NULL,
        digest     TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (repo_id, name)
    );
    CREATE INDEX IF NOT EXISTS tags_by_digest ON tags (repo_id, digest);
    CREATE TABLE IF NOT EXISTS uploads (
        id         TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        bytes      INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    ",
    // v2: deletes ask whether any manifest still refers to a digest.
    "CREATE INDEX IF NOT EXISTS manifest_refs_by_child ON manifest_refs (repo_id, child);",
    // v3: who started an upload, to cap sessions per client.
    "ALTER TABLE uploads ADD COLUMN client TEXT;
     CREATE INDEX IF NOT EXISTS uploads_by_client ON uploads (client);",
    // v4: browsing lists a repository's tags newest first.
    "CREATE INDEX IF NOT EXISTS tags_by_time ON tags (repo_id, updated_at DESC, name);",
    // v5: online garbage collection. Every stored blob gets a row saying
    // when something last wanted it; the grace delay of what is already
    // there starts at the upgrade. Claims guard publishes in progress; a
    // tombstone (`deleting_since`) marks a blob the collector is removing.
    "
    CREATE TABLE blobs (
        digest         TEXT PRIMARY KEY,
        size           INTEGER NOT NULL,
        touched_at     INTEGER NOT NULL,
        deleting_since INTEGER
    );
    INSERT OR IGNORE INTO blobs (digest, size, touched_at)
        SELECT digest, max(size), CAST(strftime('%s', 'now') AS INTEGER)
        FROM repo_blobs GROUP BY digest;
    INSERT OR IGNORE INTO blobs (digest, size, touched_at)
        SELECT digest, max(size), CAST(strftime('%s', 'now') AS INTEGER)
        FROM manifests GROUP BY digest;
    CREATE TABLE blob_claims (
        id         TEXT PRIMARY KEY,
        digest     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX blob_claims_by_digest ON blob_claims (digest);
    ALTER TABLE repo_blobs ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
    UPDATE repo_blobs SET touched_at = CAST(strftime('%s', 'now') AS INTEGER);
    CREATE INDEX repo_blobs_by_digest ON repo_blobs (digest);
    CREATE INDEX manifest_refs_by_digest ON manifest_refs (child);
    CREATE INDEX manifests_by_digest ON manifests (digest);
    ",
    // v6 (policies): last pulls, by tag and by digest, for retention's
    // keep_pulled_within. NULL: not pulled since the column exists.
    "ALTER TABLE tags ADD COLUMN pulled_at INTEGER;
     ALTER TABLE manifests ADD COLUMN pulled_at INTEGER;",
    // v7 (pull-through cache): which repositories mirror an upstream, and
    // when each cached tag was last checked there.
    "
    CREATE TABLE cached_repositories (
        repo_id    INTEGER PRIMARY KEY REFERENCES repositories(id),
        upstream   TEXT NOT NULL,
        remote     TEXT NOT NULL,
        checked_at INTEGER
    );
    CREATE TABLE cached_tags (
        repo_id    INTEGER NOT NULL,
        tag        TEXT NOT NULL,
        checked_at INTEGER NOT NULL,
        PRIMARY KEY (repo_id, tag)
    );
    ",
    // v8 (replicas): an upload's saved hash and blob-store state, so that
    // any process can continue it; leases for work that must run once; and
    // values every process sharing the store must agree on.
    "
    ALTER TABLE uploads ADD COLUMN hash_state BLOB;
    ALTER TABLE uploads ADD COLUMN store_state BLOB NOT NULL DEFAULT x'';
    CREATE TABLE leases (
        name   TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until  INTEGER NOT NULL
    );
    CREATE TABLE shared_secrets (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    ",
];

/// The version a database has once [`migrate`] ran.
pub const VERSION: usize = MIGRATIONS.len();

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("database schema version {found} is newer than this berth knows ({VERSION})")]
    TooNew { found: usize },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// Brings the database on `conn` up to [`VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<(), SchemaError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > VERSION {
        return Err(SchemaError::TooNew { found });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> usize {
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize
    }

    #[test]
    fn a_database_from_before_versioning_is_migrated_in_place() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("INSERT INTO repositories (name) VALUES ('kept')")
            .unwrap();
        assert_eq!(version(&conn), 0);
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), VERSION);
        let kept: String = conn
            .query_row("SELECT name FROM repositories", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "kept");
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'manifest_refs_by_child'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1);
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), VERSION, "migrating twice changes nothing");
    }

    #[test]
    fn v5_records_every_stored_blob_with_the_upgrade_as_its_last_use() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 4;
             INSERT INTO repositories (id, name) VALUES (1, 'a'), (2, 'b');
             INSERT INTO repo_blobs (repo_id, digest, size) VALUES
                 (1, 'sha256:layer', 10), (2, 'sha256:layer', 10), (1, 'sha256:config', 3);
             INSERT INTO manifests (repo_id, digest, media_type, size, pushed_at)
                 VALUES (1, 'sha256:manifest', 'x', 99, 5);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, i64, i64, Option<i64>)> = conn
            .prepare("SELECT digest, size, touched_at, deleting_since FROM blobs ORDER BY digest")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let digests: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            digests,
            ["sha256:config", "sha256:layer", "sha256:manifest"]
        );
        assert_eq!(rows[2].1, 99);
        for (digest, _, touched_at, deleting) in &rows {
            assert!(
                (now - touched_at).abs() <= 5,
                "{digest}: grace starts at the upgrade"
            );
            assert_eq!(*deleting, None);
        }
        let stale_links: i64 = conn
            .query_row(
                "SELECT count(*) FROM repo_blobs WHERE touched_at < ?1",
                [now - 5],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stale_links, 0);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", VERSION + 1))
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(SchemaError::TooNew { .. })
        ));
    }
}
