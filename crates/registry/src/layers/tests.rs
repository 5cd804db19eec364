//! Listings of tars made here, in every compression, with every member
//! type a layer carries, and of bytes that are not layers at all.

use super::*;
use proptest::prelude::*;
use std::io::{self, Read, Write};
use tar::{EntryType, Header};

/// A tar archive built member by member.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(1000);
        h.set_gid(100);
        h.set_mtime(1_700_000_000);
        h
    }

    fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut h = Self::header(EntryType::Regular, 0o644, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn dir(mut self, path: &str) -> Self {
        let mut h = Self::header(EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, path, io::empty()).unwrap();
        self
    }

    fn link(mut self, kind: EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    /// A PAX `x` member carrying `records`, for the member after it.
    fn pax(mut self, records: &[(&str, &str)]) -> Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = format!(" {key}={value}\n");
            let mut len = body.len() + 1;
            while len.to_string().len() + body.len() != len {
                len += 1;
            }
            data.extend(format!("{len}{body}").into_bytes());
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_path("PaxHeaders/x").unwrap();
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, &data[..]).unwrap();
        self
    }

    /// A member whose header is written as given (path and checksum set here).
    fn raw(mut self, mut h: Header, path: &str, data: &[u8]) -> Self {
        h.set_path(path).unwrap();
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
}

fn list(bytes: &[u8]) -> Result<LayerListing, LayerError> {
    list_layer(bytes, &ListingLimits::default())
}

fn find<'a>(listing: &'a LayerListing, path: &str) -> &'a LayerEntry {
    listing
        .entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in {:#?}", listing.entries))
}

/// A small root filesystem with one of each common member type.
fn rootfs() -> Vec<u8> {
    Tar::new()
        .dir("./")
        .dir("./etc/")
        .file("./etc/hostname", b"berth\n")
        .dir("./bin/")
        .file("./bin/busybox", &[7u8; 3000])
        .link(EntryType::Symlink, "./bin/sh", "busybox")
        .link(EntryType::Link, "./bin/ash", "./bin/busybox")
        .bytes()
}

fn assert_rootfs(listing: &LayerListing) {
    let paths: Vec<&str> = listing.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "etc",
            "etc/hostname",
            "bin",
            "bin/busybox",
            "bin/sh",
            "bin/ash"
        ],
        "the root folder is left out, ./ prefixes and trailing slashes go"
    );
    let hostname = find(listing, "etc/hostname");
    assert_eq!(hostname.kind, EntryKind::File);
    assert_eq!(
        (
            hostname.size,
            hostname.mode,
            hostname.uid,
            hostname.gid,
            hostname.mtime
        ),
        (6, 0o644, 1000, 100, 1_700_000_000)
    );
    assert_eq!(find(listing, "etc").kind, EntryKind::Dir);
    let sh = find(listing, "bin/sh");
    assert_eq!(sh.kind, EntryKind::Symlink);
    assert_eq!(sh.link_target.as_deref(), Some("busybox"));
    let ash = find(listing, "bin/ash");
    assert_eq!(ash.kind, EntryKind::Hardlink);
    assert_eq!(ash.link_target.as_deref(), Some("bin/busybox"));
    assert_eq!(listing.total_size, 3006);
    assert!(!listing.truncated);
}

#[test]
fn lists_a_plain_tar() {
    let listing = list(&rootfs()).unwrap();
    assert_eq!(listing.compression, Compression::None);
    assert_rootfs(&listing);
}

#[test]
fn lists_a_gzip_layer() {
    let listing = list(&gzip(&rootfs())).unwrap();
    assert_eq!(listing.compression, Compression::Gzip);
    assert_rootfs(&listing);
}

#[test]
fn lists_a_zstd_layer() {
    let listing = list(&zstd(&rootfs())).unwrap();
    assert_eq!(listing.compression, Compression::Zstd);
    assert_rootfs(&listing);
}

#[test]
fn reads_every_zstd_frame_and_skips_skippable_ones() {
    let tar = rootfs();
    let (front, back) = tar.split_at(1536);
    // A skippable frame (magic 0x184D2A50, little endian) of 3 bytes first.
    let mut layer = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3];
    layer.extend(zstd(front));
    layer.extend(zstd(back));
    assert_rootfs(&list(&layer).unwrap());
}

#[test]
fn reads_concatenated_gzip_members_as_one_stream() {
    let tar = rootfs();
    let (front, back) = tar.split_at(1024);
    let layer = [gzip(front), gzip(back)].concat();
    assert_rootfs(&list(&layer).unwrap());
}

