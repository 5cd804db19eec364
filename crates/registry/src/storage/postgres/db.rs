//! The connection pool, the failure type every query returns, one-statement
//! helpers over prepared (cached) statements, and the retry rule of
//! serializable transactions.

use crate::error::Error;
use deadpool_postgres::GenericClient;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// What a query or transaction can fail with: the database (possibly a
/// serialization failure worth retrying), or a registry rule.
#[derive(Debug)]
pub(super) enum Failure {
    Db(tokio_postgres::Error),
    Pool(String),
    Registry(Error),
}

pub(super) type Sql<T> = std::result::Result<T, Failure>;

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Registry(e)
    }
}

impl Failure {
    /// A serialization failure (40001) or a deadlock (40P01): the
    /// transaction did nothing and may simply run again.
    pub fn retryable(&self) -> bool {
        match self {
            Failure::Db(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }

    pub fn into_error(self) -> Error {
        match self {
            Failure::Registry(e) => e,
            Failure::Pool(e) => Error::Storage(format!("postgresql: {e}")),
            // `{:#}`-less Display of a DbError is only its message: add the detail.
            Failure::Db(e) => match e.as_db_error() {
                Some(db) => Error::Storage(format!(
                    "postgresql: {} ({}){}",
                    db.message(),
                    db.code().code(),
                    db.detail().map(|d| format!(": {d}")).unwrap_or_default()
                )),
                None => Error::Storage(format!("postgresql: {e}")),
            },
        }
    }
}

/// Parameters of one statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// At most one row.
pub(super) async fn opt(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Sql<Option<Row>> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&statement, params).await?)
}

/// Exactly one row.
pub(super) async fn one(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Sql<Row> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query_one(&statement, params).await?)
}

/// Every row.
pub(super) async fn all(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Sql<Vec<Row>> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query(&statement, params).await?)
}

/// Whether the query answers a row.
pub(super) async fn exists(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Sql<bool> {
    Ok(opt(c, sql, params).await?.is_some())
}

/// Rows changed.
pub(super) async fn exec(c: &impl GenericClient, sql: &str, params: Params<'_>) -> Sql<u64> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.execute(&statement, params).await?)
}

/// Attempts of one serializable transaction before its serialization
/// failure is returned to the caller.
pub(super) const ATTEMPTS: u32 = 25;

/// Wait before attempt `attempt` (1-based) of a transaction that lost a
/// race: grows with the attempt, jittered so racers do not meet again.
pub(super) fn backoff(attempt: u32) -> Duration {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 4_000)
        .unwrap_or(0);
    let base = u64::from(attempt.min(10)) * 2_000;
    Duration::from_micros(base + u64::from(jitter))
}

/// A count or size column (BIGINT) as the unsigned number it stands for.
pub(super) fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
