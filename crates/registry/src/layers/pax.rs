//! PAX extended headers (`x` members): the records a listing needs.
//!
//! Parsed here rather than by the `tar` crate because the crate reads them
//! (and GNU long names) whole into memory without a bound; the lister reads
//! them itself, capped at [`super::listing::MAX_EXTENSION_BYTES`].

/// The PAX records that change what a listing shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct PaxRecords {
    pub path: Option<String>,
    pub link_path: Option<String>,
    pub size: Option<u64>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<u64>,
    /// `GNU.sparse.realsize` / `GNU.sparse.size`: a sparse file's logical size.
    pub sparse_size: Option<u64>,
    /// `GNU.sparse.name`: a sparse file's real name (PAX sparse 0.1 and 1.0).
    pub sparse_name: Option<String>,
}

impl PaxRecords {
    /// Parses `LEN KEY=VALUE\n` records; malformed ones end the parse
    /// with an error message.
    pub fn parse(data: &[u8]) -> Result<PaxRecords, String> {
        let mut records = PaxRecords::default();
        let mut rest = data;
        while !rest.is_empty() {
            if rest.iter().all(|b| *b == 0) {
                break; // padding some writers leave
            }
            let space = rest
                .iter()
                .position(|b| *b == b' ')
                .ok_or("PAX record without a length")?;
            let len: usize = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("PAX record length is not a number")?;
            if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
                return Err("PAX record length does not match its content".into());
            }
            let record = &rest[space + 1..len - 1];
            let eq = record
                .iter()
                .position(|b| *b == b'=')
                .ok_or("PAX record without '='")?;
            records.apply(&record[..eq], &record[eq + 1..]);
            rest = &rest[len..];
        }
        Ok(records)
    }

    fn apply(&mut self, key: &[u8], value: &[u8]) {
        let text = || String::from_utf8_lossy(value).into_owned();
        // Times may carry a fraction ("1700000000.123456789"): whole seconds suffice.
        let number = || {
            let text = String::from_utf8_lossy(value);
            text.split('.').next().and_then(|n| n.parse::<u64>().ok())
        };
        match key {
            b"path" => self.path = Some(text()),
            b"linkpath" => self.link_path = Some(text()),
            b"size" => self.size = number(),
            b"uid" => self.uid = number(),
            b"gid" => self.gid = number(),
            b"mtime" => self.mtime = number(),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => self.sparse_size = number(),
            b"GNU.sparse.name" => self.sparse_name = Some(text()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &str) -> Vec<u8> {
        // The length counts itself: find the fixed point.
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while len.to_string().len() + body.len() != len {
            len += 1;
        }
        format!("{len}{body}").into_bytes()
    }

    #[test]
    fn reads_the_records_a_listing_uses_and_ignores_others() {
        let mut data = record("path", "a/very/long/name");
        data.extend(record("SCHILY.xattr.user.x", "y"));
        data.extend(record("mtime", "1700000000.5"));
        data.extend(record("size", "12345678901"));
        let r = PaxRecords::parse(&data).unwrap();
        assert_eq!(r.path.as_deref(), Some("a/very/long/name"));
        assert_eq!(r.mtime, Some(1_700_000_000));
        assert_eq!(r.size, Some(12_345_678_901));
        assert_eq!(r.link_path, None);
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        for bad in [
            &b"5 path"[..],
            b"x path=a\n",
            b"99 path=a\n",
            b"3 a\n",
            b"7 path\n",
        ] {
            assert!(
                PaxRecords::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