#[test]
fn whiteouts_are_listed_as_deletions_and_aufs_metadata_is_left_out() {
    let layer = Tar::new()
        .file("etc/.wh.motd", b"")
        .file(".wh.tmp", b"")
        .file("var/cache/.wh..wh..opq", b"")
        .file(".wh..wh..opq", b"")
        .dir(".wh..wh.plnk/")
        .file(".wh..wh.plnk/1234.5678", b"aufs keeps hard links here")
        .bytes();
    let listing = list(&gzip(&layer)).unwrap();
    let got: Vec<(&str, EntryKind)> = listing
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("etc/motd", EntryKind::Whiteout),
            ("tmp", EntryKind::Whiteout),
            ("var/cache", EntryKind::OpaqueWhiteout),
            ("", EntryKind::OpaqueWhiteout),
        ]
    );
}

#[test]
fn long_gnu_names_and_link_targets_are_whole() {
    let long_dir = "d".repeat(90);
    let path = format!("{long_dir}/{}", "f".repeat(80));
    let target = format!("/{long_dir}/{}", "t".repeat(70));
    let layer = Tar::new()
        .file(&path, b"x")
        .link(EntryType::Symlink, &format!("{path}.lnk"), &target)
        .file("after", b"yz")
        .bytes();
    let listing = list(&layer).unwrap();
    assert_eq!(listing.entries.len(), 3, "{:#?}", listing.entries);
    assert_eq!(find(&listing, &path).size, 1);
    let link = find(&listing, &format!("{path}.lnk"));
    assert_eq!(link.link_target.as_deref(), Some(target.as_str()));
    assert_eq!(find(&listing, "after").size, 2, "the walk kept its place");
}

#[test]
fn long_pax_names_and_records_override_the_header() {
    let path = format!("./{}/{}", "p".repeat(120), "q".repeat(120));
    let target = "l".repeat(200);
    let mut symlink = Header::new_ustar();
    symlink.set_entry_type(EntryType::Symlink);
    symlink.set_size(0);
    let layer = Tar::new()
        .pax(&[
            ("path", &path),
            ("uid", "70000"),
            ("mtime", "1700000123.25"),
        ])
        .raw(Tar::header(EntryType::Regular, 0o600, 3), "short", b"abc")
        .pax(&[("linkpath", &target)])
        .raw(symlink, "link", b"")
        .file("after", b"x")
        .bytes();
    let listing = list(&gzip(&layer)).unwrap();
    assert_eq!(listing.entries.len(), 3, "{:#?}", listing.entries);
    let file = &listing.entries[0];
    assert_eq!(file.path, normalize_path(&path));
    assert_eq!((file.size, file.uid, file.mtime), (3, 70000, 1_700_000_123));
    assert_eq!(
        listing.entries[1].link_target.as_deref(),
        Some(target.as_str())
    );
    assert_eq!(listing.entries[2].path, "after");
}

#[test]
fn ustar_prefix_names_are_joined() {
    let path = format!("{}/{}", "a".repeat(120), "b".repeat(60));
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::Regular);
    h.set_size(1);
    let layer = Tar::new().raw(h, &path, b"z").bytes();
    assert_eq!(list(&layer).unwrap().entries[0].path, path);
}

#[test]
fn a_sparse_file_reports_its_logical_size_without_its_bytes() {
    let mut h = Tar::header(EntryType::GNUSparse, 0o644, 0);
    h.as_gnu_mut().unwrap().set_real_size(10 << 30);
    let layer = Tar::new()
        .raw(h, "var/log/lastlog", b"")
        .file("after", b"1")
        .bytes();
    let listing = list(&zstd(&layer)).unwrap();
    let sparse = find(&listing, "var/log/lastlog");
    assert_eq!((sparse.kind, sparse.size), (EntryKind::File, 10 << 30));
    assert_eq!(listing.total_size, (10 << 30) + 1);
}

/// A plain tar holding one file of `size` zero bytes, produced as it is
/// read: nothing ever holds the content.
fn streamed_big_file(size: u64) -> impl Read {
    let mut h = Tar::header(EntryType::Regular, 0o644, size);
    h.set_path("big.img").unwrap();
    h.set_cksum();
    let padding = (512 - size % 512) % 512;
    io::Cursor::new(h.as_bytes().to_vec())
        .chain(io::repeat(0).take(size + padding))
        .chain(io::Cursor::new(Tar::new().file("after", b"a").bytes()))
}

