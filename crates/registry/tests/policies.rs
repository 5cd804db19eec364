//! Policies driven in-process over the real stores: retention as a
//! collection pass applies it (dry run, keep rules, immutable tags, the
//! rescue of a tag pushed again), pull times noted without a write per
//! pull, quota use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName, Tag};
use berth_registry::gc::{GcReport, GcRequest, RemovalKind};
use berth_registry::policy::{
    ImmutableRule, NamePattern, Policies, Quota, QuotaRule, RetentionRule,
};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::storage::{
    BlobClaim, ManifestRecord, ManifestRow, PutOptions, ReferrerRecord, UploadLimits, UploadSession,
};
use berth_registry::{ByteStream, Error, MetaStore, Registry, RegistryOptions};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DAY: i64 = 86_400;
const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The SQLite store, watched: counts `record_pulls` calls, and can push a
/// tag again right after retention read the tags (a client racing it).
struct Watched {
    inner: SqliteMetaStore,
    record_pulls_calls: AtomicUsize,
    push_after_reading_tags: Mutex<Option<(RepositoryName, ManifestRecord, Tag)>>,
}

struct Setup {
    reg: Registry,
    meta: Arc<Watched>,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn setup(policies: Policies) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meta.db");
    let meta = Arc::new(Watched {
        inner: SqliteMetaStore::open(&db).unwrap(),
        record_pulls_calls: AtomicUsize::new(0),
        push_after_reading_tags: Mutex::new(None),
    });
    let reg = Registry::new(
        Arc::new(FsBlobStore::open(dir.path()).unwrap()),
        meta.clone(),
        RegistryOptions {
            policies: Arc::new(policies),
            ..Default::default()
        },
    );
    Setup {
        reg,
        meta,
        db,
        _dir: dir,
    }
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

fn pattern(s: &str) -> NamePattern {
    NamePattern::new(s).unwrap()
}

fn body(bytes: &[u8]) -> ByteStream<'static> {
    stream::iter(vec![Ok(Bytes::copy_from_slice(bytes))]).boxed()
}

fn rule(repositories: &str) -> RetentionRule {
    RetentionRule {
        repositories: pattern(repositories),
        keep_last: None,
        keep_tags: vec![],
        older_than: None,
        keep_pulled_within: None,
    }
}

fn retention(rules: Vec<RetentionRule>) -> Policies {
    Policies {
        retention: rules,
        ..Default::default()
    }
}

/// Pushes an image of its own (a layer named after `n`) tagged `tag`.
async fn push_image(reg: &Registry, name: &RepositoryName, tag: &str, n: &str) -> Digest {
    let manifest = image_bytes(reg, name, n).await;
    let reference: Reference = tag.parse().unwrap();
    reg.put_manifest(name, &reference, None, manifest)
        .await
        .unwrap()
        .digest
}

/// Uploads the blobs of image `n` and answers its manifest's bytes.
async fn image_bytes(reg: &Registry, name: &RepositoryName, n: &str) -> Bytes {
    let config = b"{}";
    let layer = format!("layer of {n}");
    let (config_digest, layer_digest) = (
        Digest::sha256_of(config),
        Digest::sha256_of(layer.as_bytes()),
    );
    reg.push_blob(name, &config_digest, body(config), None)
        .await
        .unwrap();
    reg.push_blob(name, &layer_digest, body(layer.as_bytes()), None)
        .await
        .unwrap();
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{IMAGE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        layer.len()
    ))
}

/// Makes `repo:tag` look pushed `days` days ago.
fn age_tag(db: &Path, repo: &str, tag: &str, days: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let changed = conn
        .execute(
            "UPDATE tags SET updated_at = updated_at - ?3
             WHERE repo_id = (SELECT id FROM repositories WHERE name = ?1) AND name = ?2",
            rusqlite::params![repo, tag, days * DAY],
        )
        .unwrap();
    assert_eq!(changed, 1, "{repo}:{tag}");
}

async fn gc(reg: &Registry, dry_run: bool) -> GcReport {
    reg.collect_garbage(
        &GcRequest {
            dry_run,
            grace: None,
        },
        &(),
    )
    .await
    .unwrap()
}

async fn tags_of(reg: &Registry, name: &RepositoryName) -> Vec<String> {
    reg.tags(name, None, None).await.unwrap().items
}

