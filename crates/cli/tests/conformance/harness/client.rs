//! Pushes through the HTTP API: blobs, manifests and whole images.

use reqwest::{Method, Response};

use super::assert::header;
use super::content::*;
use super::process::Registry;
use super::urls::with_query;

impl Registry {
    // ---- blobs -------------------------------------------------------------

    /// Opens an upload session and returns its absolute URL.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .send(self.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
            .await;
        assert_eq!(resp.status(), 202, "POST /v2/{repo}/blobs/uploads/");
        self.resolve(header(&resp, "location").expect("upload Location"))
    }

    /// One PATCH of `chunk` to an upload, with `Content-Range: START-END` when
    /// `range` is given; the response is the caller's to check.
    pub async fn patch_chunk(
        &self,
        location: &str,
        range: Option<(usize, usize)>,
        chunk: &[u8],
    ) -> Response {
        let mut request = self
            .client
            .patch(location)
            .header("content-type", "application/octet-stream")
            .body(chunk.to_vec());
        if let Some((start, end)) = range {
            request = request.header("content-range", format!("{start}-{end}"));
        }
        self.send(request).await
    }

    /// Pushes a blob with POST then PUT (the flow every registry must support); returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let location = self.start_upload(repo).await;
        let resp = self
            .send(
                self.client
                    .put(with_query(&location, "digest", &digest))
                    .header("content-type", "application/octet-stream")
                    .body(bytes.to_vec()),
            )
            .await;
        assert_eq!(resp.status(), 201, "closing PUT for {digest} in {repo}");
        digest
    }

    /// A monolithic upload in one `POST ?digest=`; the response is the caller's to check.
    pub async fn post_blob(&self, repo: &str, digest: &str, bytes: Vec<u8>) -> Response {
        self.send(
            self.request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes),
        )
        .await
    }

    /// Uploads `bytes` and returns a descriptor of them with `media_type`.
    pub async fn push_descriptor(&self, repo: &str, media_type: &str, bytes: &[u8]) -> Descriptor {
        self.push_blob(repo, bytes).await;
        Descriptor::of(media_type, bytes)
    }

    // ---- manifests ---------------------------------------------------------

    /// PUTs a manifest (`media_type` as Content-Type unless empty) and returns the raw response.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        let mut request = self
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .body(body.to_vec());
        if !media_type.is_empty() {
            request = request.header("content-type", media_type);
        }
        self.send(request).await
    }

    /// PUTs a manifest that must be accepted; returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        let status = resp.status();
        if status != 201 {
            let text = resp.text().await.unwrap_or_default();
            panic!("PUT manifest {repo}:{reference} expected 201, got {status}: {text}");
        }
        sha256_digest(body)
    }

    /// Pushes a small image (config + one layer) under `tag`.
    pub async fn push_image(&self, repo: &str, tag: &str) -> Image {
        let config = self
            .push_descriptor(repo, OCI_CONFIG, &random_config())
            .await;
        let layer = self
            .push_descriptor(repo, OCI_LAYER, &random_bytes(2048))
            .await;
        let manifest = ManifestBuilder::image(&config, std::slice::from_ref(&layer)).build();
        let digest = self.push_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        Image {
            digest,
            manifest,
            config,
            layers: vec![layer],
        }
    }
}

/// An image pushed by [`Registry::push_image`].
pub struct Image {
    pub digest: String,
    pub manifest: Vec<u8>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl Image {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(OCI_MANIFEST, &self.manifest)
    }
}
