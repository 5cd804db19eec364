//! [`MarkerObjects`] in an S3 bucket, under the store's root prefix, with
//! the client the S3 blob store itself is built from.

use super::marker::MarkerObjects;
use async_trait::async_trait;
use berth_registry::storage::s3::S3Settings;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use std::time::Duration;

/// Each marker request's deadline: they are a few bytes.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct S3Objects {
    client: AmazonS3,
    bucket: String,
    root: String,
}

impl S3Objects {
    pub fn new(settings: &S3Settings) -> berth_registry::Result<S3Objects> {
        Ok(S3Objects {
            client: settings.client(Some(TIMEOUT))?,
            bucket: settings.bucket.clone(),
            root: settings
                .root
                .as_deref()
                .unwrap_or("")
                .trim_matches('/')
                .to_string(),
        })
    }

    fn path(&self, name: &str) -> Path {
        if self.root.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.root))
        }
    }
}

fn io(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[async_trait]
impl MarkerObjects for S3Objects {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.root)
    }

    async fn get(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        let read = async { self.client.get(&self.path(name)).await?.bytes().await };
        match read.await {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        self.client
            .put(&self.path(name), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(io)
    }

    async fn delete(&self, name: &str) -> std::io::Result<()> {
        match self.client.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}
