//! The promises of [`MetaStore`].

use super::publish_link;
use crate::error::Error;
use crate::storage::{
    ManifestRecord, MetaStore, PutOptions, RepositoryDeleted, UploadLimits, UploadProgress,
    UploadSession,
};
use berth_oci::{Digest, RepositoryName, Tag};
use std::sync::Arc;

pub(super) fn repo(s: &str) -> RepositoryName {
    s.parse().expect("a valid repository name")
}

pub(super) fn tag(s: &str) -> Tag {
    s.parse().expect("a valid tag")
}

/// Limits no test reaches.
const ROOMY: UploadLimits = UploadLimits {
    total: usize::MAX,
    per_client: usize::MAX,
};

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image manifest record (100 bytes) naming `blobs`.
pub(super) fn manifest(
    digest: &Digest,
    blobs: Vec<(Digest, u64)>,
    subject: Option<Digest>,
) -> ManifestRecord {
    ManifestRecord {
        digest: digest.clone(),
        media_type: IMAGE.into(),
        size: 100,
        artifact_type: Some("application/x.test".into()),
        subject,
        annotations: None,
        blobs,
        manifests: vec![],
    }
}

/// An index record naming child `manifests`.
pub(super) fn index(digest: &Digest, manifests: Vec<(Digest, u64)>) -> ManifestRecord {
    ManifestRecord {
        media_type: INDEX.into(),
        artifact_type: None,
        manifests,
        ..manifest(digest, vec![], None)
    }
}

/// A repository may read only the blobs linked to it, with their size.
pub async fn blobs_are_linked_per_repository(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-links/a"), repo("kit-links/b"));
    let layer = Digest::sha256_of(b"kit-links layer");
    publish_link(meta, &a, &layer, 5).await;
    assert_eq!(meta.blob_size(&a, &layer).await.unwrap(), Some(5));
    assert_eq!(meta.blob_size(&b, &layer).await.unwrap(), None);
    assert!(meta.unlink_blob(&a, &layer).await.unwrap());
    assert!(!meta.unlink_blob(&a, &layer).await.unwrap());
    assert_eq!(meta.blob_size(&a, &layer).await.unwrap(), None);
}

