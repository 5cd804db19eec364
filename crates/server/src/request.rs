//! Reading the parts of a request the handlers need: query parameters,
//! the body as a byte stream, and the registry-specific headers.

use crate::error::ApiError;
use crate::range_header;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use berth_registry::{ByteStream, Error, ExpectedChunk, RangeRequest};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashMap;

/// Query parameters; when a key repeats, the first value wins.
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Forgets a parameter: what the caller may not ask for is not acted on.
    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// `n` for listings; a value that is not a number is a client error.
    pub fn page_size(&self) -> Result<Option<usize>, ApiError> {
        self.get("n")
            .map(|n| {
                n.parse()
                    .map_err(|_| Error::Unsupported(format!("n={n} is not a page size")).into())
            })
            .transpose()
    }
}

pub fn body_stream(body: Body) -> ByteStream<'static> {
    body.into_data_stream()
        .map_err(std::io::Error::other)
        .boxed()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, &header::CONTENT_TYPE)
}

pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, &header::CONTENT_LENGTH).and_then(|v| v.parse().ok())
}

/// Whether the request carries a body (sized and non-empty, or chunked).
pub fn has_body(headers: &HeaderMap) -> bool {
    content_length(headers).is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING)
}

/// Media types listed in `Accept` headers, parameters stripped.
pub fn accepted_types(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Reads a whole body of at most `limit` bytes; `too_large` is the error past it.
pub async fn read_limited(
    body: Body,
    limit: usize,
    too_large: impl Fn() -> Error,
) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::BodyRead(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large().into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The blob GET's `Range`, if any; what cannot be served is `RangeRequest::Invalid`,
/// resolved to a 416 only once the blob's size is known.
pub fn range_request(headers: &HeaderMap) -> Option<RangeRequest> {
    let value = headers.get(header::RANGE)?;
    Some(
        value
            .to_str()
            .map_or(RangeRequest::Invalid, range_header::parse_range),
    )
}

/// What a chunk's body must hold: its first byte and length, from
/// `Content-Range` (checked against `Content-Length`), else the length from
/// `Content-Length`, so that a body longer or shorter than announced is
/// refused before anything is kept.
pub fn chunk(headers: &HeaderMap) -> Result<ExpectedChunk, ApiError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(ExpectedChunk {
            start: None,
            len: content_length(headers),
        });
    };
    let invalid = |why: String| ApiError::from(Error::BlobUploadInvalid(why));
    let value = value
        .to_str()
        .map_err(|_| invalid("Content-Range is not ASCII".into()))?;
    let range = range_header::parse_content_range(value, content_length(headers))
        .map_err(|e| invalid(e.to_string()))?;
    Ok(ExpectedChunk {
        start: Some(range.start),
        len: range.length(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn range_header_absent_invalid_or_parsed() {
        let r = |v: &str| range_request(&headers(&[(header::RANGE, v)]));
        assert_eq!(range_request(&HeaderMap::new()), None);
        assert_eq!(r("bytes=0-9"), Some(RangeRequest::Bounded(0, 9)));
        assert_eq!(r("items=0-1"), Some(RangeRequest::Invalid));
        let mut h = HeaderMap::new();
        h.insert(
            header::RANGE,
            HeaderValue::from_bytes(b"bytes=\xff-").unwrap(),
        );
        assert_eq!(range_request(&h), Some(RangeRequest::Invalid));
    }

    #[test]
    fn content_range_is_checked_against_content_length() {
        let s = |v: &str, len: Option<&str>| {
            let mut h = headers(&[(header::CONTENT_RANGE, v)]);
            if let Some(len) = len {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from_str(len).unwrap());
            }
            chunk(&h).map(|c| (c.start, c.len))
        };
        assert_eq!(
            chunk(&HeaderMap::new()).unwrap(),
            ExpectedChunk {
                start: None,
                len: None
            }
        );
        assert_eq!(s("0-99", Some("100")).unwrap(), (Some(0), Some(100)));
        assert_eq!(s("bytes 100-199/*", None).unwrap(), (Some(100), Some(100)));
        assert!(s("5-1", None).is_err());
        assert!(s("0-99", Some("10")).is_err());
        assert!(s("0-18446744073709551615", Some("0")).is_err());
        assert!(
            s("0-18446744073709551615", None).is_err(),
            "a length past u64"
        );
        assert!(s("garbage", None).is_err());
    }

    #[test]
    fn accept_lists_are_split_and_stripped() {
        let h = headers(&[
            (header::ACCEPT, "application/a, application/b;q=0.5"),
            (header::ACCEPT, "application/c"),
        ]);
        assert_eq!(
            accepted_types(&h),
            vec!["application/a", "application/b", "application/c"]
        );
    }
}
