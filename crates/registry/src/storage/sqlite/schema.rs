//! SQLite's side of the shared schema ([`crate::storage::schema`]):
//! `PRAGMA user_version` says how many of [`MIGRATIONS`] a database has
//! had, and opening it applies the rest, each in its own transaction.
//! Existing table and column names stay stable (`berth fsck` reads them);
//! migrations only add.

pub use crate::storage::schema::{MIGRATIONS, VERSION};
use rusqlite::Connection;

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
    for (i, step) in MIGRATIONS.iter().enumerate().skip(found) {
        let tx = conn.transaction()?;
        tx.execute_batch(step.sqlite())?;
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
        conn.execute_batch(MIGRATIONS[0].sqlite()).unwrap();
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
        for step in &MIGRATIONS[..4] {
            conn.execute_batch(step.sqlite()).unwrap();
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
