//! What each page shows, as plain data: the loader fills these from the
//! registry, the pages render them, and tests build them by hand.

use berth_oci::{Digest, Reference, RepositoryName, Tag};

/// What every page knows about the request.
#[derive(Debug, Clone)]
pub struct Context {
    /// `host[:port]` as the browser addressed berth, for pull commands.
    pub host: String,
    /// Unix seconds when the page was rendered, for relative times.
    pub now: i64,
    /// Whether deletes are accepted here (by the registry, and from this
    /// user on this page's repository): otherwise no delete control shows.
    pub deletes_enabled: bool,
    /// Whether deletes are on and the caller may run admin actions
    /// (deleting a whole repository): `admin` with auth on, a loopback
    /// client without, as for `DELETE /api/v1/repositories/<name>`.
    pub may_delete_repositories: bool,
    /// Who is looking, for the header's name and log in/out control.
    pub viewer: Viewer,
}

/// Who is looking at a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Auth is off: nobody logs in.
    Everyone,
    /// Auth is on and nobody is logged in: a "Log in" link.
    Anonymous,
    /// Logged in: the name and a "Log out" button.
    User(String),
}

/// The front page's totals: the registry's own, or for a user who may
/// pull only part of it, sums over that part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    pub repositories: u64,
    pub tags: u64,
    pub manifests: u64,
    /// `Some` for the whole registry only: blobs are not per repository.
    pub blobs: Option<u64>,
    /// The whole registry: bytes stored, each blob once. Part of it: the
    /// repositories' sizes added up (a blob two of them share counts twice).
    pub stored_bytes: u64,
    /// Bytes that would be stored again if shared layers were not shared;
    /// `Some` for the whole registry only.
    pub saved_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRow {
    pub name: RepositoryName,
    pub tags: u64,
    pub size: u64,
    /// Unix seconds of the last manifest push.
    pub last_push: Option<i64>,
    /// Its use of the `[[quota]]` that applies to it, if one does.
    pub quota: Option<QuotaView>,
    /// Where its content comes from when it is a pull-through cache.
    pub cached: Option<CachedView>,
}

/// A cached repository's upstream, as the UI marks it: "cache of docker.io
/// (library/busybox) · checked 2 minutes ago". Its tags and manifests have
/// no delete buttons (the cache is read-only; repository delete purges it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedView {
    pub upstream: String,
    /// The repository's name upstream.
    pub remote: String,
    /// Unix seconds of the last upstream check of any of its tags.
    pub checked_at: Option<i64>,
}

impl From<berth_registry::CacheOrigin> for CachedView {
    fn from(origin: berth_registry::CacheOrigin) -> Self {
        CachedView {
            upstream: origin.upstream,
            remote: origin.remote,
            checked_at: origin.checked_at,
        }
    }
}

/// A repository's use of its quota: bytes stored (each blob once) and tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaView {
    pub used_bytes: u64,
    pub max_bytes: Option<u64>,
    pub tags: u64,
    pub max_tags: Option<u64>,
}

impl From<berth_registry::policy::QuotaUse> for QuotaView {
    fn from(usage: berth_registry::policy::QuotaUse) -> Self {
        QuotaView {
            used_bytes: usage.used_bytes,
            max_bytes: usage.max_bytes,
            tags: usage.tags,
            max_tags: usage.max_tags,
        }
    }
}

/// The front page: totals, then one page of repositories.
#[derive(Debug, Clone)]
pub struct HomePage {
    pub overview: Option<Overview>,
    /// The filter as typed (`?q=`).
    pub query: String,
    pub rows: Vec<RepositoryRow>,
    /// The last name of this page when there is a next one (`?last=`).
    pub next: Option<String>,
    /// Garbage collection's state, for callers who see the whole registry.
    pub gc: Option<GcPanel>,
}

/// What the front page says about garbage collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPanel {
    /// Blobs nothing references, whatever their age: what passes will
    /// take once their grace period is over.
    pub reclaimable_blobs: u64,
    pub reclaimable_bytes: u64,
    /// The grace period, written as the configuration takes it (`1h`).
    pub grace: String,
    pub running: bool,
    pub last: Option<GcPass>,
    /// Unix seconds of the next background pass; `None`: none is scheduled.
    pub next_run_at: Option<i64>,
}

/// What the last pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPass {
    /// Unix seconds it started.
    pub at: i64,
    pub dry_run: bool,
    pub blobs: u64,
    pub bytes: u64,
    pub manifests: u64,
    pub tags: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub tag: Tag,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub pushed: Option<i64>,
    /// `linux/amd64`-style platforms when the tag names an index.
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RepositoryPage {
    pub name: RepositoryName,
    /// Tag count, size and last push of the whole repository.
    pub summary: RepositoryRow,
    /// Newest first.
    pub tags: Vec<TagRow>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub created: Option<String>,
    pub created_by: String,
    pub comment: Option<String>,
    /// The step changed only the config: no layer belongs to it.
    pub empty_layer: bool,
}

/// The parts of an image config people look for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigView {
    pub platform: String,
    pub created: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub exposed_ports: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub history: Vec<HistoryRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRow {
    pub platform: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerRow {
    pub artifact_type: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest's content: layers and config, or an index's platforms.
#[derive(Debug, Clone)]
pub enum ImageContent {
    Manifest {
        layers: Vec<LayerRow>,
        /// `None` when the config is not an image config (an artifact).
        config: Option<Box<ConfigView>>,
        config_digest: Option<Digest>,
    },
    Index {
        platforms: Vec<PlatformRow>,
    },
    /// Bytes that are neither shape.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct ImagePage {
    pub name: RepositoryName,
    /// How the page was asked for: a tag or the digest.
    pub reference: Reference,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Unix seconds of its first push into the repository.
    pub pushed: Option<i64>,
    /// Tags pointing at it.
    pub tags: Vec<String>,
    pub content: ImageContent,
    pub referrers: Vec<ReferrerRow>,
    /// The manifest as stored, pretty-printed.
    pub pretty_json: String,
    /// Set when the repository is a pull-through cache (no delete button).
    pub cached: Option<CachedView>,
}

/// What a file entry in a layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Hardlink,
    Other,
    /// A whiteout: the layer deletes this path.
    Deleted,
    /// An opaque directory marker: the layer hides everything below the path.
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub link_target: Option<String>,
    /// In a merged tree: which layer (from 0, bottom) the entry comes from.
    pub layer: Option<usize>,
}

/// A listing's rows, and whether it stopped at the entry limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub rows: Vec<FileRow>,
    pub truncated: bool,
}

/// Why a file listing could not be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

/// The files of one layer, or of a whole image merged.
#[derive(Debug, Clone)]
pub struct FilesPage {
    pub name: RepositoryName,
    pub subject: FilesOf,
    pub files: Result<Files, Unreadable>,
}

#[derive(Debug, Clone)]
pub enum FilesOf {
    Layer(Digest),
    Image(Reference),
}

/// The confirmation before a delete.
#[derive(Debug, Clone)]
pub struct DeletePage {
    pub name: RepositoryName,
    pub reference: Reference,
    /// For a digest: the tags that go with it.
    pub tags: Vec<String>,
}

/// The confirmation before deleting a whole repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryDeletePage {
    pub name: RepositoryName,
    pub tags: u64,
    pub manifests: u64,
    /// Its blobs, each once (what it holds, not what deleting it frees:
    /// layers other repositories share stay).
    pub size: u64,
    /// The GC grace period (`1h`): when the space can come back.
    pub grace: String,
}
