//! The promises of [`MetaStore`] for the pull-through cache: origins, lazy
//! references, tag check times, cached bytes and eviction candidates.

use super::meta_store::{index, manifest, repo, tag};
use super::{publish_link, unix_now};
use crate::storage::{
    CacheOrigin, CacheSource, MetaStore, PullRecord, PulledBy, PutOptions, RepositoryOrigin,
};
use berth_oci::{Digest, RepositoryName};

fn cached(upstream: &str, remote: &str, checked_at: i64) -> PutOptions {
    PutOptions {
        cached: Some(CacheSource {
            upstream: upstream.into(),
            remote: remote.into(),
            checked_at,
        }),
        ..PutOptions::default()
    }
}

/// Eviction candidates in repositories whose names start with `prefix`
/// (the kit shares one store between promises).
async fn candidates_under(
    meta: &dyn MetaStore,
    prefix: &str,
) -> Vec<(RepositoryName, Digest, i64)> {
    meta.eviction_candidates(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.repository.as_str().starts_with(prefix))
        .map(|c| (c.repository, c.digest, c.last_pulled))
        .collect()
}

/// A cached manifest may name blobs and children that are not there; it
/// marks its repository cached (with its upstream, remote name and check
/// time) in the same write. Repositories are absent, local or cached.
pub async fn cached_manifests_have_lazy_references_and_mark_their_repository(meta: &dyn MetaStore) {
    let (cache, pushed, linked_only) = (
        repo("kit-cache-origin/cached"),
        repo("kit-cache-origin/pushed"),
        repo("kit-cache-origin/linked"),
    );
    assert_eq!(
        meta.repository_origin(&cache).await.unwrap(),
        RepositoryOrigin::Absent
    );
    let absent = Digest::sha256_of(b"kit-cache-origin absent layer");
    let image = Digest::sha256_of(b"kit-cache-origin image");
    let record = manifest(&image, vec![(absent.clone(), 7)], None);
    // Without `cached` the absent layer is refused, as for any push.
    assert!(meta
        .put_manifest(&cache, &record, Some(&tag("v1")), &PutOptions::default())
        .await
        .is_err());
    assert_eq!(
        meta.repository_origin(&cache).await.unwrap(),
        RepositoryOrigin::Absent,
        "a refused put marks nothing"
    );
    let at = unix_now() - 50;
    meta.put_manifest(
        &cache,
        &record,
        Some(&tag("v1")),
        &cached("docker.io", "library/origin", at),
    )
    .await
    .unwrap();
    let child = Digest::sha256_of(b"kit-cache-origin absent child");
    let idx = Digest::sha256_of(b"kit-cache-origin index");
    meta.put_manifest(
        &cache,
        &index(&idx, vec![(child, 100)]),
        None,
        &cached("docker.io", "library/origin", at),
    )
    .await
    .unwrap();
    let origin = CacheOrigin {
        upstream: "docker.io".into(),
        remote: "library/origin".into(),
        checked_at: Some(at),
    };
    assert_eq!(
        meta.repository_origin(&cache).await.unwrap(),
        RepositoryOrigin::Cached(origin.clone())
    );
    assert_eq!(
        meta.tag_checked_at(&cache, &tag("v1")).await.unwrap(),
        Some(at)
    );
    let summary = meta.repository_summary(&cache).await.unwrap().unwrap();
    assert_eq!(summary.cached_from, Some(origin));

    let layer = Digest::sha256_of(b"kit-cache-origin pushed layer");
    publish_link(meta, &linked_only, &layer, 3).await;
    assert_eq!(
        meta.repository_origin(&linked_only).await.unwrap(),
        RepositoryOrigin::Local,
        "a link alone is pushed content"
    );
    publish_link(meta, &pushed, &layer, 3).await;
    let own = Digest::sha256_of(b"kit-cache-origin pushed image");
    meta.put_manifest(
        &pushed,
        &manifest(&own, vec![(layer, 3)], None),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        meta.repository_origin(&pushed).await.unwrap(),
        RepositoryOrigin::Local
    );
    let summary = meta.repository_summary(&pushed).await.unwrap().unwrap();
    assert_eq!(summary.cached_from, None);

    // Marking before anything is linked: cached, never checked yet.
    let marked = repo("kit-cache-origin/marked");
    let source = CacheSource {
        upstream: "proxy".into(),
        remote: "marked".into(),
        checked_at: at,
    };
    meta.mark_cached(&marked, &source).await.unwrap();
    meta.mark_cached(&marked, &source).await.unwrap();
    assert_eq!(
        meta.repository_origin(&marked).await.unwrap(),
        RepositoryOrigin::Cached(CacheOrigin {
            upstream: "proxy".into(),
            remote: "marked".into(),
            checked_at: None,
        })
    );
}

