//! The promises of [`BlobStore`] and [`MetaStore`] as executable checks.
//!
//! Every backend runs these: the filesystem and SQLite stores in their unit
//! tests, S3 and PostgreSQL when they arrive. A backend that passes can be
//! put under the registry without touching it.

use crate::error::Error;
use crate::storage::{BlobStore, ByteRange, ByteStream, ManifestRecord, MetaStore, UploadSession};
use berth_oci::{Digest, RepositoryName, Tag};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};

fn body(parts: &[&'static [u8]]) -> ByteStream<'static> {
    let chunks: Vec<_> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
    stream::iter(chunks).boxed()
}

async fn collect(s: ByteStream<'static>) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.try_collect().await.expect("stream reads");
    chunks.concat()
}

/// Uploads are private until committed, appends are all-or-nothing, reads
/// honour ranges, and `put` publishes small content.
pub async fn blob_store(store: &dyn BlobStore) {
    let digest = Digest::sha256_of(b"hello world");
    store.create_upload("u1").await.unwrap();
    let n = store
        .append_upload("u1", 0, body(&[b"hello", b" "]))
        .await
        .unwrap();
    assert_eq!(n, 6);
    let broken = stream::iter(vec![
        Ok(Bytes::from_static(b"XXX")),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    assert!(matches!(
        store.append_upload("u1", 6, broken).await,
        Err(Error::BodyRead(_))
    ));
    let n = store
        .append_upload("u1", 6, body(&[b"world"]))
        .await
        .unwrap();
    assert_eq!(n, 11);
    assert_eq!(
        collect(store.read_upload("u1").await.unwrap()).await,
        b"hello world"
    );
    assert!(
        store.read(&digest, None).await.unwrap().is_none(),
        "visible before commit"
    );

    store.commit_upload("u1", &digest).await.unwrap();
    let all = store
        .read(&digest, None)
        .await
        .unwrap()
        .expect("committed blob");
    assert_eq!(collect(all.into_stream()).await, b"hello world");
    let part = store
        .read(&digest, Some(ByteRange { start: 6, end: 10 }))
        .await
        .unwrap();
    assert_eq!(collect(part.unwrap().into_stream()).await, b"world");

    assert!(matches!(
        store.append_upload("nope", 0, body(&[b"x"])).await,
        Err(Error::BlobUploadUnknown)
    ));
    store.delete_upload("nope").await.unwrap();

    let small = Digest::sha256_of(b"{}");
    store.put(&small, Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(
        collect(
            store
                .read(&small, None)
                .await
                .unwrap()
                .unwrap()
                .into_stream()
        )
        .await,
        b"{}"
    );
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

fn manifest(digest: &Digest, blobs: Vec<(Digest, u64)>, subject: Option<Digest>) -> ManifestRecord {
    ManifestRecord {
        digest: digest.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 100,
        artifact_type: Some("application/x.test".into()),
        subject,
        annotations: None,
        blobs,
        manifests: vec![],
    }
}

/// Blob links are per repository, manifests check their references in one
/// transaction, tags move and delete independently, listings are sorted
/// keyset pages, referrers and upload sessions are queryable.
pub async fn meta_store(meta: &dyn MetaStore) {
    let (a, b) = (repo("a"), repo("b/c"));
    let layer = Digest::sha256_of(b"layer");
    meta.link_blob(&a, &layer, 5).await.unwrap();
    assert_eq!(meta.blob_size(&a, &layer).await.unwrap(), Some(5));
    assert_eq!(meta.blob_size(&b, &layer).await.unwrap(), None);

    let m1 = Digest::sha256_of(b"m1");
    let missing = manifest(&m1, vec![(Digest::sha256_of(b"absent"), 1)], None);
    let err = meta
        .put_manifest(&a, &missing, Some(&tag("v1")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestBlobUnknown(_)));
    assert_eq!(
        meta.list_tags(&a, None, 10).await.unwrap(),
        None,
        "nothing half-written"
    );
    let wrong_size = manifest(&m1, vec![(layer.clone(), 6)], None);
    let err = meta.put_manifest(&a, &wrong_size, None).await.unwrap_err();
    assert!(matches!(err, Error::ManifestSizeMismatch { .. }));

    meta.put_manifest(
        &a,
        &manifest(&m1, vec![(layer.clone(), 5)], None),
        Some(&tag("v1")),
    )
    .await
    .unwrap();
    meta.put_manifest(
        &a,
        &manifest(&m1, vec![(layer.clone(), 5)], None),
        Some(&tag("latest")),
    )
    .await
    .unwrap();
    let by_tag = meta.manifest_by_tag(&a, &tag("v1")).await.unwrap().unwrap();
    assert_eq!(by_tag.digest, m1);
    assert!(meta.manifest_by_digest(&a, &m1).await.unwrap().is_some());
    assert_eq!(
        meta.list_tags(&a, None, 10).await.unwrap().unwrap(),
        vec!["latest", "v1"]
    );
    assert_eq!(
        meta.list_tags(&a, Some("latest"), 10)
            .await
            .unwrap()
            .unwrap(),
        vec!["v1"]
    );

    let referrer = Digest::sha256_of(b"sig");
    meta.put_manifest(&a, &manifest(&referrer, vec![], Some(m1.clone())), None)
        .await
        .unwrap();
    let found = meta.referrers(&a, &m1, None).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, referrer);
    assert!(meta
        .referrers(&a, &m1, Some("other/type"))
        .await
        .unwrap()
        .is_empty());

    assert!(meta.delete_tag(&a, &tag("latest")).await.unwrap());
    assert!(meta
        .manifest_by_tag(&a, &tag("v1"))
        .await
        .unwrap()
        .is_some());
    meta.put_manifest(&b, &manifest(&Digest::sha256_of(b"m2"), vec![], None), None)
        .await
        .unwrap();
    assert_eq!(
        meta.list_repositories(None, 10).await.unwrap(),
        vec!["a", "b/c"]
    );
    assert_eq!(
        meta.list_repositories(Some("a"), 10).await.unwrap(),
        vec!["b/c"]
    );
    assert!(meta.delete_manifest(&a, &m1).await.unwrap());
    assert!(meta.delete_manifest(&a, &referrer).await.unwrap());
    assert_eq!(meta.list_tags(&a, None, 10).await.unwrap(), None);
    assert_eq!(meta.list_repositories(None, 10).await.unwrap(), vec!["b/c"]);
    assert!(meta.unlink_blob(&a, &layer).await.unwrap());
    assert!(!meta.unlink_blob(&a, &layer).await.unwrap());

    let session = UploadSession {
        id: "s1".into(),
        repository: a.clone(),
        offset: 0,
        updated_at: 100,
    };
    meta.create_upload(&session).await.unwrap();
    meta.set_upload_offset("s1", 42, 200).await.unwrap();
    let read = meta.upload("s1").await.unwrap().unwrap();
    assert_eq!((read.offset, read.updated_at), (42, 200));
    assert_eq!(meta.stale_uploads(150).await.unwrap(), Vec::<String>::new());
    assert_eq!(
        meta.stale_uploads(250).await.unwrap(),
        vec!["s1".to_string()]
    );
    meta.delete_upload("s1").await.unwrap();
    assert!(meta.upload("s1").await.unwrap().is_none());
}
