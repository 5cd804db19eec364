//! The public storage kit against [`PostgresMetaStore`] on a real
//! PostgreSQL (one throwaway server per test binary, a fresh schema per
//! test, a fresh database for the migration tests), plus what only a shared database must prove: two stores (as two
//! replicas) racing on the same rows, and the schema's migrations.
//!
//! Without PostgreSQL binaries each test prints why and passes, except
//! under `CI=true`, where [`TempPostgres::start`] fails it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_registry::storage::postgres::PostgresMetaStore;
use berth_registry::testing::{self, engines::TempPostgres};
use std::sync::{Arc, OnceLock};

/// The server every test of this binary shares (stopped by its watchdog
/// when the binary exits).
fn engine() -> Option<&'static TempPostgres> {
    static ENGINE: OnceLock<Option<TempPostgres>> = OnceLock::new();
    ENGINE.get_or_init(TempPostgres::start).as_ref()
}

/// A store on a schema of its own, or `None` without PostgreSQL.
async fn fresh_store() -> Option<Arc<PostgresMetaStore>> {
    let url = engine()?.fresh_schema().await;
    Some(Arc::new(
        PostgresMetaStore::connect(&url, None).await.unwrap(),
    ))
}

macro_rules! promises {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(meta) = fresh_store().await else { return };
            testing::$name(&*meta).await;
        }
    )*};
}

macro_rules! shared_promises {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(meta) = fresh_store().await else { return };
            testing::$name(meta).await;
        }
    )*};
}

promises!(
    blobs_are_linked_per_repository,
    manifests_check_their_references_in_one_transaction,
    tags_move_and_delete_independently,
    listings_are_sorted_keyset_pages,
    referrers_are_found_by_subject,
    index_children_must_be_present,
    writes_are_idempotent,
    upload_sessions_are_kept_and_expire,
    a_missing_upload_session_is_unknown,
    referenced_content_cannot_be_deleted,
    a_repository_is_deleted_whole_and_alone,
    deleting_a_repository_touches_what_it_held,
    stats_count_what_is_stored,
    repository_summaries_count_size_and_filter,
    tag_details_are_newest_first_with_sizes,
    manifest_facts_list_tags_and_push_time,
    overview_counts_shared_blobs_once,
    blob_candidates_are_unreferenced_and_untouched,
    tombstones_recheck_and_block_claims_and_mounts,
    expired_claims_hold_nothing,
    touches_restart_the_grace,
    dangling_links_are_unlinked_only_if_still_dangling,
    untagged_manifests_spare_children_and_referrers,
    deleting_a_manifest_touches_what_it_named,
    orphans_are_tombstoned_unless_known_or_claimed,
    pull_times_move_forward_by_tag_and_by_digest,
    a_tag_is_deleted_only_if_unchanged_since_read,
    repository_usage_counts_shared_blobs_once,
    an_immutable_tag_refuses_a_different_manifest,
    a_byte_quota_counts_shared_layers_once,
    a_tag_quota_refuses_only_new_tags_beyond_it,
    cached_manifests_have_lazy_references_and_mark_their_repository,
    tag_check_times_move_and_go_with_their_tags,
    cached_bytes_count_present_blobs_of_cached_manifests_once,
    eviction_candidates_are_top_level_cached_manifests_by_last_pull,
    leases_are_exclusive_until_released_or_expired,
    shared_secrets_keep_the_first_value,
    repositories_list_their_links_and_manifests,
);

shared_promises!(
    concurrent_writers_are_isolated,
    put_manifest_racing_an_unlink_never_dangles,
    a_tombstone_racing_a_put_and_a_mount_never_dangles,
    upload_sessions_are_capped,
    upload_sessions_advance_by_compare_and_set,
);

// --- What only a database shared by replicas must prove. ---

use berth_oci::{Digest, RepositoryName, Tag};
use berth_registry::storage::schema;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::storage::{
    ManifestRecord, PutOptions, UploadLimits, UploadProgress, UploadSession,
};
use berth_registry::{Error, MetaStore};
use std::time::Duration;