/// A tag's check time moves forward, also the repository's; it goes with
/// its tag, its manifest or its repository; non-cached repositories keep none.
pub async fn tag_check_times_move_and_go_with_their_tags(meta: &dyn MetaStore) {
    let cache = repo("kit-cache-checks/cached");
    let at = unix_now() - 100;
    let image = Digest::sha256_of(b"kit-cache-checks image");
    let record = manifest(&image, vec![], None);
    for t in ["a", "b", "c"] {
        meta.put_manifest(&cache, &record, Some(&tag(t)), &cached("up", "checks", at))
            .await
            .unwrap();
    }
    meta.set_tag_checked(&cache, &tag("a"), at + 10)
        .await
        .unwrap();
    meta.set_tag_checked(&cache, &tag("a"), at + 5)
        .await
        .unwrap();
    assert_eq!(
        meta.tag_checked_at(&cache, &tag("a")).await.unwrap(),
        Some(at + 10)
    );
    assert_eq!(
        meta.tag_checked_at(&cache, &tag("b")).await.unwrap(),
        Some(at)
    );
    match meta.repository_origin(&cache).await.unwrap() {
        RepositoryOrigin::Cached(o) => assert_eq!(o.checked_at, Some(at + 10)),
        other => panic!("{other:?}"),
    }
    assert!(meta.delete_tag(&cache, &tag("a")).await.unwrap());
    assert_eq!(meta.tag_checked_at(&cache, &tag("a")).await.unwrap(), None);
    // A tag put again gets that put's check time.
    meta.put_manifest(
        &cache,
        &record,
        Some(&tag("a")),
        &cached("up", "checks", at + 1),
    )
    .await
    .unwrap();
    assert_eq!(
        meta.tag_checked_at(&cache, &tag("a")).await.unwrap(),
        Some(at + 1)
    );
    assert!(meta.delete_manifest(&cache, &image).await.unwrap());
    for t in ["a", "b", "c"] {
        assert_eq!(meta.tag_checked_at(&cache, &tag(t)).await.unwrap(), None);
    }

    let pushed = repo("kit-cache-checks/pushed");
    meta.put_manifest(&pushed, &record, Some(&tag("a")), &PutOptions::default())
        .await
        .unwrap();
    meta.set_tag_checked(&pushed, &tag("a"), at).await.unwrap();
    assert_eq!(meta.tag_checked_at(&pushed, &tag("a")).await.unwrap(), None);
    assert_eq!(
        meta.repository_origin(&pushed).await.unwrap(),
        RepositoryOrigin::Local
    );

    // A purged cache leaves nothing behind, not even for a repository that
    // gets its row's id next (SQLite reuses the largest rowid).
    let purged = repo("kit-cache-checks/purged");
    meta.put_manifest(
        &purged,
        &record,
        Some(&tag("z")),
        &cached("up", "checks", at),
    )
    .await
    .unwrap();
    meta.delete_repository(&purged).await.unwrap().unwrap();
    assert_eq!(
        meta.repository_origin(&purged).await.unwrap(),
        RepositoryOrigin::Absent
    );
    let next = repo("kit-cache-checks/next");
    meta.put_manifest(&next, &record, Some(&tag("z")), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        meta.repository_origin(&next).await.unwrap(),
        RepositoryOrigin::Local
    );
    assert_eq!(meta.tag_checked_at(&next, &tag("z")).await.unwrap(), None);
}

