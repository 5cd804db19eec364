//! The promises of the garbage collection methods of [`MetaStore`] and
//! [`BlobStore`]. The candidate queries are store-wide, so each check looks
//! only at digests of its own (other checks may share the store).

use super::meta_store::{index, manifest, repo, tag};
use super::{publish_link, unix_now};
use crate::storage::{BlobStore, MetaStore, PutOptions};
use berth_oci::Digest;
use bytes::Bytes;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(600);
/// A cutoff after everything a check did: all of it is old enough.
fn later() -> i64 {
    unix_now() + 100
}
/// A cutoff before anything a check did: none of it is old enough.
fn earlier() -> i64 {
    unix_now() - 100
}

async fn candidates(meta: &dyn MetaStore, touched_before: i64, mine: &[&Digest]) -> Vec<Digest> {
    let mut found = Vec::new();
    let mut after = None;
    loop {
        let page = meta
            .gc_blob_candidates(touched_before, after.as_ref(), 3)
            .await
            .unwrap();
        let Some((last, _)) = page.last() else {
            return found;
        };
        after = Some(last.clone());
        found.extend(
            page.into_iter()
                .map(|(d, _)| d)
                .filter(|d| mine.contains(&d)),
        );
    }
}

/// Candidates are the blobs nothing references and nobody touched since the
/// cutoff, in digest order, paged by `after`; manifests' own bytes and the
/// blobs they name are never candidates; `reclaimable` counts the
/// unreferenced whatever their age.
pub async fn blob_candidates_are_unreferenced_and_untouched(meta: &dyn MetaStore) {
    let r = repo("kit-gc-candidates");
    let before = meta.reclaimable().await.unwrap();
    let loose: Vec<Digest> = (0..4)
        .map(|i| Digest::sha256_of(format!("kit-gc loose {i}").as_bytes()))
        .collect();
    for d in &loose {
        publish_link(meta, &r, d, 10).await;
    }
    let used = Digest::sha256_of(b"kit-gc used");
    publish_link(meta, &r, &used, 7).await;
    let m = Digest::sha256_of(b"kit-gc m");
    meta.put_manifest(
        &r,
        &manifest(&m, vec![(used.clone(), 7)], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let all: Vec<&Digest> = loose.iter().chain([&used, &m]).collect();
    let mut expected = loose.clone();
    expected.sort();
    assert_eq!(
        candidates(meta, later(), &all).await,
        expected,
        "sorted, paged, unreferenced only"
    );
    assert!(
        candidates(meta, earlier(), &all).await.is_empty(),
        "all touched after the cutoff"
    );
    let after = meta.reclaimable().await.unwrap();
    assert_eq!(after.blobs - before.blobs, 4);
    assert_eq!(after.bytes - before.bytes, 40);
    assert_eq!(
        meta.tombstone_blob(&used, later()).await.unwrap(),
        None,
        "referenced"
    );
    assert_eq!(
        meta.tombstone_blob(&m, later()).await.unwrap(),
        None,
        "a manifest"
    );
}

/// A tombstone re-checks its candidate: a blob touched, claimed or named
/// since it was listed is kept. Once tombstoned, its links are gone, claims
/// and mounts are refused until the tombstone is dropped.
pub async fn tombstones_recheck_and_block_claims_and_mounts(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-gc-tomb/a"), repo("kit-gc-tomb/b"));
    let x = Digest::sha256_of(b"kit-gc tomb x");
    publish_link(meta, &a, &x, 5).await;
    assert_eq!(
        meta.tombstone_blob(&x, earlier()).await.unwrap(),
        None,
        "touched since"
    );

    let claim = meta.claim_blob(&x, LEASE).await.unwrap().unwrap();
    assert_eq!(
        meta.tombstone_blob(&x, later()).await.unwrap(),
        None,
        "claimed"
    );
    meta.release_claim(&claim).await.unwrap();

    let m = Digest::sha256_of(b"kit-gc tomb m");
    meta.put_manifest(
        &a,
        &manifest(&m, vec![(x.clone(), 5)], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        meta.tombstone_blob(&x, later()).await.unwrap(),
        None,
        "named"
    );
    assert!(meta.delete_manifest(&a, &m).await.unwrap());

    assert_eq!(meta.tombstone_blob(&x, later()).await.unwrap(), Some(5));
    assert_eq!(
        meta.blob_size(&a, &x).await.unwrap(),
        None,
        "links go with the tombstone"
    );
    assert!(meta.tombstones().await.unwrap().contains(&x));
    assert!(meta.known_blob(&x).await.unwrap());
    assert_eq!(
        meta.claim_blob(&x, LEASE).await.unwrap(),
        None,
        "no publish while deleting"
    );
    assert!(
        !meta.link_blob(&b, &x, 5, None).await.unwrap(),
        "no mount while deleting"
    );
    assert_eq!(
        meta.tombstone_blob(&x, later()).await.unwrap(),
        None,
        "once"
    );

    meta.drop_tombstone(&x).await.unwrap();
    assert!(!meta.known_blob(&x).await.unwrap());
    assert!(!meta.tombstones().await.unwrap().contains(&x));
    assert!(
        !meta.link_blob(&b, &x, 5, None).await.unwrap(),
        "a mount needs the bytes"
    );
    publish_link(meta, &b, &x, 5).await;
    assert_eq!(meta.blob_size(&b, &x).await.unwrap(), Some(5));
}

/// A claim whose lease ended holds nothing, and is swept.
pub async fn expired_claims_hold_nothing(meta: &dyn MetaStore) {
    let r = repo("kit-gc-expired");
    let x = Digest::sha256_of(b"kit-gc expired x");
    publish_link(meta, &r, &x, 3).await;
    let _lapsed = meta.claim_blob(&x, Duration::ZERO).await.unwrap().unwrap();
    assert!(meta.expire_claims(unix_now() + 1).await.unwrap() >= 1);
    assert_eq!(meta.tombstone_blob(&x, later()).await.unwrap(), Some(3));
    meta.drop_tombstone(&x).await.unwrap();
}

/// A touch moves a blob's and a link's last use forward, never back.
pub async fn touches_restart_the_grace(meta: &dyn MetaStore) {
    let (r, other) = (repo("kit-gc-touch"), repo("kit-gc-touch/other"));
    let x = Digest::sha256_of(b"kit-gc touch x");
    publish_link(meta, &r, &x, 3).await;
    publish_link(meta, &other, &x, 3).await;
    let future = unix_now() + 1000;
    meta.touch_blobs(vec![(r.clone(), x.clone())], future)
        .await
        .unwrap();
    meta.touch_blobs(vec![(r.clone(), x.clone())], earlier())
        .await
        .unwrap();
    assert_eq!(meta.tombstone_blob(&x, future).await.unwrap(), None);
    let dangling = meta.gc_dangling_links(future, 10_000).await.unwrap();
    assert!(
        !dangling.iter().any(|(rr, d, _)| *rr == r && *d == x),
        "its link was touched"
    );
    assert!(
        dangling.iter().any(|(rr, d, _)| *rr == other && *d == x),
        "the other was not"
    );
    assert_eq!(meta.tombstone_blob(&x, future + 1).await.unwrap(), Some(3));
    meta.drop_tombstone(&x).await.unwrap();
}

/// Links no manifest of their repository names are dangling once
/// untouched; unlinking re-checks both conditions.
pub async fn dangling_links_are_unlinked_only_if_still_dangling(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-gc-dangling/a"), repo("kit-gc-dangling/b"));
    let x = Digest::sha256_of(b"kit-gc dangling x");
    publish_link(meta, &a, &x, 4).await;
    publish_link(meta, &b, &x, 4).await;
    let m = Digest::sha256_of(b"kit-gc dangling m");
    meta.put_manifest(
        &a,
        &manifest(&m, vec![(x.clone(), 4)], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let found = meta.gc_dangling_links(later(), 10_000).await.unwrap();
    assert!(found.contains(&(b.clone(), x.clone(), 4)));
    assert!(!found.iter().any(|(r, d, _)| *r == a && *d == x));
    assert!(meta
        .gc_dangling_links(earlier(), 10_000)
        .await
        .unwrap()
        .iter()
        .all(|(_, d, _)| *d != x));
    assert!(
        !meta.unlink_dangling(&a, &x, later()).await.unwrap(),
        "named in a"
    );
    assert!(
        !meta.unlink_dangling(&b, &x, earlier()).await.unwrap(),
        "touched since"
    );
    assert!(meta.unlink_dangling(&b, &x, later()).await.unwrap());
    assert_eq!(meta.blob_size(&b, &x).await.unwrap(), None);
    assert_eq!(meta.blob_size(&a, &x).await.unwrap(), Some(4));
}

/// Untagged manifests go once old enough, unless an index of their
/// repository holds them or their subject is there; deleting re-checks.
pub async fn untagged_manifests_spare_children_and_referrers(meta: &dyn MetaStore) {
    let r = repo("kit-gc-untagged");
    let put = |m: crate::storage::ManifestRecord, t: Option<&'static str>| {
        let r = r.clone();
        async move {
            let t = t.map(tag);
            meta.put_manifest(&r, &m, t.as_ref(), &PutOptions::default())
                .await
                .unwrap();
        }
    };
    let d = |s: &str| Digest::sha256_of(format!("kit-gc untagged {s}").as_bytes());
    let (tagged, loose, child, idx, referrer, stray) = (
        d("tagged"),
        d("loose"),
        d("child"),
        d("index"),
        d("referrer"),
        d("stray"),
    );
    put(manifest(&tagged, vec![], None), Some("v1")).await;
    put(manifest(&loose, vec![], None), None).await;
    put(manifest(&child, vec![], None), None).await;
    put(index(&idx, vec![(child.clone(), 100)]), None).await;
    put(manifest(&referrer, vec![], Some(tagged.clone())), None).await;
    put(manifest(&stray, vec![], Some(d("absent"))), None).await;

    let listed = |rows: Vec<(berth_oci::RepositoryName, Digest)>| -> Vec<Digest> {
        let mut mine: Vec<Digest> = rows
            .into_iter()
            .filter(|(rr, _)| *rr == r)
            .map(|(_, d)| d)
            .collect();
        mine.sort();
        mine
    };
    let mut expected = vec![loose.clone(), idx.clone(), stray.clone()];
    expected.sort();
    let found = listed(meta.gc_untagged_manifests(later(), 10_000).await.unwrap());
    assert_eq!(found, expected);
    assert!(listed(meta.gc_untagged_manifests(earlier(), 10_000).await.unwrap()).is_empty());

    assert!(
        !meta
            .delete_untagged_manifest(&r, &child, later())
            .await
            .unwrap(),
        "held by the index"
    );
    assert!(
        !meta
            .delete_untagged_manifest(&r, &referrer, later())
            .await
            .unwrap(),
        "its subject is here"
    );
    assert!(
        !meta
            .delete_untagged_manifest(&r, &tagged, later())
            .await
            .unwrap(),
        "tagged"
    );
    assert!(
        !meta
            .delete_untagged_manifest(&r, &loose, earlier())
            .await
            .unwrap(),
        "too young"
    );
    // Tagged between the listing and the delete: kept.
    put(manifest(&loose, vec![], None), Some("late")).await;
    assert!(!meta
        .delete_untagged_manifest(&r, &loose, later())
        .await
        .unwrap());
    assert!(meta
        .delete_untagged_manifest(&r, &idx, later())
        .await
        .unwrap());
    assert!(meta
        .delete_untagged_manifest(&r, &stray, later())
        .await
        .unwrap());
    assert_eq!(
        listed(meta.gc_untagged_manifests(later(), 10_000).await.unwrap()),
        vec![child.clone()],
        "the index's child is orphaned now"
    );
    assert!(meta.manifest_by_digest(&r, &idx).await.unwrap().is_none());
    assert!(meta.manifest_by_digest(&r, &loose).await.unwrap().is_some());
}

/// Deleting a manifest touches what it named and its own bytes: they get a
/// full grace from the delete, not from their push.
pub async fn deleting_a_manifest_touches_what_it_named(meta: &dyn MetaStore) {
    let r = repo("kit-gc-delete-touch");
    let x = Digest::sha256_of(b"kit-gc delete-touch x");
    let m = Digest::sha256_of(b"kit-gc delete-touch m");
    publish_link(meta, &r, &x, 6).await;
    meta.put_manifest(
        &r,
        &manifest(&m, vec![(x.clone(), 6)], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let pushed = unix_now();
    // The next second: what the delete touches is then newer than the push.
    while unix_now() == pushed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(meta.delete_manifest(&r, &m).await.unwrap());
    let cutoff = pushed + 1; // after the push, not after the delete
    assert!(
        candidates(meta, cutoff, &[&x, &m]).await.is_empty(),
        "touched by the delete"
    );
    assert_eq!(candidates(meta, later(), &[&x]).await, vec![x.clone()]);
    let links = meta.gc_dangling_links(cutoff, 10_000).await.unwrap();
    assert!(
        !links.iter().any(|(rr, d, _)| *rr == r && *d == x),
        "its link too"
    );
}

/// A stored file with no row is tombstoned as an orphan, unless a row
/// appeared or a publish claimed it meanwhile.
pub async fn orphans_are_tombstoned_unless_known_or_claimed(meta: &dyn MetaStore) {
    let o = Digest::sha256_of(b"kit-gc orphan");
    assert!(!meta.known_blob(&o).await.unwrap());
    let claim = meta.claim_blob(&o, LEASE).await.unwrap().unwrap();
    assert!(!meta.tombstone_orphan(&o).await.unwrap(), "being published");
    meta.release_claim(&claim).await.unwrap();
    assert!(meta.tombstone_orphan(&o).await.unwrap());
    assert!(meta.tombstones().await.unwrap().contains(&o));
    assert_eq!(meta.claim_blob(&o, LEASE).await.unwrap(), None);
    meta.drop_tombstone(&o).await.unwrap();
    assert!(!meta.known_blob(&o).await.unwrap());

    let kept = Digest::sha256_of(b"kit-gc orphan kept");
    publish_link(meta, &repo("kit-gc-orphan"), &kept, 2).await;
    assert!(!meta.tombstone_orphan(&kept).await.unwrap(), "it has a row");
}

/// `delete` removes a blob (absent: false) and `list` pages through the
/// stored blobs in digest order with their sizes.
pub async fn blobs_are_listed_in_order_and_deleted(store: &dyn BlobStore) {
    let mut mine = Vec::new();
    for i in 0..5 {
        let content = format!("kit-gc listed {i}").into_bytes();
        let digest = Digest::sha256_of(&content);
        store
            .put(&digest, Bytes::from(content.clone()))
            .await
            .unwrap();
        mine.push((digest, content.len() as u64));
    }
    mine.sort();
    let whole = store.list(None, usize::MAX).await.unwrap();
    let digests: Vec<&Digest> = whole.iter().map(|b| &b.digest).collect();
    assert!(digests.windows(2).all(|w| w[0] < w[1]), "sorted by digest");
    for (d, size) in &mine {
        let listed = whole.iter().find(|b| b.digest == *d).expect("listed");
        assert_eq!(listed.size, *size);
    }
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.digest.clone());
        paged.extend(page.into_iter().map(|b| b.digest));
    }
    assert_eq!(
        paged,
        whole.iter().map(|b| b.digest.clone()).collect::<Vec<_>>()
    );

    let (gone, _) = &mine[2];
    assert!(store.delete(gone).await.unwrap());
    assert!(!store.delete(gone).await.unwrap(), "already gone");
    assert!(store.read(gone, None).await.unwrap().is_none());
    assert!(!store
        .list(None, usize::MAX)
        .await
        .unwrap()
        .iter()
        .any(|b| b.digest == *gone));
    assert!(
        store.read(&mine[1].0, None).await.unwrap().is_some(),
        "the others stay"
    );
}
