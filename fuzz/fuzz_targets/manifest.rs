//! The manifest parser, with and without a Content-Type: it never panics,
//! answers the same for the same input, and what it accepts is consistent
//! (the media type it reports, the kind matching the references it lists,
//! the same answer when the inferred type is sent as the Content-Type).
#![no_main]

use berth_oci::media_type::{is_non_distributable, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use berth_oci::{ManifestKind, ParsedManifest};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some(""),
    Some("application/json"),
    Some("application/octet-stream"),
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_MANIFEST),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some("application/vnd.example.custom+json"),
];

fn check(data: &[u8], content_type: Option<&str>) {
    let parsed = ParsedManifest::parse(data, content_type);
    assert_eq!(parsed, ParsedManifest::parse(data, content_type));
    let Ok(m) = parsed else {
        return;
    };
    assert!(!m.media_type.is_empty());
    let declared = content_type
        .map(|ct| ct.split(';').next().unwrap_or("").trim())
        .filter(|ct| !matches!(*ct, "" | "application/json" | "application/octet-stream"));
    if let Some(declared) = declared {
        assert_eq!(m.media_type, declared, "the Content-Type names the type");
    }
    if content_type.is_none() {
        // Sending the type berth inferred must change nothing.
        let typed = ParsedManifest::parse(data, Some(&m.media_type));
        assert_eq!(typed.as_ref(), Ok(&m), "typed as {}", m.media_type);
    }
    if m.kind == ManifestKind::Image {
        // The config is always one of the blobs an image must have.
        assert!(!m.blobs.is_empty());
    }
    assert!(m.blobs.iter().all(|b| !is_non_distributable(&b.media_type)));
}

fuzz_target!(|data: &[u8]| {
    for content_type in CONTENT_TYPES {
        check(data, *content_type);
    }
});