/// Cached bytes: the present blobs cached manifests name, each digest once
/// however many repositories share it, plus those manifests' own bytes;
/// absent (lazy) blobs and pushed repositories count nothing.
pub async fn cached_bytes_count_present_blobs_of_cached_manifests_once(meta: &dyn MetaStore) {
    let before = meta.cached_bytes().await.unwrap();
    let (a, b, pushed) = (
        repo("kit-cache-bytes/a"),
        repo("kit-cache-bytes/b"),
        repo("kit-cache-bytes/pushed"),
    );
    let shared = Digest::sha256_of(b"kit-cache-bytes shared layer");
    let absent = Digest::sha256_of(b"kit-cache-bytes absent layer");
    publish_link(meta, &a, &shared, 5_000).await;
    let now = unix_now();
    for (r, m) in [(&a, "kit-cache-bytes ma"), (&b, "kit-cache-bytes mb")] {
        let record = manifest(
            &Digest::sha256_of(m.as_bytes()),
            vec![(shared.clone(), 5_000), (absent.clone(), 9_000)],
            None,
        );
        meta.put_manifest(r, &record, Some(&tag("v1")), &cached("up", "bytes", now))
            .await
            .unwrap();
    }
    assert_eq!(
        meta.cached_bytes().await.unwrap() - before,
        100 + 100 + 5_000
    );

    let own = Digest::sha256_of(b"kit-cache-bytes pushed layer");
    publish_link(meta, &pushed, &own, 70_000).await;
    meta.put_manifest(
        &pushed,
        &manifest(
            &Digest::sha256_of(b"kit-cache-bytes mp"),
            vec![(own, 70_000)],
            None,
        ),
        Some(&tag("v1")),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(meta.cached_bytes().await.unwrap() - before, 5_200);
    meta.delete_repository(&a).await.unwrap().unwrap();
    meta.delete_repository(&b).await.unwrap().unwrap();
    assert_eq!(meta.cached_bytes().await.unwrap(), before);
}

/// Candidates are manifests of cached repositories that no index there
/// names, least recently pulled first (by tag or digest; else when cached).
pub async fn eviction_candidates_are_top_level_cached_manifests_by_last_pull(meta: &dyn MetaStore) {
    let (cache, pushed) = (
        repo("kit-cache-evict/cached"),
        repo("kit-cache-evict/pushed"),
    );
    let now = unix_now();
    let (child, idx, lone) = (
        Digest::sha256_of(b"kit-cache-evict child"),
        Digest::sha256_of(b"kit-cache-evict index"),
        Digest::sha256_of(b"kit-cache-evict lone"),
    );
    let source = cached("up", "evict", now);
    meta.put_manifest(&cache, &manifest(&child, vec![], None), None, &source)
        .await
        .unwrap();
    meta.put_manifest(
        &cache,
        &index(&idx, vec![(child.clone(), 100)]),
        Some(&tag("multi")),
        &source,
    )
    .await
    .unwrap();
    meta.put_manifest(
        &cache,
        &manifest(&lone, vec![], None),
        Some(&tag("lone")),
        &source,
    )
    .await
    .unwrap();
    meta.put_manifest(
        &pushed,
        &manifest(&Digest::sha256_of(b"kit-cache-evict pushed"), vec![], None),
        Some(&tag("old")),
        &PutOptions::default(),
    )
    .await
    .unwrap();

    let pull = |by: PulledBy, at: i64| PullRecord {
        repository: cache.clone(),
        by,
        at,
    };
    meta.record_pulls(vec![pull(PulledBy::Tag(tag("lone")), now + 100)])
        .await
        .unwrap();
    let found = candidates_under(meta, "kit-cache-evict/").await;
    let digests: Vec<&Digest> = found.iter().map(|(_, d, _)| d).collect();
    assert_eq!(
        digests,
        [&idx, &lone],
        "the index's child and pushed images never"
    );
    assert_eq!(found[1].2, now + 100);
    assert!(
        found[0].2 >= now && found[0].2 < now + 100,
        "cached, never pulled"
    );

    meta.record_pulls(vec![pull(PulledBy::Digest(idx.clone()), now + 200)])
        .await
        .unwrap();
    let found = candidates_under(meta, "kit-cache-evict/").await;
    let digests: Vec<&Digest> = found.iter().map(|(_, d, _)| d).collect();
    assert_eq!(digests, [&lone, &idx]);

    // Once the index goes, its child is top-level.
    assert!(meta.delete_manifest(&cache, &idx).await.unwrap());
    let found = candidates_under(meta, "kit-cache-evict/").await;
    let digests: Vec<&Digest> = found.iter().map(|(_, d, _)| d).collect();
    assert_eq!(digests, [&child, &lone]);
    assert!(found.iter().all(|(r, _, _)| *r == cache));
}
