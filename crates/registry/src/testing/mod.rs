//! The promises of [`BlobStore`] and [`MetaStore`] as executable checks: a
//! kit every backend runs (feature `testing`).
//!
//! Each promise is one public function, so a backend's tests can name the one
//! that fails; [`blob_store`] and [`meta_store`] run them all. Every function
//! works in repositories and upload ids of its own, so all of them can share
//! one store. A backend that passes can be put under the registry without
//! touching it.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use berth_registry::storage::fs::FsBlobStore;
//! # async fn a_backend_test() {
//! let store = FsBlobStore::open("/tmp/kit").unwrap();
//! berth_registry::testing::blob_store(Arc::new(store)).await;
//! # }
//! ```
// A failed promise is a failed test: the kit panics to report it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod blob_store;
mod browse;
mod cache;
#[cfg(feature = "postgres")]
pub mod engines;
mod gc;
mod meta_store;
mod policies;
mod replicas;
mod upstream;

pub use blob_store::*;
pub use browse::*;
pub use cache::*;
pub use gc::*;
pub use meta_store::*;
pub use policies::*;
pub use replicas::*;
pub use upstream::{FakeCall, FakeUpstream};

use crate::storage::{BlobStore, ByteStream, MetaStore};
use berth_oci::{Digest, RepositoryName};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use std::sync::Arc;

/// Runs every [`BlobStore`] promise against `store`.
pub async fn blob_store(store: Arc<dyn BlobStore>) {
    uploads_are_private_until_committed_and_appends_all_or_nothing(&*store).await;
    a_failed_large_append_leaves_the_old_state_usable(&*store).await;
    an_empty_blob_round_trips(&*store).await;
    committing_a_digest_twice_keeps_the_content(&*store).await;
    ranges_are_cut_at_the_end(&*store).await;
    a_missing_upload_is_unknown(&*store).await;
    stale_uploads_are_listed_by_age(&*store).await;
    a_working_store_passes_its_check(&*store).await;
    blobs_are_listed_in_order_and_deleted(&*store).await;
    concurrent_uploads_do_not_mix(store).await;
}

/// Runs every [`MetaStore`] promise against `meta`.
pub async fn meta_store(meta: Arc<dyn MetaStore>) {
    blobs_are_linked_per_repository(&*meta).await;
    manifests_check_their_references_in_one_transaction(&*meta).await;
    tags_move_and_delete_independently(&*meta).await;
    listings_are_sorted_keyset_pages(&*meta).await;
    referrers_are_found_by_subject(&*meta).await;
    index_children_must_be_present(&*meta).await;
    writes_are_idempotent(&*meta).await;
    upload_sessions_are_kept_and_expire(&*meta).await;
    a_missing_upload_session_is_unknown(&*meta).await;
    referenced_content_cannot_be_deleted(&*meta).await;
    a_repository_is_deleted_whole_and_alone(&*meta).await;
    deleting_a_repository_touches_what_it_held(&*meta).await;
    concurrent_writers_are_isolated(meta.clone()).await;
    put_manifest_racing_an_unlink_never_dangles(meta.clone()).await;
    a_tombstone_racing_a_put_and_a_mount_never_dangles(meta.clone()).await;
    stats_count_what_is_stored(&*meta).await;
    repository_summaries_count_size_and_filter(&*meta).await;
    tag_details_are_newest_first_with_sizes(&*meta).await;
    manifest_facts_list_tags_and_push_time(&*meta).await;
    overview_counts_shared_blobs_once(&*meta).await;
    blob_candidates_are_unreferenced_and_untouched(&*meta).await;
    tombstones_recheck_and_block_claims_and_mounts(&*meta).await;
    expired_claims_hold_nothing(&*meta).await;
    touches_restart_the_grace(&*meta).await;
    dangling_links_are_unlinked_only_if_still_dangling(&*meta).await;
    untagged_manifests_spare_children_and_referrers(&*meta).await;
    deleting_a_manifest_touches_what_it_named(&*meta).await;
    orphans_are_tombstoned_unless_known_or_claimed(&*meta).await;
    pull_times_move_forward_by_tag_and_by_digest(&*meta).await;
    a_tag_is_deleted_only_if_unchanged_since_read(&*meta).await;
    repository_usage_counts_shared_blobs_once(&*meta).await;
    an_immutable_tag_refuses_a_different_manifest(&*meta).await;
    a_byte_quota_counts_shared_layers_once(&*meta).await;
    a_tag_quota_refuses_only_new_tags_beyond_it(&*meta).await;
    cached_manifests_have_lazy_references_and_mark_their_repository(&*meta).await;
    tag_check_times_move_and_go_with_their_tags(&*meta).await;
    cached_bytes_count_present_blobs_of_cached_manifests_once(&*meta).await;
    eviction_candidates_are_top_level_cached_manifests_by_last_pull(&*meta).await;
    leases_are_exclusive_until_released_or_expired(&*meta).await;
    shared_secrets_keep_the_first_value(&*meta).await;
    repositories_list_their_links_and_manifests(&*meta).await;
    upload_sessions_advance_by_compare_and_set(meta.clone()).await;
    upload_sessions_are_capped(meta).await;
}

/// Links `digest` of `size` bytes to `repo` as a publish does: claims the
/// digest, then links it under the claim.
pub async fn publish_link(meta: &dyn MetaStore, repo: &RepositoryName, digest: &Digest, size: u64) {
    let claim = meta
        .claim_blob(digest, std::time::Duration::from_secs(600))
        .await
        .unwrap()
        .expect("a digest nobody deletes can be claimed");
    assert!(meta
        .link_blob(repo, digest, size, Some(&claim))
        .await
        .unwrap());
}

/// Seconds since the Unix epoch, to check recorded times against.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A body of the given chunks.
fn body(parts: &[&[u8]]) -> ByteStream<'static> {
    let chunks: Vec<_> = parts
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    stream::iter(chunks).boxed()
}

async fn collect(s: ByteStream<'static>) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.try_collect().await.expect("stream reads");
    chunks.concat()
}
