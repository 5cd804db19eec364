//! The promises of the browse queries of [`MetaStore`].

use super::meta_store::{index, manifest, repo, tag};
use super::publish_link;
use crate::storage::{MetaStore, PutOptions, TagCursor};
use berth_oci::Digest;
use std::time::Duration;

/// Repository summaries: only repositories with manifests, by name in
/// keyset pages, filtered by substring, each with its tag and manifest
/// counts, the size of its distinct blobs and its last push.
pub async fn repository_summaries_count_size_and_filter(meta: &dyn MetaStore) {
    let (alpha, beta, bare) = (
        repo("kit-browse/alpha"),
        repo("kit-browse/beta"),
        repo("kit-browse/bare"),
    );
    let (shared, own) = (
        Digest::sha256_of(b"kit-browse shared"),
        Digest::sha256_of(b"kit-browse own"),
    );
    publish_link(meta, &alpha, &shared, 10).await;
    publish_link(meta, &alpha, &own, 5).await;
    publish_link(meta, &beta, &shared, 10).await;
    publish_link(meta, &bare, &own, 5).await;
    let (m1, m2) = (
        Digest::sha256_of(b"kit-browse m1"),
        Digest::sha256_of(b"kit-browse m2"),
    );
    // Two manifests share a blob: the repository's size counts it once.
    meta.put_manifest(
        &alpha,
        &manifest(&m1, vec![(shared.clone(), 10)], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &alpha,
        &manifest(&m2, vec![(shared.clone(), 10), (own.clone(), 5)], None),
        Some(&tag("v2")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &alpha,
        &manifest(&m2, vec![], None),
        Some(&tag("latest")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &beta,
        &manifest(&m1, vec![(shared, 10)], None),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let ours = meta
        .repository_summaries(Some("kit-browse/"), None, 100)
        .await
        .unwrap();
    let names: Vec<_> = ours.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["kit-browse/alpha", "kit-browse/beta"],
        "no bare repository"
    );
    let a = &ours[0];
    assert_eq!((a.tag_count, a.manifest_count, a.size_bytes), (3, 2, 15));
    let b = &ours[1];
    assert_eq!((b.tag_count, b.manifest_count, b.size_bytes), (0, 1, 10));
    let now = super::unix_now();
    for r in &ours {
        let pushed = r.last_push.expect("a last push");
        assert!((now - 60..=now + 1).contains(&pushed), "{pushed} vs {now}");
    }
    assert_eq!(
        meta.repository_summary(&alpha).await.unwrap().as_ref(),
        Some(a),
        "one repository's summary is its row of the listing"
    );
    assert_eq!(meta.repository_summary(&bare).await.unwrap(), None);
    assert_eq!(
        meta.repository_summary(&repo("kit-browse/none"))
            .await
            .unwrap(),
        None
    );
    let page = meta
        .repository_summaries(Some("kit-browse/"), Some("kit-browse/alpha"), 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].name, "kit-browse/beta", "pages are keyed by name");
    let first = meta
        .repository_summaries(Some("kit-browse/"), None, 1)
        .await
        .unwrap();
    assert_eq!(first[0].name, "kit-browse/alpha");
    let filtered = meta
        .repository_summaries(Some("rowse/bet"), None, 100)
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].name, "kit-browse/beta", "a substring anywhere");
    assert!(meta
        .repository_summaries(Some("kit-browse/nothing"), None, 100)
        .await
        .unwrap()
        .is_empty());
}

