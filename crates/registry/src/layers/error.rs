//! Why a layer could not be listed: always the layer's fault, never the
//! registry's, so the server answers these with a 4xx and a clear message.

/// A layer blob that cannot be read as a (compressed) tar archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// Compressed with something berth does not decode (bzip2, xz, lz4).
    #[error(
        "layer is compressed with {0}, which berth cannot list (only gzip, zstd and plain tar)"
    )]
    UnknownCompression(&'static str),
    /// Not an archive at all (a JSON config, a zip, random bytes).
    #[error("layer is not a tar archive: {0}")]
    NotATar(String),
    /// Started as a tar archive, then broke: truncated, a bad checksum, a
    /// corrupt compressed stream.
    #[error("layer is corrupt after {entries} entries: {reason}")]
    Corrupt { entries: usize, reason: String },
    /// A valid archive using a tar feature the lister does not follow.
    #[error("layer uses an unsupported tar feature: {0}")]
    Unsupported(String),
}