/// A manifest naming an absent blob or a wrong size is refused and leaves
/// nothing behind, not even its tag.
pub async fn manifests_check_their_references_in_one_transaction(meta: &dyn MetaStore) {
    let a = repo("kit-refs");
    let layer = Digest::sha256_of(b"kit-refs layer");
    publish_link(meta, &a, &layer, 5).await;
    let m = Digest::sha256_of(b"kit-refs m");
    let missing = manifest(&m, vec![(Digest::sha256_of(b"absent"), 1)], None);
    let err = meta
        .put_manifest(&a, &missing, Some(&tag("v1")), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown(_)), "{err}");
    assert_eq!(
        meta.list_tags(&a, None, 10).await.unwrap(),
        None,
        "nothing half-written"
    );
    assert!(meta.manifest_by_digest(&a, &m).await.unwrap().is_none());
    let wrong_size = manifest(&m, vec![(layer.clone(), 6)], None);
    let err = meta
        .put_manifest(&a, &wrong_size, None, &PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestSizeMismatch { .. }), "{err}");
    meta.put_manifest(
        &a,
        &manifest(&m, vec![(layer, 5)], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let row = meta.manifest_by_tag(&a, &tag("v1")).await.unwrap().unwrap();
    assert_eq!(
        (row.digest, row.media_type.as_str(), row.size),
        (m, IMAGE, 100)
    );
}

/// Tags point at manifests, move when re-pushed and delete one at a time;
/// deleting a manifest deletes its tags.
pub async fn tags_move_and_delete_independently(meta: &dyn MetaStore) {
    let a = repo("kit-tags");
    let (m1, m2) = (
        Digest::sha256_of(b"kit-tags 1"),
        Digest::sha256_of(b"kit-tags 2"),
    );
    for (m, t) in [(&m1, "v1"), (&m1, "latest"), (&m2, "v2")] {
        meta.put_manifest(
            &a,
            &manifest(m, vec![], None),
            Some(&tag(t)),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    assert!(meta.delete_tag(&a, &tag("latest")).await.unwrap());
    assert!(!meta.delete_tag(&a, &tag("latest")).await.unwrap());
    assert!(meta
        .manifest_by_tag(&a, &tag("v1"))
        .await
        .unwrap()
        .is_some());
    meta.put_manifest(
        &a,
        &manifest(&m2, vec![], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let moved = meta.manifest_by_tag(&a, &tag("v1")).await.unwrap().unwrap();
    assert_eq!(moved.digest, m2);
    assert!(meta.delete_manifest(&a, &m2).await.unwrap());
    assert!(meta
        .manifest_by_tag(&a, &tag("v1"))
        .await
        .unwrap()
        .is_none());
    assert!(meta
        .manifest_by_tag(&a, &tag("v2"))
        .await
        .unwrap()
        .is_none());
    assert!(meta.manifest_by_digest(&a, &m1).await.unwrap().is_some());
    assert!(!meta.delete_manifest(&a, &m2).await.unwrap());
}

/// Tags and repositories list sorted, in pages after a key; a repository
/// without manifests has no tag list and is not in the catalog.
pub async fn listings_are_sorted_keyset_pages(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-list/a"), repo("kit-list/b"));
    let m = Digest::sha256_of(b"kit-list");
    for t in ["c", "a", "b"] {
        meta.put_manifest(
            &a,
            &manifest(&m, vec![], None),
            Some(&tag(t)),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        meta.list_tags(&a, None, 10).await.unwrap().unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(
        meta.list_tags(&a, None, 2).await.unwrap().unwrap(),
        ["a", "b"]
    );
    assert_eq!(
        meta.list_tags(&a, Some("b"), 10).await.unwrap().unwrap(),
        ["c"]
    );
    assert_eq!(meta.list_tags(&b, None, 10).await.unwrap(), None);
    meta.put_manifest(
        &b,
        &manifest(&m, vec![], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        meta.list_tags(&b, None, 10).await.unwrap().unwrap(),
        Vec::<String>::new()
    );
    let repos = meta
        .list_repositories(Some("kit-list"), 10_000)
        .await
        .unwrap();
    let ours: Vec<_> = repos
        .iter()
        .filter(|r| r.starts_with("kit-list/"))
        .collect();
    assert_eq!(ours, ["kit-list/a", "kit-list/b"]);
    let after = meta.list_repositories(Some("kit-list/a"), 1).await.unwrap();
    assert_eq!(after, ["kit-list/b"]);
    assert!(meta.delete_manifest(&b, &m).await.unwrap());
    let repos = meta
        .list_repositories(Some("kit-list/a"), 10_000)
        .await
        .unwrap();
    assert!(!repos.contains(&"kit-list/b".to_string()), "{repos:?}");
}

/// Referrers are found by subject (which need not exist), filtered by
/// type, in pages keyed by digest.
pub async fn referrers_are_found_by_subject(meta: &dyn MetaStore) {
    let a = repo("kit-referrers");
    let subject = Digest::sha256_of(b"kit-referrers subject, never pushed");
    let (sig, sbom) = (
        Digest::sha256_of(b"kit sig"),
        Digest::sha256_of(b"kit sbom"),
    );
    for m in [&sig, &sbom] {
        meta.put_manifest(
            &a,
            &manifest(m, vec![], Some(subject.clone())),
            None,
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let mut expected = vec![sig.clone(), sbom.clone()];
    expected.sort_by_key(|d| d.to_string());
    let found: Vec<_> = meta
        .referrers(&a, &subject, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.digest)
        .collect();
    assert_eq!(found, expected);
    let first = meta.referrers(&a, &subject, None, None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].digest, expected[0]);
    let after = expected[0].to_string();
    let rest = meta
        .referrers(&a, &subject, None, Some(&after), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].digest, expected[1], "pages are keyed by digest");
    assert_eq!(
        meta.referrers(&a, &subject, Some("application/x.test"), None, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(meta
        .referrers(&a, &subject, Some("other/type"), None, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(meta
        .referrers(&repo("kit-referrers/other"), &subject, None, None, 100)
        .await
        .unwrap()
        .is_empty());
}

/// An index is stored only if its child manifests are in the repository with
/// the declared size.
pub async fn index_children_must_be_present(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-index/a"), repo("kit-index/b"));
    let child = Digest::sha256_of(b"kit-index child");
    let top = Digest::sha256_of(b"kit-index top");
    let err = meta
        .put_manifest(
            &a,
            &index(&top, vec![(child.clone(), 100)]),
            None,
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown(_)), "{err}");
    meta.put_manifest(
        &b,
        &manifest(&child, vec![], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let err = meta
        .put_manifest(
            &a,
            &index(&top, vec![(child.clone(), 100)]),
            None,
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ManifestBlobUnknown(_)),
        "another repository's child: {err}"
    );
    meta.put_manifest(
        &a,
        &manifest(&child, vec![], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let err = meta
        .put_manifest(
            &a,
            &index(&top, vec![(child.clone(), 99)]),
            None,
            &PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestSizeMismatch { .. }), "{err}");
    meta.put_manifest(
        &a,
        &index(&top, vec![(child, 100)]),
        Some(&tag("multi")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let row = meta
        .manifest_by_tag(&a, &tag("multi"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.digest, row.media_type.as_str()), (top, INDEX));
}

/// Linking a linked blob, re-putting a stored manifest and deleting an
/// absent upload succeed and change nothing else.
pub async fn writes_are_idempotent(meta: &dyn MetaStore) {
    let a = repo("kit-idempotent");
    let layer = Digest::sha256_of(b"kit-idempotent layer");
    publish_link(meta, &a, &layer, 5).await;
    publish_link(meta, &a, &layer, 5).await;
    assert_eq!(meta.blob_size(&a, &layer).await.unwrap(), Some(5));
    let m = manifest(
        &Digest::sha256_of(b"kit-idempotent"),
        vec![(layer, 5)],
        None,
    );
    meta.put_manifest(&a, &m, Some(&tag("t")), &PutOptions::default())
        .await
        .unwrap();
    meta.put_manifest(&a, &m, Some(&tag("t")), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(meta.list_tags(&a, None, 10).await.unwrap().unwrap(), ["t"]);
    meta.delete_upload("kit-idempotent-absent").await.unwrap();
}

/// Sessions keep their offset and time, are listed once stale, and go.
pub async fn upload_sessions_are_kept_and_expire(meta: &dyn MetaStore) {
    let session = UploadSession {
        id: "kit-session".into(),
        repository: repo("kit-sessions"),
        offset: 0,
        updated_at: 100,
        client: Some([192, 0, 2, 1].into()),
        hash_state: Some(b"saved hash".to_vec()),
        store_state: b"store state".to_vec(),
    };
    meta.create_upload(&session, ROOMY).await.unwrap();
    assert_eq!(meta.upload("kit-session").await.unwrap().unwrap(), session);
    let moved = UploadProgress {
        offset: 42,
        hash_state: None,
        store_state: b"parts".to_vec(),
    };
    assert!(meta
        .advance_upload("kit-session", 0, &moved, 200)
        .await
        .unwrap());
    let read = meta.upload("kit-session").await.unwrap().unwrap();
    assert_eq!((read.offset, read.updated_at), (42, 200));
    assert_eq!(
        (read.hash_state, read.store_state),
        (None, b"parts".to_vec())
    );
    assert!(!meta.stale_uploads(150).await.unwrap().contains(&session.id));
    assert!(meta.stale_uploads(250).await.unwrap().contains(&session.id));
    meta.delete_upload("kit-session").await.unwrap();
    assert!(meta.upload("kit-session").await.unwrap().is_none());
}

/// Moving the offset of a session that does not exist (expired, cancelled)
/// is `BlobUploadUnknown`, and creates nothing.
pub async fn a_missing_upload_session_is_unknown(meta: &dyn MetaStore) {
    assert!(meta.upload("kit-no-session").await.unwrap().is_none());
    let to = UploadProgress {
        offset: 10,
        hash_state: None,
        store_state: Vec::new(),
    };
    let err = meta
        .advance_upload("kit-no-session", 0, &to, 100)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BlobUploadUnknown), "{err}");
    assert!(meta.upload("kit-no-session").await.unwrap().is_none());
}

/// Many tasks writing at once each see their own transaction: every write
/// lands, one that fails undoes only itself, and a tag moved by many
/// writers ends on one of their manifests.
pub async fn concurrent_writers_are_isolated(meta: Arc<dyn MetaStore>) {
    let shared = repo("kit-concurrent/shared");
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let meta = meta.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let own = repo(&format!("kit-concurrent/r{i}"));
                let layer = Digest::sha256_of(format!("kit-concurrent layer {i}").as_bytes());
                let m = Digest::sha256_of(format!("kit-concurrent m {i}").as_bytes());
                publish_link(&*meta, &own, &layer, 7).await;
                publish_link(&*meta, &shared, &layer, 7).await;
                let good = manifest(&m, vec![(layer.clone(), 7)], None);
                meta.put_manifest(&own, &good, Some(&tag("t")), &PutOptions::default())
                    .await
                    .unwrap();
                // Fails: a wrong size, while other writers commit around it.
                let bad = manifest(&m, vec![(layer, 8)], None);
                assert!(meta
                    .put_manifest(&own, &bad, Some(&tag("bad")), &PutOptions::default())
                    .await
                    .is_err());
                meta.put_manifest(&shared, &good, Some(&tag("moved")), &PutOptions::default())
                    .await
                    .unwrap();
                (own, m)
            })
        })
        .collect();
    let mut pushed = Vec::new();
    for task in tasks {
        let (own, m) = task.await.unwrap();
        let row = meta
            .manifest_by_tag(&own, &tag("t"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.digest, m);
        assert_eq!(
            meta.list_tags(&own, None, 10).await.unwrap().unwrap(),
            ["t"]
        );
        pushed.push(m);
    }
    let moved = meta
        .manifest_by_tag(&shared, &tag("moved"))
        .await
        .unwrap()
        .unwrap();
    assert!(pushed.contains(&moved.digest));
}

/// A blob a manifest names, or a manifest an index names, cannot be removed
/// from that repository until the manifest naming it is deleted; referrers
/// do not hold their subject, and other repositories are not affected.
pub async fn referenced_content_cannot_be_deleted(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-held/a"), repo("kit-held/b"));
    let layer = Digest::sha256_of(b"kit-held layer");
    let (image, top) = (
        Digest::sha256_of(b"kit-held image"),
        Digest::sha256_of(b"kit-held index"),
    );
    for r in [&a, &b] {
        publish_link(meta, r, &layer, 5).await;
    }
    meta.put_manifest(
        &a,
        &manifest(&image, vec![(layer.clone(), 5)], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &a,
        &index(&top, vec![(image.clone(), 100)]),
        Some(&tag("multi")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let referrer = Digest::sha256_of(b"kit-held referrer");
    meta.put_manifest(
        &a,
        &manifest(&referrer, vec![], Some(top.clone())),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();

    let err = meta.unlink_blob(&a, &layer).await.unwrap_err();
    assert!(
        matches!(&err, Error::StillReferenced { digest, by } if *digest == layer && *by == image),
        "{err}"
    );
    assert_eq!(
        meta.blob_size(&a, &layer).await.unwrap(),
        Some(5),
        "still linked"
    );
    let err = meta.delete_manifest(&a, &image).await.unwrap_err();
    assert!(
        matches!(&err, Error::StillReferenced { digest, by } if *digest == image && *by == top),
        "{err}"
    );
    assert!(
        meta.manifest_by_digest(&a, &image).await.unwrap().is_some(),
        "still there"
    );
    assert!(
        meta.unlink_blob(&b, &layer).await.unwrap(),
        "another repository's link goes"
    );

    // Top-down works: the index (its referrer does not hold it), the image, the blob.
    assert!(meta.delete_manifest(&a, &top).await.unwrap());
    assert!(meta.delete_manifest(&a, &image).await.unwrap());
    assert!(meta.unlink_blob(&a, &layer).await.unwrap());
}

/// Deleting a repository removes its tags, manifests (images, indexes,
/// referrers), links and its place in listings, in one call, and leaves
/// another repository sharing its layer untouched; the name can be pushed
/// to again afterwards.
pub async fn a_repository_is_deleted_whole_and_alone(meta: &dyn MetaStore) {
    let (gone, kept) = (repo("kit-drop/gone"), repo("kit-drop/kept"));
    let layer = Digest::sha256_of(b"kit-drop shared layer");
    let own = Digest::sha256_of(b"kit-drop own layer");
    let (image, top, referrer) = (
        Digest::sha256_of(b"kit-drop image"),
        Digest::sha256_of(b"kit-drop index"),
        Digest::sha256_of(b"kit-drop referrer"),
    );
    for r in [&gone, &kept] {
        publish_link(meta, r, &layer, 5).await;
    }
    publish_link(meta, &gone, &own, 3).await;
    let image_record = manifest(&image, vec![(layer.clone(), 5), (own.clone(), 3)], None);
    meta.put_manifest(
        &gone,
        &image_record,
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &gone,
        &image_record,
        Some(&tag("v2")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &gone,
        &index(&top, vec![(image.clone(), 100)]),
        Some(&tag("multi")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &gone,
        &manifest(&referrer, vec![], Some(top.clone())),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let kept_image = Digest::sha256_of(b"kit-drop kept image");
    meta.put_manifest(
        &kept,
        &manifest(&kept_image, vec![(layer.clone(), 5)], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();

    let deleted = meta.delete_repository(&gone).await.unwrap();
    assert_eq!(
        deleted,
        Some(RepositoryDeleted {
            tags: 3,
            manifests: 3
        })
    );
    assert_eq!(meta.list_tags(&gone, None, 10).await.unwrap(), None);
    for m in [&image, &top, &referrer] {
        assert_eq!(meta.manifest_by_digest(&gone, m).await.unwrap(), None);
    }
    assert_eq!(meta.manifest_by_tag(&gone, &tag("v1")).await.unwrap(), None);
    for blob in [&layer, &own] {
        assert_eq!(meta.blob_size(&gone, blob).await.unwrap(), None, "unlinked");
    }
    assert!(meta
        .referrers(&gone, &top, None, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(meta.repository_summary(&gone).await.unwrap(), None);
    let listed = meta.list_repositories(Some("kit-drop"), 100).await.unwrap();
    assert!(!listed.contains(&gone.to_string()), "{listed:?}");
    assert!(listed.contains(&kept.to_string()), "{listed:?}");

    assert_eq!(meta.blob_size(&kept, &layer).await.unwrap(), Some(5));
    assert_eq!(
        meta.manifest_by_tag(&kept, &tag("v1"))
            .await
            .unwrap()
            .map(|row| row.digest),
        Some(kept_image)
    );

    assert_eq!(meta.delete_repository(&gone).await.unwrap(), None, "once");
    assert_eq!(
        meta.delete_repository(&repo("kit-drop/never"))
            .await
            .unwrap(),
        None
    );
    publish_link(meta, &gone, &own, 3).await;
    meta.put_manifest(
        &gone,
        &manifest(&image, vec![(own.clone(), 3)], None),
        Some(&tag("again")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        meta.list_tags(&gone, None, 10).await.unwrap(),
        Some(vec!["again".to_string()]),
        "nothing of the old repository comes back"
    );
}

/// Deleting a repository restarts the grace period of every blob it held
/// (its layers and its manifests' own bytes), in the delete's transaction:
/// GC must not take them on a pass cut before the delete.
pub async fn deleting_a_repository_touches_what_it_held(meta: &dyn MetaStore) {
    let r = repo("kit-drop-touch");
    let (layer, image) = (
        Digest::sha256_of(b"kit-drop-touch layer"),
        Digest::sha256_of(b"kit-drop-touch image"),
    );
    publish_link(meta, &r, &layer, 4).await;
    meta.put_manifest(
        &r,
        &manifest(&image, vec![(layer.clone(), 4)], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let pushed = super::unix_now();
    // The next second: what the delete touches is then newer than the push.
    while super::unix_now() == pushed {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    meta.delete_repository(&r).await.unwrap().unwrap();
    let (layer_ref, image_ref) = (&layer, &image);
    let mine = |cutoff: i64| async move {
        let mut found = Vec::new();
        let mut after: Option<Digest> = None;
        loop {
            let page = meta
                .gc_blob_candidates(cutoff, after.as_ref(), 1000)
                .await
                .unwrap();
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            found.extend(
                page.into_iter()
                    .map(|(d, _)| d)
                    .filter(|d| d == layer_ref || d == image_ref),
            );
        }
        found.sort();
        found
    };
    assert!(
        mine(pushed + 1).await.is_empty(),
        "a pass cut after the push but before the delete takes nothing"
    );
    let mut both = vec![layer.clone(), image.clone()];
    both.sort();
    assert_eq!(mine(super::unix_now() + 100).await, both, "then both go");
}

/// A manifest put racing an unlink of the blob it names ends one way or the
/// other, never with a stored manifest whose blob is gone.
pub async fn put_manifest_racing_an_unlink_never_dangles(meta: Arc<dyn MetaStore>) {
    let a = repo("kit-race");
    let rounds: Vec<_> = (0..32)
        .map(|i| {
            let meta = meta.clone();
            let a = a.clone();
            tokio::spawn(async move {
                let layer = Digest::sha256_of(format!("kit-race layer {i}").as_bytes());
                let m = Digest::sha256_of(format!("kit-race m {i}").as_bytes());
                publish_link(&*meta, &a, &layer, 3).await;
                let record = manifest(&m, vec![(layer.clone(), 3)], None);
                let options = PutOptions::default();
                let (put, unlink) = tokio::join!(
                    meta.put_manifest(&a, &record, None, &options),
                    meta.unlink_blob(&a, &layer)
                );
                (layer, m, put, unlink)
            })
        })
        .collect();
    for round in rounds {
        let (layer, m, put, unlink) = round.await.unwrap();
        let stored = meta.manifest_by_digest(&a, &m).await.unwrap().is_some();
        let linked = meta.blob_size(&a, &layer).await.unwrap().is_some();
        match (&put, &unlink) {
            (Ok(()), Err(Error::StillReferenced { .. })) => assert!(stored && linked),
            (Err(Error::ManifestBlobUnknown(_)), Ok(true)) => assert!(!stored && !linked),
            other => panic!("neither order: {other:?}"),
        }
    }
}

/// Sessions are capped in total and per client, even when many are opened
/// at once; sessions without a client count only towards the total.
pub async fn upload_sessions_are_capped(meta: Arc<dyn MetaStore>) {
    let limits = UploadLimits {
        total: 12,
        per_client: 3,
    };
    let session = |i: usize, client: Option<std::net::IpAddr>| UploadSession {
        id: format!("kit-capped-{i}"),
        repository: repo("kit-capped"),
        offset: 0,
        updated_at: 100,
        client,
        hash_state: None,
        store_state: Vec::new(),
    };
    let one: std::net::IpAddr = [192, 0, 2, 7].into();
    let opened: Vec<_> = (0..8)
        .map(|i| {
            let (meta, s) = (meta.clone(), session(i, Some(one)));
            tokio::spawn(async move { meta.create_upload(&s, limits).await })
        })
        .collect();
    let mut accepted = 0;
    for open in opened {
        match open.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(Error::TooManyUploads {
                per_client: true,
                limit: 3,
            }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, 3, "the per-client cap holds under concurrency");
    for i in 8..17 {
        meta.create_upload(&session(i, None), limits).await.unwrap();
    }
    let err = meta
        .create_upload(&session(17, Some([192, 0, 2, 8].into())), limits)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooManyUploads {
                per_client: false,
                limit: 12
            }
        ),
        "{err}"
    );
    for i in 0..17 {
        meta.delete_upload(&format!("kit-capped-{i}"))
            .await
            .unwrap();
    }
}

/// A working store passes its check; its totals count each repository with
/// manifests, each manifest per repository, each blob digest once whatever
/// number of repositories link it, and open upload sessions.
pub async fn stats_count_what_is_stored(meta: &dyn MetaStore) {
    meta.check()
        .await
        .expect("a working store passes its check");
    let before = meta.stats().await.unwrap();
    let (a, b) = (repo("kit-stats/a"), repo("kit-stats/b"));
    let layer = Digest::sha256_of(b"kit-stats layer");
    let only_linked = Digest::sha256_of(b"kit-stats linked, no manifest");
    for r in [&a, &b] {
        publish_link(meta, r, &layer, 7).await;
        let m = Digest::sha256_of(format!("kit-stats manifest {r}").as_bytes());
        meta.put_manifest(
            r,
            &manifest(&m, vec![(layer.clone(), 7)], None),
            Some(&tag("v1")),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    // A repository with blobs but no manifest is not in the catalog.
    publish_link(meta, &repo("kit-stats/c"), &only_linked, 3).await;
    let session = UploadSession {
        id: "kit-stats-upload".into(),
        repository: a.clone(),
        offset: 0,
        updated_at: 0,
        client: None,
        hash_state: None,
        store_state: Vec::new(),
    };
    meta.create_upload(&session, ROOMY).await.unwrap();
    let after = meta.stats().await.unwrap();
    assert_eq!(after.repositories, before.repositories + 2);
    assert_eq!(after.manifests, before.manifests + 2);
    assert_eq!(
        after.blobs,
        before.blobs + 2,
        "one layer in two repos is one blob"
    );
    assert_eq!(after.blob_bytes, before.blob_bytes + 7 + 3);
    assert_eq!(after.uploads, before.uploads + 1);
    meta.delete_upload(&session.id).await.unwrap();
    assert_eq!(meta.stats().await.unwrap().uploads, before.uploads);
}
