//! The public storage kit (`berth_registry::testing`, feature `testing`)
//! run from outside the crate against the filesystem and SQLite backends,
//! one test per promise, exactly as a new backend crate would run it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::testing;
use berth_registry::{BlobStore, MetaStore};
use std::sync::Arc;

fn blob_store(dir: &tempfile::TempDir) -> Arc<dyn BlobStore> {
    Arc::new(FsBlobStore::open(dir.path()).unwrap())
}

fn meta_store(dir: &tempfile::TempDir) -> Arc<dyn MetaStore> {
    Arc::new(SqliteMetaStore::open(&dir.path().join("meta.db")).unwrap())
}

macro_rules! promises {
    ($store:ident: $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let dir = tempfile::tempdir().unwrap();
            testing::$name(&*$store(&dir)).await;
        }
    )*};
}

promises!(blob_store:
    uploads_are_private_until_committed_and_appends_all_or_nothing,
    a_failed_large_append_leaves_the_old_state_usable,
    an_empty_blob_round_trips,
    committing_a_digest_twice_keeps_the_content,
    ranges_are_cut_at_the_end,
    a_missing_upload_is_unknown,
    stale_uploads_are_listed_by_age,
    blobs_are_listed_in_order_and_deleted,
);

promises!(meta_store:
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
);

#[tokio::test]
async fn concurrent_uploads_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    testing::concurrent_uploads_do_not_mix(blob_store(&dir)).await;
}

#[tokio::test]
async fn concurrent_writers_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    testing::concurrent_writers_are_isolated(meta_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_manifest_racing_an_unlink_never_dangles() {
    let dir = tempfile::tempdir().unwrap();
    testing::put_manifest_racing_an_unlink_never_dangles(meta_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    testing::upload_sessions_are_capped(meta_store(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_racing_a_put_and_a_mount_never_dangles() {
    let dir = tempfile::tempdir().unwrap();
    testing::a_tombstone_racing_a_put_and_a_mount_never_dangles(meta_store(&dir)).await;
}