/// Tag details: newest first then by name, in keyset pages; sizes count the
/// manifest and its distinct blobs, and for an index its children and
/// theirs; a repository without manifests has none.
pub async fn tag_details_are_newest_first_with_sizes(meta: &dyn MetaStore) {
    let r = repo("kit-tag-details");
    let (config, layer, other) = (
        Digest::sha256_of(b"kit-tag-details config"),
        Digest::sha256_of(b"kit-tag-details layer"),
        Digest::sha256_of(b"kit-tag-details other"),
    );
    for (d, size) in [(&config, 2), (&layer, 30), (&other, 400)] {
        publish_link(meta, &r, d, size).await;
    }
    let (amd, arm, top) = (
        Digest::sha256_of(b"kit-tag-details amd64"),
        Digest::sha256_of(b"kit-tag-details arm64"),
        Digest::sha256_of(b"kit-tag-details index"),
    );
    // Both platforms share the config; each manifest record is 100 bytes.
    let amd_m = manifest(&amd, vec![(config.clone(), 2), (layer.clone(), 30)], None);
    let arm_m = manifest(&arm, vec![(config.clone(), 2), (other.clone(), 400)], None);
    meta.put_manifest(&r, &amd_m, Some(&tag("amd64")), &PutOptions::default())
        .await
        .unwrap();
    meta.put_manifest(&r, &arm_m, Some(&tag("arm64")), &PutOptions::default())
        .await
        .unwrap();
    meta.put_manifest(
        &r,
        &index(&top, vec![(amd.clone(), 100), (arm.clone(), 100)]),
        None,
        &PutOptions::default(),
    )
    .await
    .unwrap();
    // Pushed times are in seconds: the newest tag must be a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    meta.put_manifest(
        &r,
        &index(&top, vec![(amd.clone(), 100), (arm, 100)]),
        Some(&tag("multi")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let rows = meta.tag_details(&r, None, 10).await.unwrap().unwrap();
    let order: Vec<_> = rows.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(
        order,
        ["multi", "amd64", "arm64"],
        "newest first, then by name"
    );
    assert!(rows[0].pushed_at > rows[1].pushed_at);
    assert_eq!(rows[0].digest, top);
    assert_eq!(rows[0].media_type, super::meta_store::INDEX);
    assert_eq!(
        rows[0].size_bytes,
        100 + 100 + 100 + 2 + 30 + 400,
        "index, children and their distinct blobs"
    );
    assert_eq!(rows[1].size_bytes, 100 + 2 + 30);
    assert_eq!(rows[1].artifact_type.as_deref(), Some("application/x.test"));
    let first = meta.tag_details(&r, None, 2).await.unwrap().unwrap();
    assert_eq!(first.len(), 2);
    let after = TagCursor {
        pushed_at: first[1].pushed_at,
        name: first[1].tag.clone(),
    };
    let rest = meta
        .tag_details(&r, Some(&after), 10)
        .await
        .unwrap()
        .unwrap();
    let rest: Vec<_> = rest.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(rest, ["arm64"], "the next page resumes after the cursor");
    assert_eq!(
        meta.tag_details(&repo("kit-tag-details/none"), None, 10)
            .await
            .unwrap(),
        None
    );
    let _ = amd;
}

/// Facts of a manifest: its first push time, artifact type and sorted tags.
pub async fn manifest_facts_list_tags_and_push_time(meta: &dyn MetaStore) {
    let r = repo("kit-facts");
    let m = Digest::sha256_of(b"kit-facts m");
    for t in ["b", "a"] {
        meta.put_manifest(
            &r,
            &manifest(&m, vec![], None),
            Some(&tag(t)),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    let facts = meta.manifest_facts(&r, &m).await.unwrap().unwrap();
    assert_eq!(facts.tags, ["a", "b"]);
    assert_eq!(facts.artifact_type.as_deref(), Some("application/x.test"));
    let now = super::unix_now();
    assert!((now - 60..=now + 1).contains(&facts.pushed_at));
    let absent = Digest::sha256_of(b"kit-facts absent");
    assert_eq!(meta.manifest_facts(&r, &absent).await.unwrap(), None);
    assert_eq!(
        meta.manifest_facts(&repo("kit-facts/other"), &m)
            .await
            .unwrap(),
        None
    );
}

/// The overview counts tags and manifests, each blob digest once as stored
/// and once per manifest naming it as referenced; the difference is what
/// sharing saves. A blob no manifest names is stored, not referenced.
pub async fn overview_counts_shared_blobs_once(meta: &dyn MetaStore) {
    let before = meta.overview().await.unwrap();
    let (a, b) = (repo("kit-overview/a"), repo("kit-overview/b"));
    let (shared, own) = (
        Digest::sha256_of(b"kit-overview shared"),
        Digest::sha256_of(b"kit-overview own"),
    );
    for r in [&a, &b] {
        publish_link(meta, r, &shared, 1000).await;
        let m = Digest::sha256_of(format!("kit-overview {r}").as_bytes());
        meta.put_manifest(
            r,
            &manifest(&m, vec![(shared.clone(), 1000)], None),
            Some(&tag("v1")),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    publish_link(meta, &a, &own, 7).await;
    let after = meta.overview().await.unwrap();
    assert_eq!(after.repositories, before.repositories + 2);
    assert_eq!(after.tags, before.tags + 2);
    assert_eq!(after.manifests, before.manifests + 2);
    assert_eq!(after.blobs, before.blobs + 2);
    assert_eq!(after.stored_bytes, before.stored_bytes + 1000 + 7);
    assert_eq!(after.referenced_bytes, before.referenced_bytes + 2000);
    assert_eq!(
        after.shared_savings_bytes,
        before.shared_savings_bytes + 1000
    );
}
