//! Content digests (`algorithm:hex`) and the hashers that produce them.
//!
//! Only the algorithms the image spec registers are accepted (sha256 and
//! sha512), and only in their canonical form: lower-case hex of the exact
//! length. Anything else is rejected here so no invalid digest reaches storage.

use crate::midstate::{self, Midstate};
use std::fmt;
use std::str::FromStr;

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> DigestHasher {
        match self {
            Algorithm::Sha256 => DigestHasher::Sha256(Midstate::default()),
            Algorithm::Sha512 => DigestHasher::Sha512(Midstate::default()),
        }
    }
}

/// Why a string is not a digest we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest must have the form algorithm:encoded")]
    Malformed,
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("{algorithm} digest must be {expected} lower-case hex characters")]
    BadEncoding {
        algorithm: &'static str,
        expected: usize,
    },
}

/// A validated digest such as `sha256:e3b0c442…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex-encoded part after the colon.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut hasher = Algorithm::Sha256.hasher();
        hasher.update(bytes);
        hasher.finish()
    }

    /// The digest of `bytes` under this digest's algorithm.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut hasher = self.algorithm.hasher();
        hasher.update(bytes);
        hasher.finish() == *self
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, hex) = s.split_once(':').ok_or(DigestError::Malformed)?;
        if algorithm.is_empty() || hex.is_empty() {
            return Err(DigestError::Malformed);
        }
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_string())),
        };
        let canonical = hex.len() == algorithm.hex_len()
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !canonical {
            return Err(DigestError::BadEncoding {
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing for one algorithm, fed as bytes arrive; its state
/// can be saved and resumed elsewhere ([`DigestHasher::save`]).
#[derive(Clone)]
pub enum DigestHasher {
    Sha256(Midstate<midstate::Sha256>),
    Sha512(Midstate<midstate::Sha512>),
}

impl DigestHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            DigestHasher::Sha256(_) => Algorithm::Sha256,
            DigestHasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self {
            DigestHasher::Sha256(h) => (Algorithm::Sha256, h.finish()),
            DigestHasher::Sha512(h) => (Algorithm::Sha512, h.finish()),
        };
        Digest {
            algorithm,
            hex: hex::encode(bytes),
        }
    }

    /// The state after the bytes seen so far, to continue hashing later
    /// (after a restart, or on another replica) with [`DigestHasher::resume`].
    pub fn save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200);
        match self {
            DigestHasher::Sha256(h) => {
                out.push(SAVED_SHA256);
                h.save(&mut out);
            }
            DigestHasher::Sha512(h) => {
                out.push(SAVED_SHA512);
                h.save(&mut out);
            }
        }
        out
    }

    /// A hasher continuing from a [`DigestHasher::save`]d state; `None` if
    /// `saved` is not one.
    pub fn resume(saved: &[u8]) -> Option<DigestHasher> {
        match saved.split_first()? {
            (&SAVED_SHA256, rest) => Midstate::resume(rest).map(DigestHasher::Sha256),
            (&SAVED_SHA512, rest) => Midstate::resume(rest).map(DigestHasher::Sha512),
            _ => None,
        }
    }
}

/// First byte of a saved state: which algorithm it belongs to.
const SAVED_SHA256: u8 = 1;
const SAVED_SHA512: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_canonical_sha256() {
        let d: Digest = EMPTY_SHA256.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        assert_eq!(Digest::sha256_of(b""), d);
    }

    /// Every split of messages around the block and padding boundaries,
    /// saved and resumed at the split, agrees with `sha2`'s one-shot hash.
    #[test]
    fn saved_and_resumed_hashes_agree_with_sha2() {
        use sha2::Digest as _;
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in (0..300).chain([511, 512, 513, 640, 700]) {
            let message = &data[..len];
            let want256 = hex::encode(sha2::Sha256::digest(message));
            let want512 = hex::encode(sha2::Sha512::digest(message));
            for split in [0, 1, len / 3, len / 2, len.saturating_sub(1), len] {
                let split = split.min(len);
                for (algorithm, want) in
                    [(Algorithm::Sha256, &want256), (Algorithm::Sha512, &want512)]
                {
                    let mut first = algorithm.hasher();
                    first.update(&message[..split]);
                    let mut resumed = DigestHasher::resume(&first.save()).unwrap();
                    resumed.update(&message[split..]);
                    assert_eq!(
                        &resumed.finish().hex,
                        want,
                        "{algorithm:?} {len} at {split}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_resumed_hash_refuses_what_was_not_saved() {
        let mut h = Algorithm::Sha256.hasher();
        h.update(b"some bytes");
        let saved = h.save();
        assert!(DigestHasher::resume(&saved[..saved.len() - 1]).is_none());
        assert!(DigestHasher::resume(&[]).is_none());
        assert!(DigestHasher::resume(&[9, 0, 0]).is_none());
        let mut other = saved.clone();
        other[0] = 2; // a sha256 state read as sha512
        assert!(DigestHasher::resume(&other).is_none());
    }

    #[test]
    fn accepts_sha512_of_the_right_length() {
        let mut h = Algorithm::Sha512.hasher();
        h.update(b"abc");
        let d = h.finish();
        assert_eq!(d.hex().len(), 128);
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(d.matches(b"abc"));
        assert!(!d.matches(b"abd"));
    }

    #[test]
    fn rejects_non_canonical_digests() {
        let upper = EMPTY_SHA256.to_uppercase().replacen("SHA256", "sha256", 1);
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:abc",
            upper.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unknown_algorithms_are_unsupported_not_malformed() {
        assert_eq!(
            "md5:d41d8cd98f00b204e9800998ecf8427e".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm("md5".into()))
        );
    }
}