async fn has_manifest(meta: &Watched, name: &RepositoryName, digest: &Digest) -> bool {
    meta.manifest_by_digest(name, digest)
        .await
        .unwrap()
        .is_some()
}

/// Removals of one kind in a report, as `repository/name`.
fn removed(report: &GcReport, kind: RemovalKind) -> Vec<String> {
    let mut names: Vec<String> = report
        .removed
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.name.clone())
        .collect();
    names.sort();
    names
}
#[async_trait::async_trait]
impl berth_registry::MetaStore for Watched {
    async fn link_blob(
        &self,
        r: &RepositoryName,
        d: &Digest,
        size: u64,
        claim: Option<&BlobClaim>,
    ) -> Result<bool, Error> {
        self.inner.link_blob(r, d, size, claim).await
    }
    async fn blob_size(&self, r: &RepositoryName, d: &Digest) -> Result<Option<u64>, Error> {
        self.inner.blob_size(r, d).await
    }
    async fn unlink_blob(&self, r: &RepositoryName, d: &Digest) -> Result<bool, Error> {
        self.inner.unlink_blob(r, d).await
    }
    async fn put_manifest(
        &self,
        r: &RepositoryName,
        m: &ManifestRecord,
        t: Option<&Tag>,
        o: &PutOptions,
    ) -> Result<(), Error> {
        self.inner.put_manifest(r, m, t, o).await
    }
    async fn manifest_by_tag(
        &self,
        r: &RepositoryName,
        t: &Tag,
    ) -> Result<Option<ManifestRow>, Error> {
        self.inner.manifest_by_tag(r, t).await
    }
    async fn manifest_by_digest(
        &self,
        r: &RepositoryName,
        d: &Digest,
    ) -> Result<Option<ManifestRow>, Error> {
        self.inner.manifest_by_digest(r, d).await
    }
    async fn delete_manifest(&self, r: &RepositoryName, d: &Digest) -> Result<bool, Error> {
        self.inner.delete_manifest(r, d).await
    }
    async fn delete_tag(&self, r: &RepositoryName, t: &Tag) -> Result<bool, Error> {
        self.inner.delete_tag(r, t).await
    }
    async fn delete_repository(
        &self,
        r: &RepositoryName,
    ) -> Result<Option<berth_registry::storage::RepositoryDeleted>, Error> {
        self.inner.delete_repository(r).await
    }
    async fn list_tags(
        &self,
        r: &RepositoryName,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<String>>, Error> {
        self.inner.list_tags(r, last, limit).await
    }
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, Error> {
        self.inner.list_repositories(last, limit).await
    }
    async fn referrers(
        &self,
        r: &RepositoryName,
        s: &Digest,
        a: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ReferrerRecord>, Error> {
        self.inner.referrers(r, s, a, last, limit).await
    }
    async fn repository_summaries(
        &self,
        filter: Option<&str>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<berth_registry::RepositorySummary>, Error> {
        self.inner.repository_summaries(filter, last, limit).await
    }
    async fn repository_summary(
        &self,
        r: &RepositoryName,
    ) -> Result<Option<berth_registry::RepositorySummary>, Error> {
        self.inner.repository_summary(r).await
    }
    async fn tag_details(
        &self,
        r: &RepositoryName,
        after: Option<&berth_registry::storage::TagCursor>,
        limit: usize,
    ) -> Result<Option<Vec<berth_registry::storage::TagRow>>, Error> {
        self.inner.tag_details(r, after, limit).await
    }
    async fn manifest_facts(
        &self,
        r: &RepositoryName,
        d: &Digest,
    ) -> Result<Option<berth_registry::storage::ManifestFacts>, Error> {
        self.inner.manifest_facts(r, d).await
    }
    async fn overview(&self) -> Result<berth_registry::Overview, Error> {
        self.inner.overview().await
    }
    async fn create_upload(&self, s: &UploadSession, l: UploadLimits) -> Result<(), Error> {
        self.inner.create_upload(s, l).await
    }
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>, Error> {
        self.inner.upload(id).await
    }
    async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: &berth_registry::storage::UploadProgress,
        at: i64,
    ) -> Result<bool, Error> {
        self.inner.advance_upload(id, from, to, at).await
    }
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, Error> {
        self.inner.try_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), Error> {
        self.inner.release_lease(name, holder).await
    }
    async fn shared_secret(&self, name: &str, candidate: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.inner.shared_secret(name, candidate).await
    }
    async fn repository_links(
        &self,
        r: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>, Error> {
        self.inner.repository_links(r, after, limit).await
    }
    async fn repository_manifests(
        &self,
        r: &RepositoryName,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<berth_registry::storage::ManifestRow>, Error> {
        self.inner.repository_manifests(r, after, limit).await
    }
    async fn delete_upload(&self, id: &str) -> Result<(), Error> {
        self.inner.delete_upload(id).await
    }
    async fn stale_uploads(&self, cutoff: i64) -> Result<Vec<String>, Error> {
        self.inner.stale_uploads(cutoff).await
    }
    async fn check(&self) -> Result<(), Error> {
        self.inner.check().await
    }
    async fn stats(&self) -> Result<berth_registry::StoreStats, Error> {
        self.inner.stats().await
    }
    async fn claim_blob(
        &self,
        d: &Digest,
        lease: std::time::Duration,
    ) -> Result<Option<BlobClaim>, Error> {
        self.inner.claim_blob(d, lease).await
    }
    async fn release_claim(&self, c: &BlobClaim) -> Result<(), Error> {
        self.inner.release_claim(c).await
    }
    async fn touch_blobs(&self, t: Vec<(RepositoryName, Digest)>, at: i64) -> Result<(), Error> {
        self.inner.touch_blobs(t, at).await
    }
    async fn gc_untagged_manifests(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest)>, Error> {
        self.inner.gc_untagged_manifests(before, limit).await
    }
    async fn delete_untagged_manifest(
        &self,
        r: &RepositoryName,
        d: &Digest,
        before: i64,
    ) -> Result<bool, Error> {
        self.inner.delete_untagged_manifest(r, d, before).await
    }
    async fn gc_dangling_links(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<(RepositoryName, Digest, u64)>, Error> {
        self.inner.gc_dangling_links(before, limit).await
    }
    async fn unlink_dangling(
        &self,
        r: &RepositoryName,
        d: &Digest,
        before: i64,
    ) -> Result<bool, Error> {
        self.inner.unlink_dangling(r, d, before).await
    }
    async fn gc_blob_candidates(
        &self,
        before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>, Error> {
        self.inner.gc_blob_candidates(before, after, limit).await
    }
    async fn tombstone_blob(&self, d: &Digest, before: i64) -> Result<Option<u64>, Error> {
        self.inner.tombstone_blob(d, before).await
    }
    async fn drop_tombstone(&self, d: &Digest) -> Result<(), Error> {
        self.inner.drop_tombstone(d).await
    }
    async fn tombstones(&self) -> Result<Vec<Digest>, Error> {
        self.inner.tombstones().await
    }
    async fn tombstone_orphan(&self, d: &Digest) -> Result<bool, Error> {
        self.inner.tombstone_orphan(d).await
    }
    async fn known_blob(&self, d: &Digest) -> Result<bool, Error> {
        self.inner.known_blob(d).await
    }
    async fn reclaimable(&self) -> Result<berth_registry::storage::Reclaimable, Error> {
        self.inner.reclaimable().await
    }
    async fn expire_claims(&self, now: i64) -> Result<u64, Error> {
        self.inner.expire_claims(now).await
    }
    async fn record_pulls(
        &self,
        pulls: Vec<berth_registry::storage::PullRecord>,
    ) -> Result<(), Error> {
        self.record_pulls_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.record_pulls(pulls).await
    }
    async fn tag_states(
        &self,
        r: &RepositoryName,
    ) -> Result<Vec<berth_registry::policy::TagState>, Error> {
        let states = self.inner.tag_states(r).await?;
        let push = self.push_after_reading_tags.lock().unwrap().take();
        if let Some((repo, record, tag)) = push {
            // A client pushes the tag again right after retention read it.
            self.inner
                .put_manifest(&repo, &record, Some(&tag), &PutOptions::default())
                .await?;
        }
        Ok(states)
    }
    async fn delete_tag_if(
        &self,
        r: &RepositoryName,
        t: &Tag,
        d: &Digest,
        updated_at: i64,
    ) -> Result<bool, Error> {
        self.inner.delete_tag_if(r, t, d, updated_at).await
    }
    async fn repository_usage(
        &self,
        r: &RepositoryName,
    ) -> Result<berth_registry::storage::RepositoryUsage, Error> {
        self.inner.repository_usage(r).await
    }
    async fn repository_origin(
        &self,
        r: &RepositoryName,
    ) -> Result<berth_registry::storage::RepositoryOrigin, Error> {
        self.inner.repository_origin(r).await
    }
    async fn mark_cached(
        &self,
        r: &RepositoryName,
        source: &berth_registry::storage::CacheSource,
    ) -> Result<(), Error> {
        self.inner.mark_cached(r, source).await
    }
    async fn tag_checked_at(
        &self,
        r: &RepositoryName,
        tag: &berth_oci::Tag,
    ) -> Result<Option<i64>, Error> {
        self.inner.tag_checked_at(r, tag).await
    }
    async fn set_tag_checked(
        &self,
        r: &RepositoryName,
        tag: &berth_oci::Tag,
        at: i64,
    ) -> Result<(), Error> {
        self.inner.set_tag_checked(r, tag, at).await
    }
    async fn cached_bytes(&self) -> Result<u64, Error> {
        self.inner.cached_bytes().await
    }
    async fn eviction_candidates(
        &self,
        limit: usize,
    ) -> Result<Vec<berth_registry::storage::EvictionCandidate>, Error> {
        self.inner.eviction_candidates(limit).await
    }
}
/// ci/app: v1..v4 pushed 4..1 days ago, and `latest` on v4's image now.
async fn four_builds(s: &Setup) -> (RepositoryName, Vec<Digest>) {
    let name = repo("ci/app");
    let mut digests = Vec::new();
    for i in 1..=4 {
        let t = format!("v{i}");
        digests.push(push_image(&s.reg, &name, &t, &t).await);
        age_tag(&s.db, "ci/app", &t, 5 - i);
    }
    push_image(&s.reg, &name, "latest", "v4").await;
    (name, digests)
}

#[tokio::test]
async fn keep_last_removes_older_tags_and_the_images_they_leave_untagged() {
    let s = setup(retention(vec![RetentionRule {
        keep_last: Some(2),
        keep_tags: vec![pattern("latest")],
        ..rule("ci/*")
    }]));
    let (name, digests) = four_builds(&s).await;
    let other = repo("prod/app");
    push_image(&s.reg, &other, "v1", "prod").await;
    age_tag(&s.db, "prod/app", "v1", 100);

    let report = gc(&s.reg, false).await;
    assert_eq!(tags_of(&s.reg, &name).await, ["latest", "v3", "v4"]);
    assert_eq!((report.tags_removed, report.manifests_removed), (2, 2));
    assert_eq!(removed(&report, RemovalKind::Tag), ["v1", "v2"]);
    let mut gone = vec![digests[0].to_string(), digests[1].to_string()];
    gone.sort();
    assert_eq!(removed(&report, RemovalKind::Manifest), gone);
    assert!(!has_manifest(&s.meta, &name, &digests[0]).await);
    assert!(!has_manifest(&s.meta, &name, &digests[1]).await);
    assert!(has_manifest(&s.meta, &name, &digests[2]).await);
    let reason = &report.removed[0].reason;
    assert!(reason.contains("not among the 2 newest"), "{reason}");
    assert_eq!(
        tags_of(&s.reg, &other).await,
        ["v1"],
        "no rule, nothing goes"
    );
    // A second pass finds nothing more to do.
    let again = gc(&s.reg, false).await;
    assert_eq!((again.tags_removed, again.manifests_removed), (0, 0));
}

#[tokio::test]
async fn a_dry_run_reports_what_retention_would_remove_and_removes_nothing() {
    let s = setup(retention(vec![RetentionRule {
        older_than: Some(Duration::from_secs(2 * 86_400 + 60)),
        ..rule("ci/app")
    }]));
    let (name, digests) = four_builds(&s).await;
    let dry = gc(&s.reg, true).await;
    assert!(dry.dry_run);
    // v1 (4 days) and v2 (3 days) are older than 2 days and a minute.
    assert_eq!(removed(&dry, RemovalKind::Tag), ["v1", "v2"]);
    assert_eq!((dry.tags_removed, dry.manifests_removed), (2, 2));
    assert_eq!(
        tags_of(&s.reg, &name).await,
        ["latest", "v1", "v2", "v3", "v4"]
    );
    assert!(has_manifest(&s.meta, &name, &digests[0]).await);
    let real = gc(&s.reg, false).await;
    assert_eq!(
        removed(&real, RemovalKind::Tag),
        removed(&dry, RemovalKind::Tag)
    );
    assert_eq!(tags_of(&s.reg, &name).await, ["latest", "v3", "v4"]);
}

#[tokio::test]
async fn a_tag_pushed_again_after_retention_read_it_survives() {
    let s = setup(retention(vec![RetentionRule {
        keep_last: Some(0),
        keep_tags: vec![pattern("latest")],
        ..rule("ci/app")
    }]));
    let (name, digests) = four_builds(&s).await;
    let rescuer = Digest::sha256_of(b"v1, rebuilt");
    *s.meta.push_after_reading_tags.lock().unwrap() = Some((
        name.clone(),
        ManifestRecord {
            digest: rescuer.clone(),
            media_type: IMAGE.into(),
            size: 10,
            artifact_type: None,
            subject: None,
            annotations: None,
            blobs: vec![],
            manifests: vec![],
        },
        tag("v1"),
    ));
    let report = gc(&s.reg, false).await;
    assert_eq!(removed(&report, RemovalKind::Tag), ["v2", "v3", "v4"]);
    assert_eq!(tags_of(&s.reg, &name).await, ["latest", "v1"]);
    let v1 = s
        .meta
        .manifest_by_tag(&name, &tag("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1.digest, rescuer, "the push that raced retention stands");
    // v4's image keeps `latest`; v1's old image lost its tag to the push,
    // not to retention, so retention leaves it to the untagged phase.
    assert!(has_manifest(&s.meta, &name, &digests[3]).await);
    assert!(has_manifest(&s.meta, &name, &digests[0]).await);
    assert_eq!(report.manifests_removed, 2);
}

#[tokio::test]
async fn immutable_tags_are_never_removed_by_retention() {
    let s = setup(Policies {
        immutable: vec![ImmutableRule {
            repositories: pattern("ci/*"),
            tags: vec![pattern("v1"), pattern("v3")],
        }],
        ..retention(vec![RetentionRule {
            older_than: Some(Duration::from_secs(60)),
            ..rule("*")
        }])
    });
    let (name, _) = four_builds(&s).await;
    let report = gc(&s.reg, false).await;
    assert_eq!(removed(&report, RemovalKind::Tag), ["v2", "v4"]);
    assert_eq!(tags_of(&s.reg, &name).await, ["latest", "v1", "v3"]);
}

#[tokio::test]
async fn recently_pulled_tags_are_kept_and_pulls_are_written_before_retention_judges() {
    let s = setup(retention(vec![RetentionRule {
        // v4 (a day old) is young enough; v1..v3 are not.
        older_than: Some(Duration::from_secs(86_400 + 3600)),
        keep_pulled_within: Some(Duration::from_secs(86_400)),
        ..rule("ci/app")
    }]));
    let (name, digests) = four_builds(&s).await;
    // v1 by tag (HEAD), v2's image by digest (GET); neither written yet.
    s.reg
        .manifest(&name, &"v1".parse().unwrap(), &[], false)
        .await
        .unwrap();
    s.reg
        .manifest(&name, &Reference::Digest(digests[1].clone()), &[], true)
        .await
        .unwrap();
    assert_eq!(s.meta.record_pulls_calls.load(Ordering::SeqCst), 0);
    let report = gc(&s.reg, false).await;
    assert_eq!(removed(&report, RemovalKind::Tag), ["v3"]);
    assert_eq!(tags_of(&s.reg, &name).await, ["latest", "v1", "v2", "v4"]);
    assert_eq!(s.meta.record_pulls_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pulls_are_noted_in_memory_and_written_together_not_once_per_request() {
    let s = setup(Policies::default());
    let name = repo("hot/app");
    let digest = push_image(&s.reg, &name, "latest", "hot").await;
    let by_tag: Reference = "latest".parse().unwrap();
    let by_digest = Reference::Digest(digest.clone());
    for i in 0..200 {
        let with_body = i % 2 == 0; // GET and HEAD alike
        s.reg
            .manifest(&name, &by_tag, &[], with_body)
            .await
            .unwrap();
        s.reg
            .manifest(&name, &by_digest, &[], with_body)
            .await
            .unwrap();
    }
    // berth's own reads (the UI) are not pulls.
    s.reg.image_detail(&name, &by_tag).await.ok();
    assert_eq!(
        s.meta.record_pulls_calls.load(Ordering::SeqCst),
        0,
        "no write per pull"
    );
    assert_eq!(s.reg.pending_pulls(), 2, "coalesced by tag and by digest");
    let before = s.meta.tag_states(&name).await.unwrap();
    assert_eq!(before[0].pulled_at, None);

    assert_eq!(s.reg.flush_pulls().await.unwrap(), 2);
    assert_eq!(s.meta.record_pulls_calls.load(Ordering::SeqCst), 1);
    assert_eq!(s.reg.pending_pulls(), 0);
    let after = s.meta.tag_states(&name).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        after[0].pulled_at.is_some_and(|t| (now - t).abs() < 60),
        "{after:?}"
    );
    assert_eq!(
        s.reg.flush_pulls().await.unwrap(),
        0,
        "nothing pending, nothing written"
    );
    assert_eq!(s.meta.record_pulls_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retention_removes_an_index_and_the_platform_images_it_leaves_untagged() {
    let s = setup(retention(vec![RetentionRule {
        keep_last: Some(1),
        ..rule("multi")
    }]));
    let name = repo("multi");
    let mut children = Vec::new();
    for platform in ["amd64", "arm64"] {
        let bytes = image_bytes(&s.reg, &name, platform).await;
        let digest = Digest::sha256_of(&bytes);
        let size = bytes.len();
        s.reg
            .put_manifest(&name, &Reference::Digest(digest.clone()), None, bytes)
            .await
            .unwrap();
        children.push((digest, size));
    }
    let entries: Vec<String> = children
        .iter()
        .map(|(d, size)| format!(r#"{{"mediaType":"{IMAGE}","digest":"{d}","size":{size}}}"#))
        .collect();
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    ));
    let index_digest = s
        .reg
        .put_manifest(&name, &"old".parse().unwrap(), None, index)
        .await
        .unwrap()
        .digest;
    age_tag(&s.db, "multi", "old", 2);
    // A newer single image that also tags one of the children keeps it.
    s.reg
        .put_manifest(
            &name,
            &"new".parse().unwrap(),
            None,
            image_bytes(&s.reg, &name, "arm64").await,
        )
        .await
        .unwrap();
    let report = gc(&s.reg, false).await;
    assert_eq!(removed(&report, RemovalKind::Tag), ["old"]);
    assert!(!has_manifest(&s.meta, &name, &index_digest).await);
    assert!(
        !has_manifest(&s.meta, &name, &children[0].0).await,
        "the amd64 image went with its index"
    );
    assert!(
        has_manifest(&s.meta, &name, &children[1].0).await,
        "the arm64 image is tagged `new`"
    );
    assert_eq!(report.manifests_removed, 2);
}

#[tokio::test]
async fn an_index_holding_an_image_keeps_it_when_retention_removes_its_tag() {
    let s = setup(retention(vec![RetentionRule {
        keep_last: Some(1),
        ..rule("held")
    }]));
    let name = repo("held");
    let bytes = image_bytes(&s.reg, &name, "amd64").await;
    let size = bytes.len();
    let image = s
        .reg
        .put_manifest(&name, &"old".parse().unwrap(), None, bytes)
        .await
        .unwrap()
        .digest;
    age_tag(&s.db, "held", "old", 2);
    let index = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX}","manifests":[{{"mediaType":"{IMAGE}","digest":"{image}","size":{size}}}]}}"#
    ));
    s.reg
        .put_manifest(&name, &"new".parse().unwrap(), None, index)
        .await
        .unwrap();
    let report = gc(&s.reg, false).await;
    assert_eq!(removed(&report, RemovalKind::Tag), ["old"]);
    assert_eq!(report.manifests_removed, 0);
    assert!(has_manifest(&s.meta, &name, &image).await);
}

#[tokio::test]
async fn quota_use_is_reported_for_repositories_under_a_quota() {
    let s = setup(Policies {
        quotas: vec![QuotaRule {
            repositories: pattern("team/*"),
            quota: Quota {
                max_bytes: Some(1 << 20),
                max_tags: Some(10),
            },
        }],
        ..Default::default()
    });
    let (a, free) = (repo("team/a"), repo("free"));
    push_image(&s.reg, &a, "v1", "one").await;
    push_image(&s.reg, &a, "v2", "two").await;
    push_image(&s.reg, &free, "v1", "one").await;
    let uses = s.reg.quota_usage().await.unwrap();
    assert_eq!(uses.len(), 1, "{uses:?}");
    let usage = &uses[0];
    assert_eq!(usage.repository, "team/a");
    assert_eq!((usage.tags, usage.max_tags), (2, Some(10)));
    assert_eq!(usage.max_bytes, Some(1 << 20));
    let expected = s.meta.repository_usage(&a).await.unwrap().stored_bytes;
    assert_eq!(usage.used_bytes, expected);
    // Two manifests, one config `{}` shared, two layers of 14 bytes.
    assert!(expected > 2 + 14 + 14, "{expected}");
    assert!(s.reg.repository_quota(&free).await.unwrap().is_none());
}

#[tokio::test]
async fn a_registry_with_policies_refuses_moving_an_immutable_tag_and_keeps_it() {
    let s = setup(Policies {
        immutable: vec![ImmutableRule {
            repositories: pattern("*"),
            tags: vec![pattern("v*")],
        }],
        ..Default::default()
    });
    let name = repo("app");
    let first = push_image(&s.reg, &name, "v1", "one").await;
    assert_eq!(
        push_image(&s.reg, &name, "v1", "one").await,
        first,
        "same digest: fine"
    );
    let other = image_bytes(&s.reg, &name, "two").await;
    let err = s
        .reg
        .put_manifest(&name, &"v1".parse().unwrap(), None, other)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TagImmutable { ref current, .. } if *current == first),
        "{err}"
    );
    assert_eq!(
        s.meta
            .manifest_by_tag(&name, &tag("v1"))
            .await
            .unwrap()
            .unwrap()
            .digest,
        first
    );
}

#[tokio::test]
async fn an_immutable_tag_cannot_be_deleted_by_name_or_through_its_manifest() {
    let s = setup(Policies {
        immutable: vec![ImmutableRule {
            repositories: pattern("*"),
            tags: vec![pattern("v*")],
        }],
        ..Default::default()
    });
    let name = repo("app");
    let kept = push_image(&s.reg, &name, "v1", "one").await;
    let loose = push_image(&s.reg, &name, "dev", "two").await;
    for reference in [Reference::Tag(tag("v1")), Reference::Digest(kept.clone())] {
        let err = s.reg.delete_manifest(&name, &reference).await.unwrap_err();
        assert!(
            matches!(err, Error::ImmutableTagDelete { ref tag, .. } if tag == "v1"),
            "{reference}: {err}"
        );
    }
    assert!(has_manifest(&s.meta, &name, &kept).await);
    assert_eq!(tags_of(&s.reg, &name).await, ["dev", "v1"]);
    // Tags no rule covers, and their manifests, delete as before.
    s.reg
        .delete_manifest(&name, &Reference::Tag(tag("dev")))
        .await
        .unwrap();
    s.reg
        .delete_manifest(&name, &Reference::Digest(loose.clone()))
        .await
        .unwrap();
    assert!(!has_manifest(&s.meta, &name, &loose).await);
}

#[tokio::test]
async fn signatures_attached_by_tag_go_with_their_image_and_take_no_keep_last_place() {
    let s = setup(retention(vec![RetentionRule {
        keep_last: Some(1),
        ..rule("signed")
    }]));
    let name = repo("signed");
    let old = push_image(&s.reg, &name, "v1", "one").await;
    age_tag(&s.db, "signed", "v1", 2);
    let new = push_image(&s.reg, &name, "v2", "two").await;
    let old_sig_tag = format!("sha256-{}.sig", old.hex());
    let new_sig_tag = format!("sha256-{}.sig", new.hex());
    let old_sig = push_image(&s.reg, &name, &old_sig_tag, "signature of one").await;
    push_image(&s.reg, &name, &new_sig_tag, "signature of two").await;
    // Signatures pushed after v2: newer, yet v2 is still "the newest one".
    let report = gc(&s.reg, false).await;
    let mut expected = vec!["v1".to_string(), old_sig_tag.clone()];
    expected.sort();
    assert_eq!(removed(&report, RemovalKind::Tag), expected);
    let mut left = vec!["v2".to_string(), new_sig_tag];
    left.sort();
    assert_eq!(tags_of(&s.reg, &name).await, left);
    assert!(!has_manifest(&s.meta, &name, &old).await);
    assert!(
        !has_manifest(&s.meta, &name, &old_sig).await,
        "the signature image went too"
    );
    assert_eq!(report.manifests_removed, 2);
    let why = report
        .removed
        .iter()
        .find(|r| r.name == old_sig_tag)
        .unwrap();
    assert!(why.reason.contains("attached to"), "{}", why.reason);
}
