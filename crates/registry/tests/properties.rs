//! Property tests: the range arithmetic for any blob size and request, and
//! pagination of tags and repositories over the real fs + SQLite stores.
//! Case counts are modest so the suite stays fast; `PROPTEST_CASES` raises them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::storage::fs::FsBlobStore;
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{ByteStream, Error, Page, RangeRequest, Registry, RegistryOptions};
use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::{stream, StreamExt};
use proptest::prelude::*;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        ..ProptestConfig::default()
    }
}

/// Sizes and positions that mix the small, the boundaries and the huge.
fn position() -> impl Strategy<Value = u64> {
    prop_oneof![0..16u64, any::<u64>(), (0..4u64).prop_map(|d| u64::MAX - d),]
}

fn range_request() -> impl Strategy<Value = RangeRequest> {
    prop_oneof![
        (position(), position()).prop_map(|(a, b)| RangeRequest::Bounded(a, b)),
        position().prop_map(RangeRequest::From),
        position().prop_map(RangeRequest::Suffix),
        Just(RangeRequest::Invalid),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_resolved_range_lies_inside_the_blob_with_its_request_semantics(
        request in range_request(),
        size in position(),
    ) {
        match request.resolve(size) {
            Ok(range) => {
                prop_assert!(range.start <= range.end);
                prop_assert!(range.end < size);
                prop_assert_eq!(range.length(), range.end - range.start + 1);
                match request {
                    RangeRequest::Bounded(a, b) => {
                        prop_assert_eq!((range.start, range.end), (a, b.min(size - 1)));
                    }
                    RangeRequest::From(a) => {
                        prop_assert_eq!((range.start, range.end), (a, size - 1));
                    }
                    RangeRequest::Suffix(n) => {
                        prop_assert_eq!(range.end, size - 1);
                        prop_assert_eq!(range.length(), n.min(size));
                    }
                    RangeRequest::Invalid => prop_assert!(false, "Invalid resolved"),
                }
            }
            Err(Error::RangeNotSatisfiable { size: reported }) => {
                prop_assert_eq!(reported, size, "a 416 names the blob's size");
                let satisfiable = match request {
                    RangeRequest::Bounded(a, b) => a <= b && a < size,
                    RangeRequest::From(a) => a < size,
                    RangeRequest::Suffix(n) => n > 0 && size > 0,
                    RangeRequest::Invalid => false,
                };
                prop_assert!(!satisfiable, "{:?} refused for size {}", request, size);
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    /// A prefix `bytes=0-k` and the rest `bytes=k+1-` split the blob exactly.
    #[test]
    fn a_prefix_and_its_remainder_cover_the_blob_once(size in 1..u64::MAX, cut in any::<u64>()) {
        let k = cut % size;
        let head = RangeRequest::Bounded(0, k).resolve(size).unwrap();
        prop_assert_eq!(head.length(), k + 1);
        match RangeRequest::From(k + 1).resolve(size) {
            Ok(tail) => {
                prop_assert_eq!(tail.start, head.end + 1);
                prop_assert_eq!(head.length() + tail.length(), size);
            }
            Err(_) => prop_assert_eq!(head.length(), size),
        }
    }
}

// ---- pagination over the real stores ----------------------------------------

fn open(dir: &Path) -> Registry {
    Registry::new(
        Arc::new(FsBlobStore::open(dir).unwrap()),
        Arc::new(SqliteMetaStore::open(&dir.join("meta.db")).unwrap()),
        RegistryOptions::default(),
    )
}

fn body(bytes: &'static [u8]) -> ByteStream<'static> {
    stream::iter([Ok(Bytes::from_static(bytes))]).boxed()
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Pushes one small image into `repo` and tags it with each of `tags`.
async fn push_tagged(reg: &Registry, repo: &RepositoryName, tags: &[String]) {
    let config = Digest::sha256_of(b"{}");
    let layer = Digest::sha256_of(b"hello");
    reg.push_blob(repo, &config, body(b"{}"), None)
        .await
        .unwrap();
    reg.push_blob(repo, &layer, body(b"hello"), None)
        .await
        .unwrap();
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":5}}]}}"#
    ));
    let digest = Digest::sha256_of(&manifest);
    reg.put_manifest(repo, &Reference::Digest(digest), None, manifest.clone())
        .await
        .unwrap();
    // Concurrent, so the store's group commit makes them one transaction.
    let references: Vec<Reference> = tags.iter().map(|t| t.parse().unwrap()).collect();
    join_all(
        references
            .iter()
            .map(|reference| reg.put_manifest(repo, reference, None, manifest.clone())),
    )
    .await
    .into_iter()
    .for_each(|pushed| {
        pushed.unwrap();
    });
}

/// Walks every page of size `n` from the start; checks each page on the way.
async fn walk<F, Fut>(n: usize, expected: usize, page: F) -> Vec<String>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Page>,
{
    let mut seen = Vec::new();
    let mut last = None;
    // More pages than items would mean the walk is not making progress.
    for _ in 0..=expected + 1 {
        let Page { items, next } = page(last.clone()).await;
        assert!(items.len() <= n, "a page of {} for n={n}", items.len());
        seen.extend(items.iter().cloned());
        match next {
            Some(next) => {
                assert_eq!(items.len(), n, "only a full page has a next");
                assert_eq!(Some(&next), items.last(), "next is the page's last item");
                assert!(seen.len() < expected, "next after the last item");
                last = Some(next);
            }
            None => {
                assert_eq!(seen.len(), expected, "no next before the end");
                return seen;
            }
        }
    }
    panic!("pagination with n={n} did not end");
}

fn tag() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,6}"
}

fn repository() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,3}([._-][a-z0-9]{1,2})?(/[a-z0-9]{1,3})?"
}

// Each case builds a store on disk, so fewer of them.
proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn tag_pages_yield_each_tag_once_in_order(
        tags in prop::collection::btree_set(tag(), 0..12),
        sizes in prop::collection::vec(1..16usize, 1..4),
    ) {
        let tags: Vec<String> = tags.into_iter().collect();
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let reg = open(dir.path());
            let repo: RepositoryName = "app".parse().unwrap();
            push_tagged(&reg, &repo, &tags).await;
            for n in sizes {
                let seen = walk(n, tags.len(), |last| {
                    let (reg, repo) = (&reg, &repo);
                    async move { reg.tags(repo, last.as_deref(), Some(n)).await.unwrap() }
                })
                .await;
                assert_eq!(seen, tags, "n={n}");
            }
            let empty = reg.tags(&repo, None, Some(0)).await.unwrap();
            assert_eq!(empty, Page { items: vec![], next: None }, "n=0");
            let all = reg.tags(&repo, None, None).await.unwrap();
            assert_eq!(all, Page { items: tags.clone(), next: None }, "no n");
        });
    }

    #[test]
    fn catalog_pages_yield_each_repository_once_in_order(
        repos in prop::collection::btree_set(repository(), 0..8),
        sizes in prop::collection::vec(1..10usize, 1..4),
    ) {
        let repos: Vec<String> = repos.into_iter().collect();
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let reg = open(dir.path());
            let names: Vec<RepositoryName> = repos.iter().map(|r| r.parse().unwrap()).collect();
            join_all(names.iter().map(|name| push_tagged(&reg, name, &[]))).await;
            for n in sizes {
                let seen = walk(n, repos.len(), |last| {
                    let reg = &reg;
                    async move { reg.catalog(last.as_deref(), Some(n)).await.unwrap() }
                })
                .await;
                assert_eq!(seen, repos, "n={n}");
            }
        });
    }
}
