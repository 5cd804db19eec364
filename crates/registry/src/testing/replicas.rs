//! The promises several processes sharing one [`MetaStore`] rely on:
//! sessions advanced by compare-and-set, leases, shared values, and the
//! whole-repository listings `berth migrate` walks.

use super::meta_store::{manifest, repo, tag};
use super::publish_link;
use crate::storage::{MetaStore, PutOptions, UploadLimits, UploadProgress, UploadSession};
use berth_oci::Digest;
use std::sync::Arc;
use std::time::Duration;

fn progress(offset: u64, store_state: &[u8]) -> UploadProgress {
    UploadProgress {
        offset,
        hash_state: Some(format!("hash of {offset}").into_bytes()),
        store_state: store_state.to_vec(),
    }
}

/// Of many appends racing from one offset, exactly one is recorded, and
/// the session then holds its progress; an append from a stale offset is
/// refused without changing anything.
pub async fn upload_sessions_advance_by_compare_and_set(meta: Arc<dyn MetaStore>) {
    let session = UploadSession {
        id: "kit-cas".into(),
        repository: repo("kit-cas"),
        offset: 0,
        updated_at: 100,
        client: None,
        hash_state: None,
        store_state: Vec::new(),
    };
    let limits = UploadLimits {
        total: usize::MAX,
        per_client: usize::MAX,
    };
    meta.create_upload(&session, limits).await.unwrap();
    let racers: Vec<_> = (1..=16u64)
        .map(|i| {
            let meta = meta.clone();
            tokio::spawn(async move {
                let to = progress(i * 10, format!("writer {i}").as_bytes());
                let won = meta.advance_upload("kit-cas", 0, &to, 200).await.unwrap();
                won.then_some(to)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        winners.extend(racer.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one append from offset 0 wins");
    let held = meta.upload("kit-cas").await.unwrap().unwrap();
    let won = &winners[0];
    assert_eq!(
        (held.offset, &held.hash_state, &held.store_state),
        (won.offset, &won.hash_state, &won.store_state)
    );
    let stale = progress(999, b"late");
    assert!(!meta
        .advance_upload("kit-cas", 0, &stale, 300)
        .await
        .unwrap());
    assert_eq!(meta.upload("kit-cas").await.unwrap().unwrap(), held);
    meta.delete_upload("kit-cas").await.unwrap();
}

/// A lease belongs to one holder at a time; its holder renews it; another
/// takes it once it is released or has expired.
pub async fn leases_are_exclusive_until_released_or_expired(meta: &dyn MetaStore) {
    let hour = Duration::from_secs(3600);
    assert!(meta.try_lease("kit-lease", "a", hour).await.unwrap());
    assert!(!meta.try_lease("kit-lease", "b", hour).await.unwrap());
    assert!(
        meta.try_lease("kit-lease", "a", hour).await.unwrap(),
        "renewed"
    );
    assert!(meta.try_lease("kit-other-lease", "b", hour).await.unwrap());
    meta.release_lease("kit-lease", "b").await.unwrap(); // not b's: no effect
    assert!(!meta.try_lease("kit-lease", "b", hour).await.unwrap());
    meta.release_lease("kit-lease", "a").await.unwrap();
    assert!(meta
        .try_lease("kit-lease", "b", Duration::ZERO)
        .await
        .unwrap());
    // b's lease ended at once (its end is in the past after a second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        meta.try_lease("kit-lease", "a", hour).await.unwrap(),
        "expired"
    );
    meta.release_lease("kit-lease", "a").await.unwrap();
    meta.release_lease("kit-other-lease", "b").await.unwrap();
}

/// The first value stored under a name is the one everyone reads.
pub async fn shared_secrets_keep_the_first_value(meta: &dyn MetaStore) {
    let first = meta
        .shared_secret("kit-secret", b"first".to_vec())
        .await
        .unwrap();
    assert_eq!(first, b"first");
    let second = meta
        .shared_secret("kit-secret", b"second".to_vec())
        .await
        .unwrap();
    assert_eq!(second, b"first");
    let other = meta
        .shared_secret("kit-other-secret", vec![0, 1, 2, 255])
        .await
        .unwrap();
    assert_eq!(other, [0, 1, 2, 255]);
}

/// Every link and every manifest of a repository can be walked in pages,
/// sorted by digest, and only that repository's.
pub async fn repositories_list_their_links_and_manifests(meta: &dyn MetaStore) {
    let (a, b) = (repo("kit-walk/a"), repo("kit-walk/b"));
    let mut layers: Vec<Digest> = (0..5)
        .map(|i| Digest::sha256_of(format!("kit-walk layer {i}").as_bytes()))
        .collect();
    for layer in &layers {
        publish_link(meta, &a, layer, 11).await;
    }
    publish_link(meta, &b, &layers[0], 11).await;
    let mut manifests = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let m = Digest::sha256_of(format!("kit-walk manifest {i}").as_bytes());
        let record = manifest(&m, vec![(layer.clone(), 11)], None);
        meta.put_manifest(
            &a,
            &record,
            Some(&tag(&format!("v{i}"))),
            &PutOptions::default(),
        )
        .await
        .unwrap();
        manifests.push(m);
    }
    layers.sort();
    manifests.sort();
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = meta.repository_links(&a, after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some((last, _)) = page.last().cloned() else {
            break;
        };
        walked.extend(page);
        after = Some(last);
    }
    let sizes: Vec<u64> = walked.iter().map(|(_, size)| *size).collect();
    let digests: Vec<Digest> = walked.into_iter().map(|(d, _)| d).collect();
    // Manifests are not links: only the five layers.
    assert_eq!(digests, layers);
    assert!(sizes.iter().all(|s| *s == 11));
    let rows = meta.repository_manifests(&a, None, 100).await.unwrap();
    let got: Vec<Digest> = rows.iter().map(|r| r.digest.clone()).collect();
    assert_eq!(got, manifests);
    assert!(rows.iter().all(|r| r.size == 100));
    let rest = meta
        .repository_manifests(&a, Some(&manifests[2]), 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(meta.repository_links(&b, None, 100).await.unwrap().len(), 1);
    assert!(meta
        .repository_manifests(&repo("kit-walk/none"), None, 10)
        .await
        .unwrap()
        .is_empty());
}