/// Two stores on one database, as two replicas have.
async fn two_replicas() -> Option<(String, Arc<PostgresMetaStore>, Arc<PostgresMetaStore>)> {
    let url = engine()?.fresh_schema().await;
    let a = PostgresMetaStore::connect(&url, None).await.unwrap();
    let b = PostgresMetaStore::connect(&url, None).await.unwrap();
    Some((url, Arc::new(a), Arc::new(b)))
}

/// A plain connection, to look under the store.
async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn image(n: usize, layer: &Digest) -> ManifestRecord {
    ManifestRecord {
        digest: Digest::sha256_of(format!("image {n}").as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 100,
        artifact_type: None,
        subject: None,
        annotations: None,
        blobs: vec![(layer.clone(), 7)],
        manifests: vec![],
    }
}

/// Pushes of `pushes` different manifests to one tag, alternating between
/// the two replicas, all at once; with what each answered.
async fn race_one_tag(
    a: &Arc<PostgresMetaStore>,
    b: &Arc<PostgresMetaStore>,
    repo: &RepositoryName,
    pushes: usize,
    immutable_tag: bool,
) -> (Vec<ManifestRecord>, Vec<Result<(), Error>>) {
    let layer = Digest::sha256_of(b"shared layer");
    testing::publish_link(&**a, repo, &layer, 7).await;
    let images: Vec<ManifestRecord> = (0..pushes).map(|n| image(n, &layer)).collect();
    let tasks: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(n, m)| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            let (repo, m) = (repo.clone(), m.clone());
            tokio::spawn(async move {
                let options = PutOptions {
                    immutable_tag,
                    ..PutOptions::default()
                };
                let tag: Tag = "latest".parse().unwrap();
                store.put_manifest(&repo, &m, Some(&tag), &options).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    (images, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_of_one_tag_on_two_replicas_leave_one_consistent_tag() {
    let Some((_, a, b)) = two_replicas().await else {
        return;
    };
    let repo: RepositoryName = "race/one-tag".parse().unwrap();
    let (images, outcomes) = race_one_tag(&a, &b, &repo, 20, false).await;
    for outcome in &outcomes {
        assert!(outcome.is_ok(), "every push lands (retried): {outcome:?}");
    }
    let tag: Tag = "latest".parse().unwrap();
    let on_a = a.manifest_by_tag(&repo, &tag).await.unwrap().unwrap();
    let on_b = b.manifest_by_tag(&repo, &tag).await.unwrap().unwrap();
    assert_eq!(on_a, on_b, "both replicas read the same tag");
    assert!(images.iter().any(|m| m.digest == on_a.digest));
    assert_eq!(
        a.list_tags(&repo, None, 100).await.unwrap().unwrap(),
        ["latest"]
    );
    let details = b.tag_details(&repo, None, 100).await.unwrap().unwrap();
    assert_eq!(details.len(), 1);
    assert_eq!(details[0].digest, on_a.digest);
    for m in &images {
        let facts = a.manifest_facts(&repo, &m.digest).await.unwrap().unwrap();
        let tagged = m.digest == on_a.digest;
        assert_eq!(
            facts.tags.is_empty(),
            !tagged,
            "{}: {:?}",
            m.digest,
            facts.tags
        );
    }
    assert_eq!(a.stats().await.unwrap().manifests, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_tag_raced_on_two_replicas_is_taken_exactly_once() {
    let Some((_, a, b)) = two_replicas().await else {
        return;
    };
    let repo: RepositoryName = "race/immutable".parse().unwrap();
    let (images, outcomes) = race_one_tag(&a, &b, &repo, 10, true).await;
    let won: Vec<&ManifestRecord> = images
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(m, _)| m)
        .collect();
    assert_eq!(won.len(), 1, "one push takes the tag: {outcomes:?}");
    for outcome in &outcomes {
        match outcome {
            Ok(()) => {}
            Err(Error::TagImmutable { current, .. }) => assert_eq!(current, &won[0].digest),
            Err(other) => panic!("a losing push is refused as immutable, not {other}"),
        }
    }
    let tag: Tag = "latest".parse().unwrap();
    let row = b.manifest_by_tag(&repo, &tag).await.unwrap().unwrap();
    assert_eq!(row.digest, won[0].digest);
    assert_eq!(a.stats().await.unwrap().manifests, 1, "losers left nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_an_empty_database_once() {
    let Some(pg) = engine() else { return };
    let url = pg.fresh_database();
    let (a, b) = tokio::join!(
        PostgresMetaStore::connect(&url, None),
        PostgresMetaStore::connect(&url, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let db = raw(&url).await;
    let versions = db
        .query("SELECT version FROM berth_schema", &[])
        .await
        .unwrap();
    let versions: Vec<i64> = versions.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [schema::VERSION as i64]);
    a.check().await.unwrap();
    b.check().await.unwrap();
    drop((a, b));
    // A restart finds the schema current and changes nothing.
    PostgresMetaStore::connect(&url, None).await.unwrap();
    let again = db
        .query("SELECT version FROM berth_schema", &[])
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
}

#[tokio::test]
async fn a_database_of_a_newer_berth_is_refused() {
    let Some(pg) = engine() else { return };
    let url = pg.fresh_database();
    let store = PostgresMetaStore::connect(&url, None).await.unwrap();
    let newer = schema::VERSION as i64 + 1;
    raw(&url)
        .await
        .execute("UPDATE berth_schema SET version = $1", &[&newer])
        .await
        .unwrap();
    let refused = PostgresMetaStore::connect(&url, None).await.err().unwrap();
    let message = refused.to_string();
    assert!(
        message.contains(&format!("version {newer} is newer than this berth knows")),
        "{message}"
    );
    // The store already open keeps answering: only a start is refused.
    store.check().await.unwrap();
}

#[tokio::test]
async fn the_check_fails_once_the_database_is_not_berths() {
    let Some(pg) = engine() else { return };
    let url = pg.fresh_database();
    let store = PostgresMetaStore::connect(&url, None).await.unwrap();
    store.check().await.unwrap();
    raw(&url)
        .await
        .batch_execute("DROP TABLE berth_schema")
        .await
        .unwrap();
    assert!(store.check().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_advanced_from_one_offset_on_two_replicas_moves_once() {
    let Some((_, a, b)) = two_replicas().await else {
        return;
    };
    let session = UploadSession {
        id: "replicated-upload".into(),
        repository: "race/upload".parse().unwrap(),
        offset: 0,
        updated_at: 1,
        client: None,
        hash_state: None,
        store_state: Vec::new(),
    };
    let roomy = UploadLimits {
        total: usize::MAX,
        per_client: usize::MAX,
    };
    a.create_upload(&session, roomy).await.unwrap();
    let racers: Vec<_> = (1..=16u64)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let to = UploadProgress {
                    offset: i * 100,
                    hash_state: Some(vec![i as u8; 8]),
                    store_state: format!("parts of {i}").into_bytes(),
                };
                let won = store
                    .advance_upload("replicated-upload", 0, &to, 2)
                    .await
                    .unwrap();
                won.then_some(to)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "one append from offset 0 is recorded");
    for store in [&a, &b] {
        let held = store.upload("replicated-upload").await.unwrap().unwrap();
        let won = &winners[0];
        assert_eq!(
            (held.offset, &held.hash_state, &held.store_state),
            (won.offset, &won.hash_state, &won.store_state)
        );
    }
    // The next append continues from the winner's offset, on the other replica too.
    let next = UploadProgress {
        offset: winners[0].offset + 1,
        hash_state: None,
        store_state: b"next".to_vec(),
    };
    assert!(b
        .advance_upload("replicated-upload", winners[0].offset, &next, 3)
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_held_by_one_replica_and_taken_over_after_expiry() {
    let Some((_, a, b)) = two_replicas().await else {
        return;
    };
    let hour = Duration::from_secs(3600);
    // Many holders on both replicas at once: exactly one gets it.
    let takers: Vec<_> = (0..12)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let holder = format!("holder-{i}");
                let took = store.try_lease("gc", &holder, hour).await.unwrap();
                took.then_some(holder)
            })
        })
        .collect();
    let mut holders = Vec::new();
    for taker in takers {
        holders.extend(taker.await.unwrap());
    }
    assert_eq!(holders.len(), 1, "{holders:?}");
    let first = holders.remove(0);
    assert!(!a.try_lease("gc", "late", hour).await.unwrap());
    assert!(b.try_lease("gc", &first, hour).await.unwrap(), "renewed");
    a.release_lease("gc", &first).await.unwrap();
    // Taken for no time at all: expired once a second has passed.
    assert!(b.try_lease("gc", "short", Duration::ZERO).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        a.try_lease("gc", "waiting", hour).await.unwrap(),
        "taken over"
    );
    assert!(!b.try_lease("gc", "short", hour).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_storing_a_secret_at_once_all_read_one_value() {
    let Some((_, a, b)) = two_replicas().await else {
        return;
    };
    let tasks: Vec<_> = (0..10u8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.shared_secret("signing-key", vec![i; 32]).await })
        })
        .collect();
    let mut read = Vec::new();
    for task in tasks {
        read.push(task.await.unwrap().unwrap());
    }
    assert!(read.iter().all(|v| *v == read[0]), "one value for all");
    assert!((0..10u8).any(|i| read[0] == vec![i; 32]));
}

/// Tables, columns (with their kind of type) and indexes of a database.
type Shape = (Vec<(String, String, String)>, Vec<String>);

async fn postgres_shape(url: &str) -> Shape {
    let db = raw(url).await;
    let columns = db
        .query(
            "SELECT table_name::text, column_name::text, data_type::text
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'berth_schema'",
            &[],
        )
        .await
        .unwrap();
    let kind = |t: &str| match t {
        "bigint" => "integer",
        "text" => "text",
        "bytea" => "bytes",
        other => panic!("unexpected PostgreSQL column type {other}"),
    };
    let mut columns: Vec<(String, String, String)> = columns
        .iter()
        .map(|r| (r.get(0), r.get(1), kind(r.get::<_, &str>(2)).to_string()))
        .collect();
    columns.sort();
    // Indexes created by name; primary keys and UNIQUE are implied by the tables.
    let indexes = db
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'
               AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    (columns, indexes.iter().map(|r| r.get(0)).collect())
}

fn sqlite_shape(path: &std::path::Path) -> Shape {
    let db = rusqlite::Connection::open(path).unwrap();
    let kind = |t: String| match t.as_str() {
        "INTEGER" => "integer".to_string(),
        "TEXT" => "text".to_string(),
        "BLOB" => "bytes".to_string(),
        other => panic!("unexpected SQLite column type {other}"),
    };
    let mut columns: Vec<(String, String, String)> = db
        .prepare(
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, kind(r.get(2)?))))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    columns.sort();
    let indexes = db
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%' ORDER BY 1",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (columns, indexes)
}

#[tokio::test]
async fn both_engines_migrate_to_the_same_tables_columns_and_indexes() {
    let Some(pg) = engine() else { return };
    let url = pg.fresh_database();
    PostgresMetaStore::connect(&url, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    drop(SqliteMetaStore::open(&path).unwrap());
    let (pg_columns, pg_indexes) = postgres_shape(&url).await;
    let (sqlite_columns, sqlite_indexes) = sqlite_shape(&path);
    assert_eq!(pg_columns, sqlite_columns);
    assert_eq!(pg_indexes, sqlite_indexes);
    assert!(pg_columns.len() > 40, "{pg_columns:?}");
}

#[tokio::test]
async fn hot_reads_are_index_lookups() {
    let Some(pg) = engine() else { return };
    let url = pg.fresh_schema().await;
    let store = PostgresMetaStore::connect(&url, None).await.unwrap();
    // Enough rows that a scan would cost more than an index lookup.
    raw(&url)
        .await
        .batch_execute(
            "INSERT INTO repositories (name) SELECT 'r' || i FROM generate_series(1, 3000) i;
             INSERT INTO tags (repo_id, name, digest, updated_at)
               SELECT id, 'latest', 'sha256:' || id, 0 FROM repositories;
             INSERT INTO manifests (repo_id, digest, media_type, size, pushed_at)
               SELECT id, 'sha256:' || id, 'x', 1, 0 FROM repositories;
             INSERT INTO repo_blobs (repo_id, digest, size)
               SELECT id, 'sha256:b' || id, 1 FROM repositories;
             ANALYZE;",
        )
        .await
        .unwrap();
    let plans = store
        .hot_read_plans("r1500", "latest", "sha256:b1500")
        .await
        .unwrap();
    for plan in plans {
        assert!(plan.contains("Index"), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
    }
}
