//! The images pushers build: a config unique to each push (so every manifest
//! is unique and a digest that went away never comes back) and one to three
//! layers drawn mostly from a small hot set shared by every pusher, so that a
//! HEAD answering 200 and the upload being skipped is the common case.

use bytes::Bytes;

use super::super::content::Pool;
use crate::http::OCI_MANIFEST;
use crate::push::Rng;

pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A blob to push: its digest, size and bytes (zero-copy pieces).
#[derive(Clone)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub pieces: Vec<Bytes>,
}

pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Bytes,
    pub digest: String,
}

impl Image {
    /// Push `seq` of pusher `pusher`: `hot` blobs per size class are shared,
    /// one layer in five comes from the whole pool (pushed rarely, so often
    /// collected between two uses).
    pub fn build(
        pool: &Pool,
        hot: u32,
        run_id: u64,
        pusher: usize,
        seq: u64,
        rng: &mut Rng,
    ) -> Image {
        let config = Bytes::from(
            serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": { "type": "layers", "diff_ids": [] },
                "config": { "Labels": { "org.berth.soak": format!("{run_id:016x}/p{pusher}/{seq}") } },
            })
            .to_string(),
        );
        let config = Blob {
            digest: crate::http::sha256_digest(&config),
            size: config.len() as u64,
            pieces: vec![config],
        };
        let mut ids = Vec::new();
        for _ in 0..1 + rng.next_u64() % 3 {
            let id = if rng.next_u64().is_multiple_of(5) {
                pool.pick(rng)
            } else {
                pool.pick_hot(hot, rng)
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let layers: Vec<Blob> = ids
            .into_iter()
            .map(|id| Blob {
                digest: pool.digest(id),
                size: pool.size(id),
                pieces: pool.slice(id, 0, pool.size(id)),
            })
            .collect();
        let desc = |media_type: &str, b: &Blob| serde_json::json!({ "mediaType": media_type, "digest": b.digest, "size": b.size });
        let manifest = Bytes::from(
            serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": desc(CONFIG_TYPE, &config),
                "layers": layers.iter().map(|l| desc(LAYER_TYPE, l)).collect::<Vec<_>>(),
            })
            .to_string(),
        );
        let digest = crate::http::sha256_digest(&manifest);
        Image {
            config,
            layers,
            manifest,
            digest,
        }
    }

    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }
}

/// The blobs a manifest names (config and layers) with their sizes; None if
/// it is not an image manifest the soak pushed.
pub fn referenced(manifest: &[u8]) -> Option<Vec<(String, u64)>> {
    let v: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let desc = |d: &serde_json::Value| {
        Some((
            d.get("digest")?.as_str()?.to_string(),
            d.get("size")?.as_u64()?,
        ))
    };
    let mut out = vec![desc(v.get("config")?)?];
    for l in v.get("layers")?.as_array()? {
        out.push(desc(l)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_push_is_a_new_manifest_that_names_its_blobs() {
        let pool = Pool::new(8 << 20);
        let mut rng = Rng::seeded(7);
        let a = Image::build(&pool, 4, 1, 0, 1, &mut rng);
        let b = Image::build(&pool, 4, 1, 0, 2, &mut rng);
        assert_ne!(a.digest, b.digest);
        let named = referenced(&a.manifest).unwrap();
        let blobs: Vec<(String, u64)> = a.blobs().map(|b| (b.digest.clone(), b.size)).collect();
        assert_eq!(named, blobs);
        for b in a.blobs() {
            let bytes: Vec<u8> = b.pieces.concat();
            assert_eq!(crate::http::sha256_digest(&bytes), b.digest);
        }
    }
}
