//! Cross-site request forgery: a page on another site must not be able to
//! make a visitor's browser delete things here. Browsers say where a POST
//! comes from (`Sec-Fetch-Site`, or at least `Origin`); berth accepts it
//! only from its own pages.

use axum::http::{header, HeaderMap};

/// Whether a state-changing request comes from this site's own pages (or
/// from a client that is not a browser: those send neither header and
/// carry no one else's ambient credentials).
pub fn is_same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site == "same-origin";
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_this_sites_pages_may_post() {
        assert!(is_same_origin(&headers(&[(
            "sec-fetch-site",
            "same-origin"
        )])));
        for site in ["cross-site", "same-site", "none"] {
            let h = headers(&[
                ("sec-fetch-site", site),
                ("host", "r:5000"),
                ("origin", "http://r:5000"),
            ]);
            assert!(!is_same_origin(&h), "{site}");
        }
        assert!(is_same_origin(&headers(&[
            ("host", "r:5000"),
            ("origin", "http://r:5000")
        ])));
        assert!(is_same_origin(&headers(&[
            ("host", "r"),
            ("origin", "https://R")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("host", "r:5000"),
            ("origin", "http://evil:5000")
        ])));
        assert!(!is_same_origin(&headers(&[
            ("host", "r:5000"),
            ("origin", "null")
        ])));
        assert!(!is_same_origin(&headers(&[("origin", "http://r:5000")])));
        // curl and scripts: no browser, no ambient credentials to abuse.
        assert!(is_same_origin(&headers(&[("host", "r:5000")])));
    }
}
