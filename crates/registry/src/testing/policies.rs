//! The promises of [`MetaStore`] that policies rely on: last-pull times,
//! the conditional tag delete retention writes with, quota usage.

use super::meta_store::{manifest, repo, tag};
use super::{publish_link, unix_now};
use crate::storage::{MetaStore, PullRecord, PulledBy, PutOptions};
use berth_oci::Digest;

fn pull_of_tag(r: &str, t: &str, at: i64) -> PullRecord {
    PullRecord {
        repository: repo(r),
        by: PulledBy::Tag(tag(t)),
        at,
    }
}

/// Pull times land on the tag (by tag) or on its manifest (by digest); a
/// tag's last pull is the later of the two; times never move back; pulls
/// of things that are gone are ignored.
pub async fn pull_times_move_forward_by_tag_and_by_digest(meta: &dyn MetaStore) {
    let r = "kit-pulls";
    let a = repo(r);
    let (m1, m2) = (
        Digest::sha256_of(b"kit-pulls 1"),
        Digest::sha256_of(b"kit-pulls 2"),
    );
    for (m, t) in [(&m1, "v1"), (&m1, "also-v1"), (&m2, "v2")] {
        meta.put_manifest(
            &a,
            &manifest(m, vec![], None),
            Some(&tag(t)),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let pulled = |states: &[crate::policy::TagState], t: &str| {
        states.iter().find(|s| s.tag == t).unwrap().pulled_at
    };
    let states = meta.tag_states(&a).await.unwrap();
    let names: Vec<&str> = states.iter().map(|s| s.tag.as_str()).collect();
    assert_eq!(names, ["also-v1", "v1", "v2"], "sorted by name");
    assert!(states.iter().all(|s| s.pulled_at.is_none()));
    let now = unix_now();
    assert!(states.iter().all(|s| (now - s.pushed_at).abs() < 60));
    assert_eq!(states[1].digest, m1);

    meta.record_pulls(vec![
        pull_of_tag(r, "v1", 1_000),
        PullRecord {
            repository: a.clone(),
            by: PulledBy::Digest(m2.clone()),
            at: 500,
        },
        pull_of_tag(r, "never-pushed", 9_999),
        pull_of_tag("kit-pulls/absent", "v1", 9_999),
    ])
    .await
    .unwrap();
    let states = meta.tag_states(&a).await.unwrap();
    assert_eq!(pulled(&states, "v1"), Some(1_000));
    assert_eq!(
        pulled(&states, "also-v1"),
        None,
        "a tag pull is the tag's own"
    );
    assert_eq!(
        pulled(&states, "v2"),
        Some(500),
        "a digest pull counts for its tags"
    );

    meta.record_pulls(vec![
        pull_of_tag(r, "v1", 10),
        PullRecord {
            repository: a.clone(),
            by: PulledBy::Digest(m1.clone()),
            at: 2_000,
        },
    ])
    .await
    .unwrap();
    let states = meta.tag_states(&a).await.unwrap();
    assert_eq!(
        pulled(&states, "v1"),
        Some(2_000),
        "the later of tag and digest"
    );
    assert_eq!(pulled(&states, "also-v1"), Some(2_000));
    meta.record_pulls(vec![pull_of_tag(r, "v2", 100)])
        .await
        .unwrap();
    assert_eq!(pulled(&meta.tag_states(&a).await.unwrap(), "v2"), Some(500));
    assert!(meta
        .tag_states(&repo("kit-pulls/absent"))
        .await
        .unwrap()
        .is_empty());
    meta.record_pulls(vec![]).await.unwrap();
}

/// `delete_tag_if` deletes only the tag as it was read: moved to another
/// manifest or pushed again at another time, it stays.
pub async fn a_tag_is_deleted_only_if_unchanged_since_read(meta: &dyn MetaStore) {
    let a = repo("kit-delete-if");
    let (m1, m2) = (
        Digest::sha256_of(b"kit-delete-if 1"),
        Digest::sha256_of(b"kit-delete-if 2"),
    );
    for (m, t) in [(&m1, "v1"), (&m1, "v2")] {
        meta.put_manifest(
            &a,
            &manifest(m, vec![], None),
            Some(&tag(t)),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let states = meta.tag_states(&a).await.unwrap();
    let v1 = states.iter().find(|s| s.tag == "v1").unwrap().clone();
    let v2 = states.iter().find(|s| s.tag == "v2").unwrap().clone();
    // Moved since it was read.
    meta.put_manifest(
        &a,
        &manifest(&m2, vec![], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert!(!meta
        .delete_tag_if(&a, &tag("v1"), &v1.digest, v1.pushed_at)
        .await
        .unwrap());
    assert!(meta
        .manifest_by_tag(&a, &tag("v1"))
        .await
        .unwrap()
        .is_some());
    // Pushed again (same manifest) at another time.
    assert!(!meta
        .delete_tag_if(&a, &tag("v2"), &v2.digest, v2.pushed_at - 1)
        .await
        .unwrap());
    // As read: deleted, once.
    assert!(meta
        .delete_tag_if(&a, &tag("v2"), &v2.digest, v2.pushed_at)
        .await
        .unwrap());
    assert!(!meta
        .delete_tag_if(&a, &tag("v2"), &v2.digest, v2.pushed_at)
        .await
        .unwrap());
    assert!(meta
        .manifest_by_tag(&a, &tag("v2"))
        .await
        .unwrap()
        .is_none());
    assert!(
        meta.manifest_by_digest(&a, &m1).await.unwrap().is_some(),
        "the manifest stays: only the tag goes"
    );
}

/// Usage is the repository's manifests plus each blob they name once,
/// however many manifests share it; linked blobs no manifest names and
/// other repositories do not count.
pub async fn repository_usage_counts_shared_blobs_once(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-usage/a"), repo("kit-usage/b"));
    let layer = Digest::sha256_of(b"kit-usage layer");
    let (c1, c2) = (
        Digest::sha256_of(b"kit-usage config 1"),
        Digest::sha256_of(b"kit-usage config 2"),
    );
    let stray = Digest::sha256_of(b"kit-usage stray upload");
    for (d, size) in [(&layer, 1_000), (&c1, 10), (&c2, 10), (&stray, 5_000)] {
        publish_link(meta, &a, d, size).await;
    }
    publish_link(meta, &b, &layer, 1_000).await;
    let (m1, m2) = (
        Digest::sha256_of(b"kit-usage m1"),
        Digest::sha256_of(b"kit-usage m2"),
    );
    let image = |m: &Digest, config: &Digest| {
        manifest(m, vec![(layer.clone(), 1_000), (config.clone(), 10)], None)
    };
    meta.put_manifest(
        &a,
        &image(&m1, &c1),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &a,
        &image(&m2, &c2),
        Some(&tag("v2")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &a,
        &image(&m2, &c2),
        Some(&tag("latest")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let usage = meta.repository_usage(&a).await.unwrap();
    // Two manifests of 100 bytes, the shared layer once, two configs.
    assert_eq!(usage.stored_bytes, 200 + 1_000 + 20);
    assert_eq!(usage.tags, 3);
    let none = meta.repository_usage(&b).await.unwrap();
    assert_eq!((none.stored_bytes, none.tags), (0, 0));
    let absent = meta
        .repository_usage(&repo("kit-usage/absent"))
        .await
        .unwrap();
    assert_eq!((absent.stored_bytes, absent.tags), (0, 0));
}
