//! Pure parsing of the two byte-range headers berth reads: `Range` on a blob
//! GET and `Content-Range` on an upload chunk. No HTTP types, so the fuzz
//! targets and property tests call exactly what the handlers call.
//!
//! Both parsers take the header's text and never do arithmetic that can
//! overflow: the sizes they see come from the network.

use berth_registry::RangeRequest;
use std::fmt;

/// Parses a `Range` header value (RFC 9110 §14.2) for a single byte range.
///
/// Never fails: what berth cannot serve (another unit, several ranges,
/// garbage) becomes [`RangeRequest::Invalid`], which the registry answers
/// with 416 once it knows the blob's size. A last-byte position or suffix
/// length beyond `u64` is clamped, since it means "to the end" either way.
pub fn parse_range(value: &str) -> RangeRequest {
    parse_range_spec(value).unwrap_or(RangeRequest::Invalid)
}

fn parse_range_spec(value: &str) -> Option<RangeRequest> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    // One range only: a multipart/byteranges answer is not worth its cost here.
    let (first, last) = spec.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    Some(match (first.is_empty(), last.is_empty()) {
        (false, false) => {
            let first = exact_position(first)?;
            let last = clamped_position(last)?;
            if last < first {
                return None;
            }
            RangeRequest::Bounded(first, last)
        }
        (false, true) => RangeRequest::From(exact_position(first)?),
        (true, false) => RangeRequest::Suffix(clamped_position(last)?),
        (true, true) => return None,
    })
}

/// Whether `s` is a non-empty run of ASCII digits (`u64::from_str` also takes `+`).
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A position that must be exact: one past `u64` cannot be inside any blob.
fn exact_position(s: &str) -> Option<u64> {
    if is_digits(s) {
        s.parse().ok()
    } else {
        None
    }
}

/// A position or length where "more than `u64`" means the same as `u64::MAX`.
fn clamped_position(s: &str) -> Option<u64> {
    is_digits(s).then(|| s.parse().unwrap_or(u64::MAX))
}

/// The bytes an upload chunk claims to hold: `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// The number of bytes in the chunk; `None` for `0-18446744073709551615`,
    /// whose length is one more than `u64` holds.
    pub fn length(self) -> Option<u64> {
        (self.end - self.start).checked_add(1)
    }
}

/// Why a `Content-Range` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentRangeError {
    /// Not `a-b`, `bytes a-b[/total]` or `bytes=a-b[/total]` with decimal numbers.
    Malformed,
    /// The last byte comes before the first.
    Backwards { start: u64, end: u64 },
    /// The range is longer than any body can be.
    TooLong { start: u64, end: u64 },
    /// `Content-Length` says the body holds a different number of bytes.
    LengthMismatch { range: u64, content_length: u64 },
}

impl fmt::Display for ContentRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentRangeError::Malformed => f.write_str("Content-Range must be <start>-<end>"),
            ContentRangeError::Backwards { start, end } => {
                write!(f, "Content-Range {start}-{end} ends before it starts")
            }
            ContentRangeError::TooLong { start, end } => {
                write!(
                    f,
                    "Content-Range {start}-{end} is longer than a body can be"
                )
            }
            ContentRangeError::LengthMismatch {
                range,
                content_length,
            } => write!(
                f,
                "Content-Range covers {range} bytes but Content-Length is {content_length}"
            ),
        }
    }
}

impl std::error::Error for ContentRangeError {}

/// Parses a chunk's `Content-Range` and checks it against `Content-Length`.
///
/// The spec's form is `<start>-<end>`; `bytes <start>-<end>/<total|*>` (RFC
/// 9110) and `bytes=<start>-<end>` are taken too, as clients send them.
pub fn parse_content_range(
    value: &str,
    content_length: Option<u64>,
) -> Result<ChunkRange, ContentRangeError> {
    let range = parse_chunk_range(value)?;
    let len = range.length().ok_or(ContentRangeError::TooLong {
        start: range.start,
        end: range.end,
    })?;
    match content_length {
        Some(content_length) if content_length != len => Err(ContentRangeError::LengthMismatch {
            range: len,
            content_length,
        }),
        _ => Ok(range),
    }
}

