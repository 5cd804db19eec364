//! Byte ranges a client asks for (`Range`), resolved against a blob's size.

use crate::error::{Error, Result};
use crate::storage::ByteRange;

/// What a client asked for in a `Range` header, before knowing the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=a-b`
    Bounded(u64, u64),
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
    /// A `Range` header that cannot be served (malformed, several ranges, another
    /// unit). Kept as a value so the 416 can name the blob's real size, and a
    /// blob that does not exist is still a 404.
    Invalid,
}

impl RangeRequest {
    /// The bytes this request covers in a blob of `size` bytes; `Invalid`,
    /// and anything starting at or past the end, is `RangeNotSatisfiable`.
    pub fn resolve(self, size: u64) -> Result<ByteRange> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        let (start, end) = match self {
            RangeRequest::Bounded(a, b) if a <= b && a < size => (a, b.min(size - 1)),
            RangeRequest::From(a) if a < size => (a, size - 1),
            RangeRequest::Suffix(n) if n > 0 && size > 0 => (size - n.min(size), size - 1),
            RangeRequest::Bounded(..)
            | RangeRequest::From(_)
            | RangeRequest::Suffix(_)
            | RangeRequest::Invalid => return Err(unsatisfiable),
        };
        Ok(ByteRange { start, end })
    }
}
