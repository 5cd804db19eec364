//! Reading the parts of a request the handlers need: query parameters,
//! the body as a byte stream, and the registry-specific headers.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderMap};
use berth_registry::registry::RangeRequest;
use berth_registry::{ByteStream, ChunkRange, Error};
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

/// `Range: bytes=a-b | bytes=a- | bytes=-n` on blob GET.
pub fn range_request(headers: &HeaderMap) -> Result<Option<RangeRequest>, ApiError> {
    let Some(value) = header_str(headers, &header::RANGE) else {
        return Ok(None);
    };
    let invalid = || ApiError::from(Error::RangeNotSatisfiable { size: 0 });
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(invalid)?;
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| invalid());
    Ok(Some(match (a.trim().is_empty(), b.trim().is_empty()) {
        (false, false) => RangeRequest::Bounded(num(a)?, num(b)?),
        (false, true) => RangeRequest::From(num(a)?),
        (true, false) => RangeRequest::Suffix(num(b)?),
        (true, true) => return Err(invalid()),
    }))
}

/// What a chunk's body must hold: its first byte and length, from
/// `Content-Range` (else the length from `Content-Length`), so that a body
/// longer or shorter than announced is refused before anything is kept.
pub fn chunk(headers: &HeaderMap) -> Result<ChunkRange, ApiError> {
    Ok(match chunk_range(headers)? {
        Some((a, b)) => ChunkRange {
            start: Some(a),
            len: (b - a).checked_add(1),
        },
        None => ChunkRange {
            start: None,
            len: content_length(headers),
        },
    })
}

/// `Content-Range: a-b` on PATCH (the spec's form; `bytes a-b/*` is also
/// taken): the chunk's inclusive byte range, if any.
fn chunk_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = header_str(headers, &header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::from(Error::BlobUploadInvalid(format!(
            "invalid Content-Range {value:?}"
        )))
    };
    let spec = value
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let spec = spec.split('/').next().unwrap_or("");
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let a: u64 = a.trim().parse().map_err(|_| invalid())?;
    let b: u64 = b.trim().parse().map_err(|_| invalid())?;
    if b < a {
        return Err(invalid());
    }
    if let Some(len) = content_length(headers) {
        if Some(len) != (b - a).checked_add(1) {
            return Err(invalid());
        }
    }
    Ok(Some((a, b)))
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
    fn range_forms() {
        let r = |v: &str| range_request(&headers(&[(header::RANGE, v)]));
        assert_eq!(r("bytes=0-9").unwrap(), Some(RangeRequest::Bounded(0, 9)));
        assert_eq!(r("bytes=5-").unwrap(), Some(RangeRequest::From(5)));
        assert_eq!(r("bytes=-3").unwrap(), Some(RangeRequest::Suffix(3)));
        assert!(r("bytes=x-1").is_err());
        assert!(r("items=0-1").is_err());
    }

    #[test]
    fn content_range_forms() {
        let s = |v: &str, len: Option<&str>| {
            let mut h = headers(&[(header::CONTENT_RANGE, v)]);
            if let Some(len) = len {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from_str(len).unwrap());
            }
            chunk(&h).map(|c| (c.start, c.len))
        };
        assert_eq!(s("0-99", Some("100")).unwrap(), (Some(0), Some(100)));
        assert_eq!(s("bytes 100-199/*", None).unwrap(), (Some(100), Some(100)));
        assert_eq!(
            s("0-18446744073709551615", None).unwrap(),
            (Some(0), None),
            "a length past u64 does not wrap"
        );
        assert!(s("0-18446744073709551615", Some("0")).is_err());
        assert!(s("5-1", None).is_err());
        assert!(s("0-99", Some("10")).is_err());
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
