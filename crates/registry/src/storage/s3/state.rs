//! What an S3 upload holds so far, as opaque bytes the registry keeps in its
//! metadata session: the multipart upload's id, the ETag of every part sent,
//! and the temporary objects holding the bytes short of a whole part. Any
//! replica can continue the upload from it; nothing lives in one process.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Every part but the last is exactly this long, so a part's number follows
/// from its offset (`offset / PART_SIZE + 1`) and a part sent twice by two
/// replicas lands on the same number instead of shifting the ones after it.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;

/// Temporary tail objects an upload may gather before the next append folds
/// them into one (a client sending many tiny chunks).
pub(super) const MAX_TAILS: usize = 16;

/// An upload in progress. Invariants: parts are numbered 1..=n, each exactly
/// [`PART_SIZE`] long; the tails follow them, contiguous, shorter than a part
/// in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UploadRecord {
    /// The multipart upload at the upload's `data` key, once a part exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<String>,
    /// `(part number, ETag)` of each part, in order.
    #[serde(default)]
    pub parts: Vec<(u32, String)>,
    /// `(object name within the upload's folder, length)` of each tail.
    #[serde(default)]
    pub tails: Vec<(String, u64)>,
}

impl UploadRecord {
    /// Reads a state written by [`UploadRecord::encode`]; empty bytes are a
    /// fresh upload.
    pub fn decode(bytes: &[u8]) -> Result<UploadRecord> {
        if bytes.is_empty() {
            return Ok(UploadRecord::default());
        }
        let state: UploadRecord = serde_json::from_slice(bytes)
            .map_err(|e| Error::BlobUploadInvalid(format!("unreadable s3 upload state: {e}")))?;
        state.check()?;
        Ok(state)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Bytes held: whole parts, then the tails.
    pub fn len(&self) -> u64 {
        self.parts_len() + self.tail_len()
    }

    pub fn parts_len(&self) -> u64 {
        self.parts.len() as u64 * PART_SIZE
    }

    pub fn tail_len(&self) -> u64 {
        self.tails.iter().map(|(_, len)| len).sum()
    }

    /// The number the next part gets.
    pub fn next_part_number(&self) -> u32 {
        self.parts.len() as u32 + 1
    }

    fn check(&self) -> Result<()> {
        let numbered = self
            .parts
            .iter()
            .enumerate()
            .all(|(i, (n, _))| *n as usize == i + 1);
        let parts_need_multipart = self.parts.is_empty() || self.multipart.is_some();
        if numbered && parts_need_multipart && self.tail_len() < PART_SIZE {
            Ok(())
        } else {
            Err(Error::BlobUploadInvalid(
                "inconsistent s3 upload state".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bytes_are_a_fresh_upload() {
        assert_eq!(UploadRecord::decode(b"").unwrap(), UploadRecord::default());
    }

    #[test]
    fn a_state_round_trips_and_counts_its_bytes() {
        let state = UploadRecord {
            multipart: Some("mp-1".into()),
            parts: vec![(1, "\"e1\"".into()), (2, "\"e2\"".into())],
            tails: vec![("tail-a".into(), 5), ("tail-b".into(), 7)],
        };
        let back = UploadRecord::decode(&state.encode()).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.len(), 2 * PART_SIZE + 12);
        assert_eq!(back.next_part_number(), 3);
    }

    #[test]
    fn gaps_in_parts_or_a_tail_of_a_whole_part_are_refused() {
        let gap = UploadRecord {
            multipart: Some("mp".into()),
            parts: vec![(1, "a".into()), (3, "b".into())],
            tails: vec![],
        };
        assert!(UploadRecord::decode(&gap.encode()).is_err());
        let long_tail = UploadRecord {
            tails: vec![("t".into(), PART_SIZE)],
            ..UploadRecord::default()
        };
        assert!(UploadRecord::decode(&long_tail.encode()).is_err());
        let parts_without_upload = UploadRecord {
            parts: vec![(1, "a".into())],
            ..UploadRecord::default()
        };
        assert!(UploadRecord::decode(&parts_without_upload.encode()).is_err());
        assert!(UploadRecord::decode(b"not json").is_err());
    }
}
