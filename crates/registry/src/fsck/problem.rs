//! What fsck can find wrong, and what `--repair` does about each finding.

use super::rows::StoredRow;
use std::fmt;
use std::path::PathBuf;

/// One thing wrong in a data folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A blob file whose content does not hash to the digest its path names.
    CorruptBlob { path: PathBuf, found: String },
    /// A file or folder under `blobs/` that is not where a blob can be.
    StrayEntry { path: PathBuf, why: &'static str },
    /// A `repo_blobs` row whose content is missing, damaged or of another size.
    BrokenBlobLink {
        repo: String,
        digest: String,
        fault: ContentFault,
        row: StoredRow,
    },
    /// A manifest that cannot be served whole; its tags are reported apart.
    BrokenManifest {
        repo: String,
        digest: String,
        fault: ManifestFault,
        /// The manifest's row and its `manifest_refs` rows.
        rows: Vec<StoredRow>,
    },
    /// A blob a manifest references is intact on disk but not linked in its
    /// repository: repair links it again rather than drop the manifest.
    UnlinkedBlob {
        repo: String,
        repo_id: i64,
        manifest: String,
        digest: String,
        size: u64,
    },
    /// A reference of an intact manifest that `manifest_refs` lacks.
    MissingRef {
        repo: String,
        repo_id: i64,
        manifest: String,
        child: String,
    },
    /// A `manifest_refs` row of no manifest, or naming what the manifest does not reference.
    StaleRef {
        repo: String,
        manifest: String,
        child: String,
        row: StoredRow,
    },
    /// A tag naming a manifest that is missing or broken.
    DanglingTag {
        repo: String,
        tag: String,
        digest: String,
        row: StoredRow,
    },
    /// A row whose repository id has no `repositories` row.
    OrphanRow { row: StoredRow },
    /// A repository name the registry would refuse; reported, never repaired.
    BadRepositoryName { name: String },
    /// A file under `uploads/` that no session owns (temp files of killed requests too).
    LeftoverUpload { path: PathBuf, size: u64 },
    /// An upload session whose file is gone.
    SessionWithoutFile { id: String, row: StoredRow },
    /// An upload session that claims more bytes than its file holds.
    SessionBeyondFile {
        id: String,
        recorded: u64,
        actual: u64,
        path: PathBuf,
        row: StoredRow,
    },
}

/// Why stored content does not back a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentFault {
    BadDigest,
    Missing,
    Corrupt,
    SizeDiffers { recorded: u64, actual: u64 },
}

/// Why a manifest cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestFault {
    Content(ContentFault),
    Unparseable(String),
    BlobMissing {
        digest: String,
    },
    BlobSizeDiffers {
        digest: String,
        declared: u64,
        linked: u64,
    },
    ChildMissing {
        digest: String,
    },
    ChildSizeDiffers {
        digest: String,
        declared: u64,
        stored: u64,
    },
}

/// What `--repair` does for a finding. Paths are relative to the data folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Remedy {
    Quarantine(PathBuf),
    DeleteRows(Vec<StoredRow>),
    LinkBlob {
        repo_id: i64,
        digest: String,
        size: u64,
    },
    InsertRef {
        repo_id: i64,
        manifest: String,
        child: String,
    },
}

