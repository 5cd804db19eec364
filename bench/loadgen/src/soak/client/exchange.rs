//! Sending one request and judging its answer: the status the spec
//! requires, headers, a timeout over the whole exchange.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;

use super::{Client, Failed, Step};
use crate::http::{location, Chunks};
use crate::soak::stats::Kind;

/// A response read in full.
pub(super) struct Answer {
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Client {
    /// Sends a request, reads the whole answer, and checks its status.
    pub(super) async fn call(
        &mut self,
        kind: Kind,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Chunks,
        want: StatusCode,
    ) -> Step<Answer> {
        let started = Instant::now();
        let exchange = async {
            let resp = self
                .conn
                .request(method.clone(), path, headers, body)
                .await?;
            let status = resp.status();
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((status, parts.headers, body))
        };
        let result = tokio::time::timeout(self.shared.timeout, exchange).await;
        let stats = &self.shared.stats;
        match result {
            Err(_) => self.fail(
                kind,
                format!(
                    "{method} {path}: no answer within {:?}",
                    self.shared.timeout
                ),
            ),
            Ok(Err(e)) => self.fail(kind, describe(&method, path, &e)),
            Ok(Ok((status, headers, body))) => {
                stats.answered(kind, started.elapsed());
                if status != want {
                    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                    return self.fail(
                        kind,
                        format!("{method} {path}: got {status}, want {want}: {text}"),
                    );
                }
                Ok(Answer { headers, body })
            }
        }
    }

    pub(super) fn fail<T>(&self, kind: Kind, message: String) -> Step<T> {
        self.shared.stats.error(kind, message);
        Err(Failed)
    }

    /// Checks a header's value; a mismatch is an error of `kind`.
    pub(super) fn expect_header(&self, kind: Kind, a: &Answer, name: &str, want: &str) -> Step {
        match a.headers.get(name).and_then(|v| v.to_str().ok()) {
            Some(got) if got == want => Ok(()),
            got => self.fail(
                kind,
                format!("{} {name}: got {got:?}, want {want:?}", self.repo),
            ),
        }
    }

    pub(super) fn location(&self, kind: Kind, a: &Answer) -> Step<String> {
        location(&a.headers).or_else(|e| self.fail(kind, format!("{}: {e}", self.repo)))
    }
}

/// A failed exchange, named by its request once (the connection's own
/// errors already carry it).
pub(super) fn describe(method: &Method, path: &str, e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let name = format!("{method} {path}");
    if text.starts_with(&name) {
        text
    } else {
        format!("{name}: {text}")
    }
}