fn parse_chunk_range(value: &str) -> Result<ChunkRange, ContentRangeError> {
    let value = value.trim();
    let spec = match value.get(..5) {
        Some(unit) if unit.eq_ignore_ascii_case("bytes") => value[5..]
            .strip_prefix(['=', ' '])
            .ok_or(ContentRangeError::Malformed)?
            .trim_start(),
        _ => value,
    };
    let spec = match spec.split_once('/') {
        Some((spec, total)) => {
            let total = total.trim();
            if total != "*" && !is_digits(total) {
                return Err(ContentRangeError::Malformed);
            }
            spec
        }
        None => spec,
    };
    let (start, end) = spec.split_once('-').ok_or(ContentRangeError::Malformed)?;
    let start = exact_position(start.trim()).ok_or(ContentRangeError::Malformed)?;
    let end = exact_position(end.trim()).ok_or(ContentRangeError::Malformed)?;
    if end < start {
        return Err(ContentRangeError::Backwards { start, end });
    }
    Ok(ChunkRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_forms() {
        assert_eq!(parse_range("bytes=0-9"), RangeRequest::Bounded(0, 9));
        assert_eq!(parse_range(" bytes = 5 - "), RangeRequest::From(5));
        assert_eq!(parse_range("Bytes=-3"), RangeRequest::Suffix(3));
        assert_eq!(parse_range("bytes=7-7"), RangeRequest::Bounded(7, 7));
    }

    #[test]
    fn range_that_berth_cannot_serve_is_invalid() {
        for bad in [
            "bytes=abc",
            "bytes=x-1",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=-",
            "bytes=",
            "bytes=5-1",
            "bytes=+5-",
            "bytes=-+5",
            "bytes=0x10-",
            "bytes 0-1",
            "",
            "bytes=18446744073709551616-",
        ] {
            assert_eq!(parse_range(bad), RangeRequest::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn range_past_u64_means_to_the_end() {
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999"),
            RangeRequest::Bounded(0, u64::MAX)
        );
        assert_eq!(
            parse_range("bytes=-99999999999999999999999"),
            RangeRequest::Suffix(u64::MAX)
        );
    }

    #[test]
    fn content_range_forms() {
        let ok = |v, len| parse_content_range(v, len).map(|r| (r.start, r.end));
        assert_eq!(ok("0-99", Some(100)), Ok((0, 99)));
        assert_eq!(ok("bytes 100-199/*", None), Ok((100, 199)));
        assert_eq!(ok("bytes=100-199", None), Ok((100, 199)));
        assert_eq!(ok("bytes 100-199/5000", None), Ok((100, 199)));
        assert_eq!(ok(" 5 - 5 ", Some(1)), Ok((5, 5)));
    }

    #[test]
    fn content_range_refusals() {
        let err = |v, len| parse_content_range(v, len).unwrap_err();
        assert_eq!(
            err("5-1", None),
            ContentRangeError::Backwards { start: 5, end: 1 }
        );
        assert_eq!(
            err("0-99", Some(10)),
            ContentRangeError::LengthMismatch {
                range: 100,
                content_length: 10
            }
        );
        for bad in [
            "garbage",
            "zero-nine",
            "bytes",
            "bytesbytes 0-1",
            "0-1/x",
            "+0-1",
            "0-",
            "-1",
            "",
        ] {
            assert_eq!(err(bad, None), ContentRangeError::Malformed, "{bad:?}");
        }
    }

    /// `b - a + 1` overflowed here: a panic in debug builds, and in release a
    /// length of 0 that matched `Content-Length: 0`.
    #[test]
    fn content_range_whose_length_overflows_u64_is_refused() {
        let whole = "0-18446744073709551615";
        let too_long = ContentRangeError::TooLong {
            start: 0,
            end: u64::MAX,
        };
        assert_eq!(parse_content_range(whole, Some(0)), Err(too_long.clone()));
        assert_eq!(parse_content_range(whole, None), Err(too_long));
        let longest = parse_content_range("1-18446744073709551615", None).unwrap();
        assert_eq!(longest.length(), Some(u64::MAX));
    }
}