#[test]
fn a_big_file_is_skipped_as_it_streams_past() {
    let size = 256 << 20;
    let listing = list_layer(streamed_big_file(size), &ListingLimits::default()).unwrap();
    assert_eq!(find(&listing, "big.img").size, size);
    assert_eq!(find(&listing, "after").size, 1, "the walk kept its place");
}

#[test]
fn limits_truncate_instead_of_failing() {
    let mut many = Tar::new();
    for i in 0..50 {
        many = many.file(&format!("f{i}"), b"");
    }
    let few = ListingLimits {
        max_entries: 10,
        ..ListingLimits::default()
    };
    let listing = list_layer(&many.bytes()[..], &few).unwrap();
    assert_eq!((listing.entries.len(), listing.truncated), (10, true));

    let short = ListingLimits {
        max_uncompressed_bytes: 1 << 20,
        ..ListingLimits::default()
    };
    let listing = list_layer(streamed_big_file(64 << 20), &short).unwrap();
    assert!(listing.truncated, "a decompression bomb stops early");
    assert_eq!(listing.entries.len(), 1);
}

#[test]
fn an_oversized_long_name_is_refused_before_it_is_read() {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::GNULongName);
    h.set_size(1 << 30);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    let mut layer = h.as_bytes().to_vec();
    layer.extend(vec![b'a'; 4096]); // the rest never needs to exist
    assert!(matches!(list(&layer), Err(LayerError::Unsupported(_))));
}

#[test]
fn a_truncated_gzip_layer_is_corrupt() {
    let layer = gzip(&rootfs());
    let cut = &layer[..layer.len() / 2];
    match list(cut) {
        Err(LayerError::Corrupt { reason, .. }) => {
            assert!(reason.contains("truncated"), "{reason}")
        }
        other => panic!("expected corrupt, got {other:?}"),
    }
}

#[test]
fn a_bad_header_checksum_is_corrupt_after_the_good_entries() {
    let mut tar = rootfs();
    // The third header (etc/hostname) starts at 1024; damage its name.
    tar[1024 + 3] ^= 0x20;
    match list(&gzip(&tar)) {
        Err(LayerError::Corrupt { entries, reason }) => {
            assert_eq!(entries, 1, "etc was listed before it");
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corrupt, got {other:?}"),
    }
}

#[test]
fn blobs_that_are_not_layers_are_named() {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#;
    let cases: [(&[u8], &str); 5] = [
        (config, "JSON"),
        (b"PK\x03\x04\x14\x00\x00\x00", "zip"),
        (&gzip(config), "decompressed, it looks like JSON"),
        (b"", "empty"),
        (b"hello, this is not an archive", "not a tar"),
    ];
    for (blob, words) in cases {
        let err = list(blob).unwrap_err();
        assert!(matches!(err, LayerError::NotATar(_)), "{err:?}");
        assert!(err.to_string().contains(words), "{err} should say {words}");
    }
    assert_eq!(
        list(b"BZh91AY&SY"),
        Err(LayerError::UnknownCompression("bzip2"))
    );
    let garbage_gzip = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        list(&garbage_gzip),
        Err(LayerError::Corrupt { .. })
    ));
}

#[test]
fn entries_serialise_with_their_type_flat() {
    let listing = list(&rootfs()).unwrap();
    let json = serde_json::to_value(find(&listing, "bin/sh")).unwrap();
    assert_eq!(json["type"], "symlink");
    assert_eq!(json["link_target"], "busybox");
    let other = LayerEntry {
        kind: EntryKind::Other('3'),
        ..find(&listing, "etc").clone()
    };
    let json = serde_json::to_value(&other).unwrap();
    assert_eq!(
        (json["type"].as_str(), json["typeflag"].as_str()),
        (Some("other"), Some("3"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the bytes, an answer and never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = list(&bytes);
        let mut gz = vec![0x1f, 0x8b];
        gz.extend(&bytes);
        let _ = list(&gz);
        let mut zst = vec![0x28, 0xb5, 0x2f, 0xfd];
        zst.extend(&bytes);
        let _ = list(&zst);
    }

    /// A real layer cut or damaged anywhere: an answer and never a panic.
    #[test]
    fn damaged_layers_never_panic(cut in 0usize..4096, flip in 0usize..4096, bit in 0u8..8) {
        for layer in [rootfs(), gzip(&rootfs()), zstd(&rootfs())] {
            let mut damaged = layer.clone();
            let at = flip % damaged.len();
            damaged[at] ^= 1 << bit;
            let _ = list(&damaged);
            let _ = list(&layer[..cut.min(layer.len())]);
        }
    }
}
