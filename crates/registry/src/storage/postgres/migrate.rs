//! Brings a PostgreSQL database to the current schema version: the
//! baseline on an empty database, then every later step, all in one
//! transaction under an advisory lock, so that replicas starting together
//! migrate once (the others wait, then find the work done).

use crate::storage::schema::{self, TooNew};
use deadpool_postgres::Client;

/// The advisory lock key berth migrations take ("berth" in ASCII).
const MIGRATION_LOCK: i64 = 0x0062_6572_7468;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    TooNew(#[from] TooNew),
    #[error("migrating the postgresql schema: {0}")]
    Sql(#[from] tokio_postgres::Error),
}

/// The version recorded in `berth_schema`; 0 for a database without it.
/// Runs inside the migrating transaction.
async fn recorded_version(tx: &tokio_postgres::Transaction<'_>) -> Result<usize, SchemaError> {
    let table = tx
        .query_one("SELECT to_regclass('berth_schema') IS NOT NULL", &[])
        .await?;
    if !table.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = tx
        .query_opt("SELECT version FROM berth_schema", &[])
        .await?;
    let version = row.map(|r| r.get::<_, i64>(0)).unwrap_or(0);
    Ok(usize::try_from(version).unwrap_or(usize::MAX))
}

/// Migrates the database `client` is connected to. READ COMMITTED (the
/// default): once the lock is ours, each statement sees what a replica
/// that held it before committed.
pub(super) async fn migrate(client: &mut Client) -> Result<(), SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let found = recorded_version(&tx).await?;
    let current = schema::VERSION;
    if found > current {
        return Err(TooNew {
            found,
            known: current,
        }
        .into());
    }
    if found == current {
        return Ok(()); // dropping the transaction rolls back nothing but the lock
    }
    let mut at = found;
    if at < schema::POSTGRES_BASELINE_VERSION {
        // Empty (PostgreSQL databases start at the baseline, never before it).
        tx.batch_execute(schema::POSTGRES_BASELINE).await?;
        tx.batch_execute("CREATE TABLE berth_schema (version BIGINT NOT NULL)")
            .await?;
        tx.execute("INSERT INTO berth_schema (version) VALUES (0)", &[])
            .await?;
        at = schema::POSTGRES_BASELINE_VERSION;
    }
    for step in &schema::MIGRATIONS[at..] {
        if let Some(sql) = step.postgres() {
            tx.batch_execute(sql).await?;
        }
    }
    tx.execute("UPDATE berth_schema SET version = $1", &[&(current as i64)])
        .await?;
    tx.commit().await?;
    Ok(())
}
