//! The promises of [`MetaStore`] that policies rely on: last-pull times,
//! the conditional tag delete retention writes with, quota usage.

use super::meta_store::{manifest, repo, tag};
use super::{publish_link, unix_now};
use crate::error::{Error, QuotaResource};
use crate::storage::{MetaStore, PullRecord, PulledBy, PutOptions, Quota};
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

fn immutable() -> PutOptions {
    PutOptions {
        immutable_tag: true,
        ..Default::default()
    }
}

fn under(quota: Quota) -> PutOptions {
    PutOptions {
        quota: Some(quota),
        ..Default::default()
    }
}

/// An immutable tag accepts its own manifest again but refuses another,
/// naming the current one; the refused manifest is not recorded at all.
pub async fn an_immutable_tag_refuses_a_different_manifest(meta: &dyn MetaStore) {
    let a = repo("kit-immutable");
    let (m1, m2) = (
        Digest::sha256_of(b"kit-immutable 1"),
        Digest::sha256_of(b"kit-immutable 2"),
    );
    let v1 = tag("v1");
    meta.put_manifest(&a, &manifest(&m1, vec![], None), Some(&v1), &immutable())
        .await
        .unwrap();
    meta.put_manifest(&a, &manifest(&m1, vec![], None), Some(&v1), &immutable())
        .await
        .expect("the same digest again is harmless");
    let err = meta
        .put_manifest(&a, &manifest(&m2, vec![], None), Some(&v1), &immutable())
        .await
        .unwrap_err();
    match err {
        Error::TagImmutable {
            repository,
            tag,
            current,
        } => assert_eq!(
            (repository.as_str(), tag.as_str(), current),
            ("kit-immutable", "v1", m1.clone())
        ),
        other => panic!("expected TagImmutable, got {other}"),
    }
    assert_eq!(
        meta.manifest_by_tag(&a, &v1).await.unwrap().unwrap().digest,
        m1
    );
    assert!(
        meta.manifest_by_digest(&a, &m2).await.unwrap().is_none(),
        "a refused PUT records nothing"
    );
    // A new tag, or the manifest by digest, is fine; so is moving a tag
    // when the option is off.
    meta.put_manifest(
        &a,
        &manifest(&m2, vec![], None),
        Some(&tag("v2")),
        &immutable(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &a,
        &manifest(&m2, vec![], None),
        Some(&v1),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        meta.manifest_by_tag(&a, &v1).await.unwrap().unwrap().digest,
        m2
    );
}

/// A byte quota counts a layer shared by two manifests once; the PUT that
/// goes over is refused whole; re-pushing what is there is never refused.
pub async fn a_byte_quota_counts_shared_layers_once(meta: &dyn MetaStore) {
    let a = repo("kit-quota-bytes");
    let layer = Digest::sha256_of(b"kit-quota-bytes layer");
    let configs: Vec<Digest> = (0..3)
        .map(|i| Digest::sha256_of(format!("kit-quota-bytes config {i}").as_bytes()))
        .collect();
    publish_link(meta, &a, &layer, 1_000).await;
    for c in &configs {
        publish_link(meta, &a, c, 10).await;
    }
    let ms: Vec<Digest> = (0..3)
        .map(|i| Digest::sha256_of(format!("kit-quota-bytes m{i}").as_bytes()))
        .collect();
    let image = |i: usize| {
        manifest(
            &ms[i],
            vec![(layer.clone(), 1_000), (configs[i].clone(), 10)],
            None,
        )
    };
    let quota = under(Quota {
        max_bytes: Some(1_250),
        max_tags: None,
    });
    // 100 + 1000 + 10, then + 100 + 10: the layer once.
    meta.put_manifest(&a, &image(0), Some(&tag("v0")), &quota)
        .await
        .unwrap();
    meta.put_manifest(&a, &image(1), Some(&tag("v1")), &quota)
        .await
        .expect("a shared layer is counted once per repository");
    let err = meta
        .put_manifest(&a, &image(2), Some(&tag("v2")), &quota)
        .await
        .unwrap_err();
    match err {
        Error::QuotaExceeded {
            repository,
            resource,
            used,
            limit,
        } => {
            assert_eq!(repository, "kit-quota-bytes");
            assert_eq!(resource, QuotaResource::Bytes);
            assert_eq!((used, limit), (1_330, 1_250));
        }
        other => panic!("expected QuotaExceeded, got {other}"),
    }
    assert!(meta.manifest_by_digest(&a, &ms[2]).await.unwrap().is_none());
    assert!(meta
        .manifest_by_tag(&a, &tag("v2"))
        .await
        .unwrap()
        .is_none());
    let usage = meta.repository_usage(&a).await.unwrap();
    assert_eq!(
        (usage.stored_bytes, usage.tags),
        (1_220, 2),
        "nothing of it stays"
    );
    // Under a quota lowered since, what is there can be pushed again and tagged.
    let lowered = under(Quota {
        max_bytes: Some(500),
        max_tags: None,
    });
    meta.put_manifest(&a, &image(1), Some(&tag("latest")), &lowered)
        .await
        .unwrap();
}

/// A tag quota refuses a new tag beyond it, but moving or re-pushing an
/// existing tag is fine; the refused PUT leaves neither tag nor manifest.
pub async fn a_tag_quota_refuses_only_new_tags_beyond_it(meta: &dyn MetaStore) {
    let a = repo("kit-quota-tags");
    let ms: Vec<Digest> = (0..3)
        .map(|i| Digest::sha256_of(format!("kit-quota-tags m{i}").as_bytes()))
        .collect();
    let quota = under(Quota {
        max_bytes: None,
        max_tags: Some(2),
    });
    for (i, t) in ["v0", "v1"].iter().enumerate() {
        meta.put_manifest(&a, &manifest(&ms[i], vec![], None), Some(&tag(t)), &quota)
            .await
            .unwrap();
    }
    let err = meta
        .put_manifest(
            &a,
            &manifest(&ms[2], vec![], None),
            Some(&tag("v2")),
            &quota,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                resource: QuotaResource::Tags,
                used: 3,
                limit: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(meta
        .manifest_by_tag(&a, &tag("v2"))
        .await
        .unwrap()
        .is_none());
    assert!(meta.manifest_by_digest(&a, &ms[2]).await.unwrap().is_none());
    // Moving v1 onto the new manifest adds no tag.
    meta.put_manifest(
        &a,
        &manifest(&ms[2], vec![], None),
        Some(&tag("v1")),
        &quota,
    )
    .await
    .unwrap();
    meta.put_manifest(
        &a,
        &manifest(&ms[0], vec![], None),
        Some(&tag("v0")),
        &quota,
    )
    .await
    .unwrap();
    // Untagged pushes do not count against a tag quota.
    let extra = Digest::sha256_of(b"kit-quota-tags untagged");
    meta.put_manifest(&a, &manifest(&extra, vec![], None), None, &quota)
        .await
        .unwrap();
    assert_eq!(meta.repository_usage(&a).await.unwrap().tags, 2);
}
