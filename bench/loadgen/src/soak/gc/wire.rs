//! One request with a deadline, read in full, and what the GC soak needs to
//! judge the answer: the status, the OCI error code of a failure body, a header.

use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;

use crate::http::{Chunks, Conn};

/// A response read in full.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The first `errors[].code` of an OCI error body, if the body is one.
    pub fn code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some(v.get("errors")?.get(0)?.get("code")?.as_str()?.to_string())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `STATUS CODE: first bytes of the body`, for error messages.
    pub fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(160)]).into_owned();
        format!("{} {}", self.status.as_u16(), text.trim())
    }
}

/// Sends one request and reads the whole answer within `timeout`.
pub async fn send(
    conn: &mut Conn,
    timeout: Duration,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Chunks,
) -> Result<Reply> {
    let exchange = async {
        let resp = conn.request(method.clone(), path, headers, body).await?;
        let status = resp.status();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, anyhow::Error>(Reply {
            status,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r.map_err(|e| anyhow!("{method} {path}: {e:#}")),
        Err(_) => Err(anyhow!("{method} {path}: no answer within {timeout:?}")),
    }
}
