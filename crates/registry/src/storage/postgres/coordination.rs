//! What replicas coordinate through: leases (one holder at a time, e.g.
//! the garbage collector) and shared secrets (first writer wins).

use super::db::{exec, one, Sql};
use super::now;
use deadpool_postgres::Transaction;

/// Takes or renews lease `name` for `holder` until now + `ttl_secs`;
/// false, changing nothing, while another holder has it unexpired (its
/// end not yet in the past, as the embedded store judges it). The
/// upsert's condition is decided on the row as it is when the statement
/// runs, and the serializable transaction makes two takers of an expired
/// lease conflict: only one of them commits with it.
pub(super) async fn try_lease(
    tx: &Transaction<'_>,
    name: &str,
    holder: &str,
    ttl_secs: i64,
) -> Sql<bool> {
    let now = now();
    let taken = exec(
        tx,
        "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
         WHERE leases.holder = excluded.holder OR leases.until < $4",
        &[&name, &holder, &now.saturating_add(ttl_secs), &now],
    )
    .await?;
    Ok(taken > 0)
}

/// Gives lease `name` up, if `holder` still has it.
pub(super) async fn release_lease(tx: &Transaction<'_>, name: &str, holder: &str) -> Sql<()> {
    exec(
        tx,
        "DELETE FROM leases WHERE name = $1 AND holder = $2",
        &[&name, &holder],
    )
    .await?;
    Ok(())
}

/// The secret stored under `name`, storing `candidate` first if there is
/// none. Two replicas storing at once conflict; the one that retries reads
/// the other's.
pub(super) async fn shared_secret(
    tx: &Transaction<'_>,
    name: &str,
    candidate: &[u8],
) -> Sql<Vec<u8>> {
    exec(
        tx,
        "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &candidate],
    )
    .await?;
    let row = one(
        tx,
        "SELECT value FROM shared_secrets WHERE name = $1",
        &[&name],
    )
    .await?;
    Ok(row.get(0))
}
