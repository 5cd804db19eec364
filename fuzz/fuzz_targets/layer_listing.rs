//! Layer listings: any bytes (plain, or after a gzip or zstd magic) give a
//! listing or a typed error, never a panic, and a listing keeps its
//! promises: within its bounds, normalised paths, sizes that add up.
#![no_main]

use berth_registry::layers::{list_layer, EntryKind, ListingLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ListingLimits {
        max_entries: 64,
        max_uncompressed_bytes: 16 << 20,
    };
    let Ok(listing) = list_layer(data, &limits) else {
        return;
    };
    assert!(listing.entries.len() <= limits.max_entries);
    let mut total = 0u64;
    for entry in &listing.entries {
        let path = entry.path.as_str();
        assert!(!path.starts_with('/') && !path.starts_with("./"), "{path:?}");
        assert!(!path.ends_with('/') && !path.contains("//"), "{path:?}");
        assert!(entry.mode <= 0o7777);
        match entry.kind {
            EntryKind::File => total = total.saturating_add(entry.size),
            EntryKind::Whiteout | EntryKind::OpaqueWhiteout => {
                assert!(entry.link_target.is_none() && entry.size == 0)
            }
            EntryKind::Dir => assert!(!path.is_empty(), "the root is left out"),
            _ => {}
        }
    }
    assert_eq!(listing.total_size, total);
});
