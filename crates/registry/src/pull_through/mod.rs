//! The pull-through cache: repositories whose content comes from an
//! upstream registry on a local miss, streamed to the client while it is
//! published like any push (verify, then persist, then record).

pub mod upstream;

pub use upstream::{Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};
