//! Which compression a layer uses, told by its first bytes rather than by
//! its media type (which clients get wrong), and the streaming decoder for it.

use super::LayerError;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use std::io::{self, BufRead, BufReader, Read};

/// Bytes looked at before deciding: a tar header block, so that a plain
/// tar's `ustar` magic (at offset 257) is in view.
pub(super) const SNIFF_LEN: usize = 512;

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    /// A plain, uncompressed tar.
    None,
}

impl Compression {
    /// Decides from a layer's first bytes (up to [`SNIFF_LEN`] of them).
    pub fn sniff(prefix: &[u8]) -> Result<Compression, LayerError> {
        const OTHERS: [(&[u8], &str); 4] = [
            (b"BZh", "bzip2"),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
            (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
            (&[0x5d, 0, 0], "lzma"),
        ];
        if prefix.starts_with(&[0x1f, 0x8b]) {
            return Ok(Compression::Gzip);
        }
        // A zstd frame, or a skippable frame (magic 0x184D2A5?) before one.
        let skippable =
            prefix.len() >= 4 && prefix[0] & 0xf0 == 0x50 && prefix[1..4] == [0x2a, 0x4d, 0x18];
        if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || skippable {
            return Ok(Compression::Zstd);
        }
        if let Some((_, name)) = OTHERS.iter().find(|(magic, _)| prefix.starts_with(magic)) {
            return Err(LayerError::UnknownCompression(name));
        }
        if prefix.get(257..262) == Some(b"ustar") {
            return Ok(Compression::None);
        }
        if let Some(what) = not_an_archive(prefix) {
            return Err(LayerError::NotATar(what.into()));
        }
        Ok(Compression::None)
    }

    /// The decompressed stream of `compressed`.
    pub(super) fn decoder<'a, R: Read + 'a>(self, compressed: R) -> Box<dyn Read + 'a> {
        match self {
            // Several gzip members one after another are one stream (pigz, appends).
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(compressed)),
            Compression::Zstd => Box::new(ZstdFrames::new(BufReader::new(compressed))),
            Compression::None => Box::new(compressed),
        }
    }
}

/// Well-known non-tar contents worth naming in the error message.
fn not_an_archive(prefix: &[u8]) -> Option<&'static str> {
    let first = prefix.iter().find(|b| !b.is_ascii_whitespace());
    if prefix.starts_with(b"PK\x03\x04") {
        Some("it is a zip archive")
    } else if matches!(first, Some(b'{' | b'[')) {
        Some("it looks like JSON (a config or an artifact, not a filesystem layer)")
    } else if prefix.is_empty() {
        Some("it is empty")
    } else {
        None
    }
}

/// A zstd decoder over every frame of the input, skipping skippable frames
/// (`ruzstd`'s own streaming decoder stops after the first frame).
struct ZstdFrames<R: BufRead> {
    source: R,
    frame: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames {
            source,
            frame: FrameDecoder::new(),
            in_frame: false,
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.frame.can_collect() < buf.len() && !self.frame.is_finished() {
                    let wanted = buf.len() - self.frame.can_collect();
                    self.frame
                        .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                        .map_err(io::Error::other)?;
                }
                let n = self.frame.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                self.in_frame = false;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.frame.reset(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skip = u64::from(length);
                    let skipped = io::copy(&mut (&mut self.source).take(skip), &mut io::sink())?;
                    if skipped < skip {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}
