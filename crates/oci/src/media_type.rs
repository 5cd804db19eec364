//! Media types berth gives meaning to. Any other type is stored and served as is.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Layers whose blobs may live elsewhere, so a registry must not require them.
pub fn is_non_distributable(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.foreign.")
}

/// True for Docker's retired schema 1 manifests, which berth refuses.
pub fn is_schema1(media_type: &str) -> bool {
    media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED
}

/// Whether `media_type` has the shape the image spec's descriptors require
/// (RFC 6838 `type/subtype`, no parameters): a `mediaType` that is not, such
/// as `application;x/y`, could never be sent back as the same `Content-Type`.
pub fn is_well_formed(media_type: &str) -> bool {
    let name = |s: &str| {
        let mut chars = s.chars();
        s.len() <= 127
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    media_type
        .split_once('/')
        .is_some_and(|(kind, subtype)| name(kind) && name(subtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_media_types_are_type_slash_subtype() {
        for ok in [OCI_MANIFEST, DOCKER_MANIFEST_LIST, "text/plain", "a/b+json"] {
            assert!(is_well_formed(ok), "{ok}");
        }
        for bad in [
            "application",
            "application;;/x",
            "a/b; charset=x",
            "/x",
            "a/",
            "a/b/c",
            "",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}
