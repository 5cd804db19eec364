//! Tags and references: what parses displays back to its input; a reference
//! is a digest exactly when it has a colon, and a tag obeys the spec's pattern.
#![no_main]

use berth_oci::{Digest, Reference, Tag};
use libfuzzer_sys::fuzz_target;

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match input.parse::<Tag>() {
        Ok(tag) => {
            assert!(is_tag(input), "tag {input:?} accepted");
            assert_eq!(tag.to_string(), input);
            assert_eq!(tag.as_str(), input);
        }
        Err(_) => assert!(!is_tag(input), "tag {input:?} rejected"),
    }
    match input.parse::<Reference>() {
        Ok(reference) => {
            assert_eq!(reference.to_string(), input);
            match reference {
                Reference::Tag(t) => assert_eq!(Ok(t), input.parse::<Tag>()),
                Reference::Digest(d) => assert_eq!(Ok(d), input.parse::<Digest>()),
            }
        }
        Err(_) => {
            assert!(input.parse::<Tag>().is_err() && input.parse::<Digest>().is_err());
        }
    }
});
