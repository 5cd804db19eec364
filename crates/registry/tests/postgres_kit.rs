//! The public storage kit against [`PostgresMetaStore`] on a real
//! PostgreSQL (one throwaway server per test binary, a fresh database per
//! test), plus what only a shared database must prove: two stores (as two
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

/// A store on a database of its own, or `None` without PostgreSQL.
async fn fresh_store() -> Option<Arc<PostgresMetaStore>> {
    let url = engine()?.fresh_database();
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
);

shared_promises!(
    concurrent_writers_are_isolated,
    put_manifest_racing_an_unlink_never_dangles,
    a_tombstone_racing_a_put_and_a_mount_never_dangles,
    upload_sessions_are_capped,
);

// --- What only a database shared by replicas must prove. ---

use berth_oci::{Digest, RepositoryName, Tag};
use berth_registry::storage::schema;
use berth_registry::storage::{ManifestRecord, PutOptions};
use berth_registry::{Error, MetaStore};

/// Two stores on one database, as two replicas have.
async fn two_replicas() -> Option<(String, Arc<PostgresMetaStore>, Arc<PostgresMetaStore>)> {
    let url = engine()?.fresh_database();
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