impl Problem {
    /// What repair does; empty for what only a person can decide.
    pub fn remedies(&self) -> Vec<Remedy> {
        use Problem::*;
        match self {
            CorruptBlob { path, .. } | StrayEntry { path, .. } | LeftoverUpload { path, .. } => {
                vec![Remedy::Quarantine(path.clone())]
            }
            BrokenBlobLink { row, .. }
            | StaleRef { row, .. }
            | DanglingTag { row, .. }
            | OrphanRow { row }
            | SessionWithoutFile { row, .. } => vec![Remedy::DeleteRows(vec![row.clone()])],
            BrokenManifest { rows, .. } => vec![Remedy::DeleteRows(rows.clone())],
            UnlinkedBlob {
                repo_id,
                digest,
                size,
                ..
            } => vec![Remedy::LinkBlob {
                repo_id: *repo_id,
                digest: digest.clone(),
                size: *size,
            }],
            MissingRef {
                repo_id,
                manifest,
                child,
                ..
            } => vec![Remedy::InsertRef {
                repo_id: *repo_id,
                manifest: manifest.clone(),
                child: child.clone(),
            }],
            BadRepositoryName { .. } => Vec::new(),
            SessionBeyondFile { path, row, .. } => vec![
                Remedy::Quarantine(path.clone()),
                Remedy::DeleteRows(vec![row.clone()]),
            ],
        }
    }
}

impl fmt::Display for ContentFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentFault::BadDigest => write!(f, "the digest is not valid"),
            ContentFault::Missing => write!(f, "its blob file is missing"),
            ContentFault::Corrupt => write!(f, "its blob file is corrupt"),
            ContentFault::SizeDiffers { recorded, actual } => {
                write!(
                    f,
                    "recorded size {recorded} but the blob has {actual} bytes"
                )
            }
        }
    }
}

impl fmt::Display for ManifestFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestFault::Content(c) => c.fmt(f),
            ManifestFault::Unparseable(e) => write!(f, "its content does not parse: {e}"),
            ManifestFault::BlobMissing { digest } => {
                write!(
                    f,
                    "references blob {digest}, which is not in the repository"
                )
            }
            ManifestFault::BlobSizeDiffers {
                digest,
                declared,
                linked,
            } => write!(
                f,
                "declares blob {digest} with {declared} bytes, the repository has {linked}"
            ),
            ManifestFault::ChildMissing { digest } => {
                write!(
                    f,
                    "references manifest {digest}, which is not in the repository"
                )
            }
            ManifestFault::ChildSizeDiffers {
                digest,
                declared,
                stored,
            } => write!(
                f,
                "declares manifest {digest} with {declared} bytes, the repository has {stored}"
            ),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Problem::*;
        match self {
            CorruptBlob { path, found } => {
                write!(f, "corrupt blob {}: content is {found}", path.display())
            }
            StrayEntry { path, why } => write!(f, "stray entry {}: {why}", path.display()),
            BrokenBlobLink {
                repo,
                digest,
                fault,
                ..
            } => write!(f, "blob link {repo}@{digest}: {fault}"),
            BrokenManifest {
                repo,
                digest,
                fault,
                ..
            } => write!(f, "manifest {repo}@{digest}: {fault}"),
            UnlinkedBlob {
                repo,
                manifest,
                digest,
                ..
            } => write!(
                f,
                "manifest {repo}@{manifest} references blob {digest}, intact on disk but not linked in the repository"
            ),
            MissingRef {
                repo,
                manifest,
                child,
                ..
            } => write!(
                f,
                "manifest {repo}@{manifest} references {child}, which manifest_refs lacks"
            ),
            StaleRef {
                repo,
                manifest,
                child,
                ..
            } => write!(
                f,
                "manifest_refs row {repo}@{manifest} -> {child} matches no reference of a manifest"
            ),
            DanglingTag {
                repo, tag, digest, ..
            } => write!(f, "tag {repo}:{tag} points at {digest}, which is not a servable manifest"),
            OrphanRow { row } => write!(
                f,
                "{} row {} belongs to no repository",
                row.table, row.content
            ),
            BadRepositoryName { name } => write!(f, "repository name {name:?} is not valid"),
            LeftoverUpload { path, size } => write!(
                f,
                "leftover upload file {} ({size} bytes) has no session",
                path.display()
            ),
            SessionWithoutFile { id, .. } => write!(f, "upload session {id} has no file"),
            SessionBeyondFile {
                id,
                recorded,
                actual,
                ..
            } => write!(
                f,
                "upload session {id} records {recorded} bytes but its file holds {actual}"
            ),
        }
    }
}
