//! `Range` and `Content-Range` parsing, and the range arithmetic behind it:
//! nothing panics or overflows, a parsed value renders back to itself, and a
//! resolved range lies inside the blob with the semantics RFC 9110 gives it.
#![no_main]

use berth_registry::{Error, RangeRequest};
use berth_server::range_header::{parse_content_range, parse_range, ContentRangeError};
use libfuzzer_sys::fuzz_target;

/// The canonical text of a request, for the round trip.
fn render(r: RangeRequest) -> Option<String> {
    match r {
        RangeRequest::Bounded(a, b) => Some(format!("bytes={a}-{b}")),
        RangeRequest::From(a) => Some(format!("bytes={a}-")),
        RangeRequest::Suffix(n) => Some(format!("bytes=-{n}")),
        RangeRequest::Invalid => None,
    }
}

/// Sizes around the numbers in the request, where off-by-ones live.
fn sizes_for(r: RangeRequest) -> Vec<u64> {
    let mut sizes = vec![0, 1, 2, 100, u64::MAX - 1, u64::MAX];
    let (a, b) = match r {
        RangeRequest::Bounded(a, b) => (a, b),
        RangeRequest::From(a) | RangeRequest::Suffix(a) => (a, a),
        RangeRequest::Invalid => (0, 0),
    };
    for n in [a, b] {
        sizes.extend([n.saturating_sub(1), n, n.saturating_add(1)]);
    }
    sizes
}

fn check_resolve(r: RangeRequest, size: u64) {
    match r.resolve(size) {
        Ok(range) => {
            assert!(range.start <= range.end && range.end < size, "{r:?} {size}");
            assert_eq!(range.length(), range.end - range.start + 1);
            match r {
                RangeRequest::Bounded(a, b) => {
                    assert_eq!((range.start, range.end), (a, b.min(size - 1)));
                }
                RangeRequest::From(a) => assert_eq!((range.start, range.end), (a, size - 1)),
                RangeRequest::Suffix(n) => {
                    assert_eq!(range.end, size - 1);
                    assert_eq!(range.length(), n.min(size));
                }
                RangeRequest::Invalid => panic!("an invalid range resolved"),
            }
        }
        Err(Error::RangeNotSatisfiable { size: reported }) => {
            assert_eq!(reported, size);
            let satisfiable = match r {
                RangeRequest::Bounded(a, b) => a <= b && a < size,
                RangeRequest::From(a) => a < size,
                RangeRequest::Suffix(n) => n > 0 && size > 0,
                RangeRequest::Invalid => false,
            };
            assert!(!satisfiable, "{r:?} refused for {size}");
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

fn check_content_range(input: &str) {
    let bare = parse_content_range(input, None);
    if let Ok(range) = bare {
        assert!(range.start <= range.end);
        let len = range.length().unwrap_or_default();
        assert!(len > 0, "{input:?} parsed with an overflowing length");
        let again = parse_content_range(&format!("{}-{}", range.start, range.end), Some(len));
        assert_eq!(again, Ok(range));
    }
    for content_length in [0, 1, u64::MAX] {
        let checked = parse_content_range(input, Some(content_length));
        match (&bare, &checked) {
            (Ok(range), Ok(same)) => {
                assert_eq!(range, same);
                assert_eq!(range.length(), Some(content_length));
            }
            (Ok(range), Err(ContentRangeError::LengthMismatch { range: len, .. })) => {
                assert_eq!(range.length(), Some(*len));
                assert_ne!(*len, content_length);
            }
            // The length is checked last: a refusal without it is the same with it.
            (Err(e), Err(same)) => assert_eq!(e, same),
            (bare, checked) => panic!("{input:?}: {bare:?} then {checked:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let request = parse_range(input);
    if let Some(text) = render(request) {
        assert_eq!(
            parse_range(&text),
            request,
            "{input:?} rendered as {text:?}"
        );
    }
    for size in sizes_for(request) {
        check_resolve(request, size);
    }
    check_content_range(input);
});
