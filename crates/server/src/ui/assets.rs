//! The stylesheet and script, embedded in the binary and served under a
//! name that carries a hash of their content, so browsers may keep them
//! for a year and still fetch a new build's at once.

use berth_oci::Digest;
use std::sync::OnceLock;

const CSS: &str = include_str!("assets/berth.css");
const JS: &str = include_str!("assets/berth.js");

/// One embedded file.
pub struct Asset {
    /// `berth.<hash>.css`: what pages link to.
    pub file: String,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The embedded files, named once on first use (two short strings).
fn all() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            named("berth", "css", "text/css; charset=utf-8", CSS),
            named("berth", "js", "text/javascript; charset=utf-8", JS),
        ]
    })
}

fn named(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
    let digest = Digest::sha256_of(body.as_bytes());
    let hash = digest.hex().get(..16).unwrap_or_default();
    Asset {
        file: format!("{stem}.{hash}.{ext}"),
        content_type,
        body,
    }
}

/// The stylesheet's URL path.
pub fn css_path() -> String {
    format!("{}assets/{}", super::routes::PREFIX, all()[0].file)
}

/// The script's URL path.
pub fn js_path() -> String {
    format!("{}assets/{}", super::routes::PREFIX, all()[1].file)
}

/// The asset with this hashed file name; an old build's name finds nothing.
pub fn find(file: &str) -> Option<&'static Asset> {
    all().iter().find(|asset| asset.file == file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_found_by_their_hashed_name_only() {
        let css = css_path();
        let file = css.rsplit('/').next().unwrap();
        assert!(
            file.starts_with("berth.") && file.ends_with(".css"),
            "{file}"
        );
        assert_eq!(find(file).unwrap().body, CSS);
        assert!(find("berth.css").is_none());
        assert!(find("berth.0000000000000000.js").is_none());
    }

    #[test]
    fn css_and_script_stay_small() {
        assert!(CSS.len() + JS.len() < 30 * 1024, "{}", CSS.len() + JS.len());
    }
}
