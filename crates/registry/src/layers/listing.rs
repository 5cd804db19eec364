//! Walking a layer's tar stream header by header into a [`LayerListing`].
//!
//! File contents are skipped as they stream past (the tar reader discards
//! them in small blocks); only headers and their extensions are kept.

use super::compression::{Compression, SNIFF_LEN};
use super::entry::{is_aufs_metadata, normalize_path, whiteout_of, EntryKind, LayerEntry};
use super::pax::PaxRecords;
use super::LayerError;
use serde::Serialize;
use std::cell::Cell;
use std::io::{self, Cursor, Read};
use std::rc::Rc;
use tar::EntryType;

/// Largest GNU long name or PAX header read: real ones are a few hundred
/// bytes; the `tar` crate would read any size into memory.
pub const MAX_EXTENSION_BYTES: u64 = 64 << 10;

/// How much work one listing may do before it stops with `truncated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingLimits {
    /// Entries kept; a listing with more is cut here.
    pub max_entries: usize,
    /// Decompressed bytes read; bounds the time a gzip bomb can take.
    pub max_uncompressed_bytes: u64,
}

impl Default for ListingLimits {
    fn default() -> Self {
        ListingLimits {
            max_entries: 200_000,
            max_uncompressed_bytes: 64 << 30,
        }
    }
}

/// What one layer adds, changes and deletes, in archive order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerListing {
    pub entries: Vec<LayerEntry>,
    /// Sum of the sizes of the files listed.
    pub total_size: u64,
    /// The listing stopped early at a [`ListingLimits`] bound.
    pub truncated: bool,
    pub compression: Compression,
}

/// Lists the layer whose (possibly compressed) bytes `blob` yields.
///
/// Errors from `blob` itself come back as [`LayerError::Corrupt`] or
/// [`LayerError::NotATar`] like any other read failure; a caller whose
/// source can fail for its own reasons tells those apart itself.
pub fn list_layer(mut blob: impl Read, limits: &ListingLimits) -> Result<LayerListing, LayerError> {
    let prefix = read_prefix(&mut blob).map_err(|e| corrupt(0, &e))?;
    let compression = Compression::sniff(&prefix)?;
    let mut decoded = compression.decoder(Cursor::new(prefix).chain(blob));
    let head = read_prefix(&mut decoded).map_err(|e| corrupt(0, &e))?;
    if compression != Compression::None {
        if let Err(LayerError::NotATar(why)) = Compression::sniff(&head) {
            return Err(LayerError::NotATar(format!("decompressed, {why}")));
        }
    }
    let over_limit = Rc::new(Cell::new(false));
    let capped = Capped {
        inner: Cursor::new(head).chain(decoded),
        left: limits.max_uncompressed_bytes,
        over_limit: over_limit.clone(),
    };
    let mut walk = Walk {
        listing: LayerListing {
            entries: Vec::new(),
            total_size: 0,
            truncated: false,
            compression,
        },
        headers: 0,
        limits: *limits,
    };
    match walk.run(capped) {
        Ok(()) => Ok(walk.listing),
        Err(_) if over_limit.get() => {
            walk.listing.truncated = true;
            Ok(walk.listing)
        }
        Err(e) => Err(walk.classify(e)),
    }
}

fn read_prefix(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(SNIFF_LEN);
    reader.take(SNIFF_LEN as u64).read_to_end(&mut prefix)?;
    Ok(prefix)
}

fn corrupt(entries: usize, e: &io::Error) -> LayerError {
    LayerError::Corrupt {
        entries,
        reason: describe(e),
    }
}

fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "it ends early (truncated)".into()
    } else {
        e.to_string()
    }
}

/// Why a walk stopped before the end of the archive.
enum Stop {
    Io(io::Error),
    Layer(LayerError),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

/// GNU long names and PAX records waiting for the member they describe.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<PaxRecords>,
}

struct Walk {
    listing: LayerListing,
    /// Tar headers read so far: none means the stream was never a tar.
    headers: usize,
    limits: ListingLimits,
}

