//! Digests: a parsed digest displays back to its input, is canonical
//! (lower-case hex of its algorithm's length), and survives serde; the digest
//! of any bytes parses back to itself and matches those bytes.
#![no_main]

use berth_oci::{Algorithm, Digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        if let Ok(digest) = input.parse::<Digest>() {
            assert_eq!(digest.to_string(), input);
            let (algorithm, hex) = input.split_once(':').unwrap_or_default();
            assert_eq!(algorithm, digest.algorithm().as_str());
            assert_eq!(hex, digest.hex());
            assert_eq!(hex.len(), digest.algorithm().hex_len());
            assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            let json = serde_json::to_string(&digest).unwrap_or_default();
            assert_eq!(serde_json::from_str::<Digest>(&json).ok(), Some(digest));
        }
    }
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        let mut hasher = algorithm.hasher();
        hasher.update(data);
        let digest = hasher.finish();
        assert_eq!(digest.algorithm(), algorithm);
        assert!(digest.matches(data));
        assert_eq!(digest.to_string().parse::<Digest>().as_ref(), Ok(&digest));
    }
});
