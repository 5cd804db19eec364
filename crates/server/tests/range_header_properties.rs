//! Property tests of the `Range`/`Content-Range` parsers feeding the range
//! arithmetic: well-formed headers parse to what they say, anything at all
//! parses without panicking, and a resolved range stays inside the blob.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use berth_registry::{Error, RangeRequest};
use berth_server::range_header::{parse_content_range, parse_range, ContentRangeError};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

fn position() -> impl Strategy<Value = u64> {
    prop_oneof![0..32u64, any::<u64>(), (0..3u64).prop_map(|d| u64::MAX - d)]
}

/// Text that looks like a range header: digits, dashes, commas, units, space.
fn header_like() -> impl Strategy<Value = String> {
    "(bytes|Bytes|items)?[ =]?[0-9 ,+-]{0,24}(/[0-9*]{0,3})?"
}

/// The request must resolve inside the blob, or be a 416 naming its size.
fn assert_resolves_inside(request: RangeRequest, size: u64) -> Result<(), TestCaseError> {
    match request.resolve(size) {
        Ok(r) => prop_assert!(r.start <= r.end && r.end < size, "{:?} {}", request, size),
        Err(Error::RangeNotSatisfiable { size: s }) => prop_assert_eq!(s, size),
        Err(e) => prop_assert!(false, "unexpected {:?}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn well_formed_ranges_parse_to_what_they_say(a in position(), b in position()) {
        let (first, last) = (a.min(b), a.max(b));
        prop_assert_eq!(
            parse_range(&format!("bytes={first}-{last}")),
            RangeRequest::Bounded(first, last)
        );
        prop_assert_eq!(parse_range(&format!("bytes={a}-")), RangeRequest::From(a));
        prop_assert_eq!(parse_range(&format!("bytes=-{a}")), RangeRequest::Suffix(a));
        if first < last {
            prop_assert_eq!(
                parse_range(&format!("bytes={last}-{first}")),
                RangeRequest::Invalid
            );
        }
        prop_assert_eq!(
            parse_range(&format!("bytes={a}-{b},{a}-{b}")),
            RangeRequest::Invalid,
            "several ranges"
        );
    }

    #[test]
    fn any_range_header_resolves_inside_the_blob_or_is_a_416(
        header in prop_oneof![header_like(), any::<String>()],
        size in position(),
    ) {
        assert_resolves_inside(parse_range(&header), size)?;
    }

    #[test]
    fn well_formed_content_ranges_parse_and_check_their_length(
        a in position(),
        b in position(),
        declared in proptest::option::of(position()),
    ) {
        let (start, end) = (a.min(b), a.max(b));
        let parsed = parse_content_range(&format!("{start}-{end}"), declared);
        match (end - start).checked_add(1) {
            None => prop_assert_eq!(parsed, Err(ContentRangeError::TooLong { start, end })),
            Some(len) if declared.is_some_and(|d| d != len) => {
                prop_assert!(
                    matches!(parsed, Err(ContentRangeError::LengthMismatch { .. })),
                    "{:?}",
                    parsed
                );
            }
            Some(len) => {
                let range = parsed.unwrap();
                prop_assert_eq!((range.start, range.end, range.length()), (start, end, Some(len)));
            }
        }
    }

    #[test]
    fn any_content_range_parses_without_panicking_to_a_sane_range(
        header in prop_oneof![header_like(), any::<String>()],
        declared in proptest::option::of(position()),
    ) {
        if let Ok(range) = parse_content_range(&header, declared) {
            prop_assert!(range.start <= range.end);
            let len = range.length();
            prop_assert!(len.is_some());
            if let Some(declared) = declared {
                prop_assert_eq!(len, Some(declared));
            }
        }
    }
}