impl Walk {
    fn run(&mut self, stream: impl Read) -> Result<(), Stop> {
        let mut archive = tar::Archive::new(stream);
        // Raw: long names and PAX headers come to us, to be read with a bound.
        let mut pending = Pending::default();
        for member in archive.entries()?.raw(true) {
            let mut member = member?;
            self.headers += 1;
            let header = member.header();
            let size = header.entry_size()?;
            match header.entry_type() {
                EntryType::GNULongName => {
                    pending.long_name = Some(read_extension(&mut member, size)?);
                    continue;
                }
                EntryType::GNULongLink => {
                    pending.long_link = Some(read_extension(&mut member, size)?);
                    continue;
                }
                EntryType::XHeader => {
                    let data = read_extension(&mut member, size)?;
                    let records = PaxRecords::parse(&data)
                        .map_err(|e| Stop::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
                    pending.pax = Some(records);
                    continue;
                }
                EntryType::XGlobalHeader => continue,
                _ => {}
            }
            let Some(entry) = entry_of(header, std::mem::take(&mut pending))? else {
                continue;
            };
            if self.listing.entries.len() >= self.limits.max_entries {
                self.listing.truncated = true;
                return Ok(());
            }
            if entry.kind == EntryKind::Dir && entry.path.is_empty() {
                continue; // the root folder itself says nothing
            }
            if entry.kind == EntryKind::File {
                self.listing.total_size = self.listing.total_size.saturating_add(entry.size);
            }
            self.listing.entries.push(entry);
        }
        // Past the end-of-archive blocks: read the rest so that a gzip or
        // zstd stream cut short, or failing its checksum, is still noticed.
        io::copy(&mut archive.into_inner(), &mut io::sink())?;
        Ok(())
    }

    /// Before the first header, a failure means the bytes were never a tar.
    fn classify(&self, stop: Stop) -> LayerError {
        match stop {
            Stop::Layer(e) => e,
            Stop::Io(e) if self.headers == 0 => LayerError::NotATar(describe(&e)),
            Stop::Io(e) => corrupt(self.listing.entries.len(), &e),
        }
    }
}

/// Reads a long name or PAX header's data, refusing absurd sizes.
fn read_extension(member: &mut impl Read, size: u64) -> Result<Vec<u8>, Stop> {
    if size > MAX_EXTENSION_BYTES {
        return Err(Stop::Layer(LayerError::Unsupported(format!(
            "an extended header of {size} bytes (at most {MAX_EXTENSION_BYTES} are read)"
        ))));
    }
    let mut data = Vec::with_capacity(size as usize);
    member.read_to_end(&mut data)?;
    // GNU long names end in NULs.
    while data.last() == Some(&0) {
        data.pop();
    }
    Ok(data)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The listing line for one member, its extensions applied; `None` for
/// members that are not part of the image (AUFS metadata).
fn entry_of(header: &tar::Header, pending: Pending) -> Result<Option<LayerEntry>, Stop> {
    let pax = pending.pax.unwrap_or_default();
    let stored = header.entry_size()?;
    if pax.size.is_some_and(|size| size != stored) {
        // The tar crate skips by the header's size in raw mode, so it would
        // lose its place: say so instead of listing garbage.
        return Err(Stop::Layer(LayerError::Unsupported(
            "a member whose size is only given in a PAX record (a file over 8 GiB)".into(),
        )));
    }
    let raw_path = pax
        .sparse_name
        .or(pax.path)
        .or_else(|| pending.long_name.as_deref().map(lossy))
        .unwrap_or_else(|| lossy(&header.path_bytes()));
    let link_target = pax
        .link_path
        .or_else(|| pending.long_link.as_deref().map(lossy))
        .or_else(|| header.link_name_bytes().as_deref().map(lossy));
    let entry_type = header.entry_type();
    let (kind, size) = match entry_type {
        EntryType::Regular | EntryType::Continuous if raw_path.ends_with('/') => {
            (EntryKind::Dir, 0)
        }
        EntryType::Regular | EntryType::Continuous => {
            (EntryKind::File, pax.sparse_size.unwrap_or(stored))
        }
        EntryType::GNUSparse => {
            let gnu = header.as_gnu().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sparse member without a GNU header",
                )
            })?;
            if gnu.is_extended() {
                // Its extra sparse-map blocks are not counted in its size.
                return Err(Stop::Layer(LayerError::Unsupported(
                    "a GNU sparse file with more than four data regions".into(),
                )));
            }
            (EntryKind::File, gnu.real_size()?)
        }
        EntryType::Directory => (EntryKind::Dir, 0),
        EntryType::Symlink => (EntryKind::Symlink, 0),
        EntryType::Link => (EntryKind::Hardlink, 0),
        other => (EntryKind::Other(char::from(other.as_byte())), 0),
    };
    let path = normalize_path(&raw_path);
    if is_aufs_metadata(&path) {
        return Ok(None);
    }
    let (kind, path, size, link_target) = match whiteout_of(&path) {
        Some((whiteout, deleted)) => (whiteout, deleted, 0, None),
        None => {
            let target = match kind {
                EntryKind::Hardlink => link_target.map(|t| normalize_path(&t)),
                EntryKind::Symlink => link_target,
                _ => None,
            };
            (kind, path, size, target)
        }
    };
    Ok(Some(LayerEntry {
        path,
        kind,
        size,
        mode: header.mode().unwrap_or(0) & 0o7777,
        uid: pax.uid.or_else(|| header.uid().ok()).unwrap_or(0),
        gid: pax.gid.or_else(|| header.gid().ok()).unwrap_or(0),
        mtime: pax.mtime.or_else(|| header.mtime().ok()).unwrap_or(0),
        link_target,
    }))
}

/// Stops the stream with an error once `left` bytes have passed, and
/// remembers that it did so that the listing is marked truncated rather
/// than corrupt.
struct Capped<R> {
    inner: R,
    left: u64,
    over_limit: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            self.over_limit.set(true);
            return Err(io::Error::other("decompressed size limit reached"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}
