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
