//! Cross-origin answers for browser clients (registry UIs such as Joxit's).
//!
//! Only requests whose `Origin` is allowed get CORS headers; with no origins
//! configured nothing changes, and a request without `Origin` costs one
//! header lookup. With origins configured every response says `Vary: Origin`,
//! since whether it carries CORS headers depends on the request's origin. The
//! policy is pure logic over header maps, so it is tested here without HTTP.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Methods a browser may use when none are configured.
pub const DEFAULT_ALLOWED_METHODS: &[&str] =
    &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Request headers a browser may send when none are configured.
pub const DEFAULT_ALLOWED_HEADERS: &[&str] = &[
    "Authorization",
    "Accept",
    "Content-Type",
    "Content-Range",
    "Range",
    "Cache-Control",
    "Docker-Content-Digest",
];
/// Response headers scripts may read when none are configured: the ones
/// the distribution API carries meaning in.
pub const DEFAULT_EXPOSE_HEADERS: &[&str] = &[
    "Docker-Content-Digest",
    "Docker-Distribution-Api-Version",
    "Docker-Upload-UUID",
    "Link",
    "Location",
    "Range",
    "Content-Length",
    "Content-Range",
    "OCI-Subject",
    "OCI-Filters-Applied",
    "WWW-Authenticate",
    // How the pull-through cache answered, and whether the copy is stale.
    "Berth-Cache",
    "Warning",
];
/// How long a browser may cache a preflight answer.
const MAX_AGE_SECS: &str = "3600";

/// CORS settings as configured; lists left `None` take the defaults above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsSettings {
    /// Origins allowed (`*` for any); empty turns CORS off.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Option<Vec<String>>,
    pub allowed_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub allow_credentials: bool,
}

/// Why a CORS configuration cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorsError {
    #[error("CORS setting {0:?} is not a valid header value")]
    NotAHeaderValue(String),
    /// Browsers refuse credentials from a server that allows any origin, and
    /// echoing every origin instead would hand any site the user's login.
    #[error(
        "CORS: allowed origin \"*\" cannot be combined with allow_credentials = true \
         (cors_allow_credentials / BERTH_CORS_ALLOW_CREDENTIALS); list the origins instead"
    )]
    AnyOriginWithCredentials,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origins {
    None,
    Any,
    List(Vec<HeaderValue>),
}

/// The validated policy, with every header value built once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Origins,
    allow_methods: HeaderValue,
    allow_headers: HeaderValue,
    expose_headers: HeaderValue,
    allow_credentials: bool,
}

impl Default for CorsPolicy {
    /// CORS off.
    fn default() -> Self {
        CorsPolicy {
            origins: Origins::None,
            allow_methods: HeaderValue::from_static(""),
            allow_headers: HeaderValue::from_static(""),
            expose_headers: HeaderValue::from_static(""),
            allow_credentials: false,
        }
    }
}

fn joined(configured: &Option<Vec<String>>, default: &[&str]) -> Result<HeaderValue, CorsError> {
    let text = match configured {
        Some(list) => list.join(", "),
        None => default.join(", "),
    };
    HeaderValue::from_str(&text).map_err(|_| CorsError::NotAHeaderValue(text))
}

impl CorsPolicy {
    pub fn new(settings: &CorsSettings) -> Result<CorsPolicy, CorsError> {
        let origins = if settings.allowed_origins.is_empty() {
            Origins::None
        } else if settings.allowed_origins.iter().any(|o| o == "*") {
            if settings.allow_credentials {
                return Err(CorsError::AnyOriginWithCredentials);
            }
            Origins::Any
        } else {
            let list = settings
                .allowed_origins
                .iter()
                // Browsers send the origin without a trailing slash.
                .map(|o| o.trim_end_matches('/'))
                .map(|o| {
                    HeaderValue::from_str(o).map_err(|_| CorsError::NotAHeaderValue(o.to_string()))
                })
                .collect::<Result<_, _>>()?;
            Origins::List(list)
        };
        Ok(CorsPolicy {
            origins,
            allow_methods: joined(&settings.allowed_methods, DEFAULT_ALLOWED_METHODS)?,
            allow_headers: joined(&settings.allowed_headers, DEFAULT_ALLOWED_HEADERS)?,
            expose_headers: joined(&settings.expose_headers, DEFAULT_EXPOSE_HEADERS)?,
            allow_credentials: settings.allow_credentials,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.origins != Origins::None
    }

    /// The request's `Origin` when it is allowed; `None` (no CORS headers)
    /// otherwise. Allocates nothing.
    pub fn allowed_origin<'a>(&self, request: &'a HeaderMap) -> Option<&'a HeaderValue> {
        if let Origins::None = self.origins {
            return None;
        }
        let origin = request.get(header::ORIGIN)?;
        match &self.origins {
            Origins::None => None,
            Origins::Any => Some(origin),
            Origins::List(list) => list.iter().any(|o| o == origin).then_some(origin),
        }
    }

    /// Whether this request is a preflight to answer here rather than route.
    pub fn is_preflight(method: &axum::http::Method) -> bool {
        method == axum::http::Method::OPTIONS
    }

    /// Headers of a preflight answer (`204`) to an allowed origin.
    pub fn preflight_headers(&self, origin: &HeaderValue) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(6);
        self.set_origin(&mut headers, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            self.allow_headers.clone(),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_SECS),
        );
        self.add_vary(&mut headers);
        headers
    }

    /// Adds to an actual response what lets the page's script read it.
    pub fn decorate(&self, response: &mut HeaderMap, origin: &HeaderValue) {
        self.set_origin(response, origin);
        response.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            self.expose_headers.clone(),
        );
        self.add_vary(response);
    }

    /// Marks a response as depending on `Origin` when CORS is on, whatever the
    /// request's origin (none, listed or not): a shared cache must not hand
    /// the answer one origin got to another. Idempotent.
    pub fn add_vary(&self, response: &mut HeaderMap) {
        if !self.is_enabled() {
            return;
        }
        let already = response.get_all(header::VARY).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .any(|name| name == "*" || name.eq_ignore_ascii_case("origin"))
            })
        });
        if !already {
            response.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    fn set_origin(&self, headers: &mut HeaderMap, origin: &HeaderValue) {
        // `*` needs no echo; listed origins are echoed exactly, and only they
        // may be told credentials are welcome (`new` refuses `*` with them).
        let value = match self.origins {
            Origins::Any => HeaderValue::from_static("*"),
            _ => origin.clone(),
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.allow_credentials && matches!(self.origins, Origins::List(_)) {
            headers.insert(
                HeaderName::from_static("access-control-allow-credentials"),
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str]) -> CorsPolicy {
        CorsPolicy::new(&CorsSettings {
            allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        })
        .unwrap()
    }

    fn with_origin(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h
    }

    #[test]
    fn no_origins_configured_means_no_cors_for_anyone() {
        let p = CorsPolicy::default();
        assert!(!p.is_enabled());
        assert_eq!(p.allowed_origin(&with_origin("http://ui")), None);
        let empty = policy(&[]);
        assert!(!empty.is_enabled());
        assert_eq!(empty.allowed_origin(&with_origin("http://ui")), None);
    }

    #[test]
    fn only_listed_origins_are_allowed_exactly() {
        let p = policy(&["http://ui:8080/", "https://other"]);
        assert!(p.is_enabled());
        let ok = with_origin("http://ui:8080");
        assert_eq!(p.allowed_origin(&ok).unwrap(), "http://ui:8080");
        assert_eq!(p.allowed_origin(&with_origin("http://ui:8081")), None);
        assert_eq!(p.allowed_origin(&with_origin("http://ui")), None);
        assert_eq!(p.allowed_origin(&HeaderMap::new()), None);
    }

    #[test]
    fn star_allows_any_origin_and_answers_star() {
        let p = policy(&["*"]);
        let request = with_origin("http://anything");
        let origin = p.allowed_origin(&request).unwrap();
        let mut response = HeaderMap::new();
        p.decorate(&mut response, origin);
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let exposed = response[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap();
        for name in ["Docker-Content-Digest", "Berth-Cache", "Warning"] {
            assert!(exposed.contains(name), "{name} in {exposed}");
        }
        // Requests without Origin get no `*`: caches must still tell them apart.
        assert_eq!(response[header::VARY], "Origin");
        assert!(response.get("access-control-allow-credentials").is_none());
    }

    #[test]
    fn preflight_names_methods_headers_and_max_age() {
        let p = policy(&["http://ui"]);
        let request = with_origin("http://ui");
        let headers = p.preflight_headers(p.allowed_origin(&request).unwrap());
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://ui");
        assert_eq!(headers[header::VARY], "Origin");
        let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap();
        assert!(methods.contains("DELETE") && methods.contains("GET"));
        let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap();
        for name in [
            "Authorization",
            "Accept",
            "Content-Type",
            "Content-Range",
            "Range",
            "Cache-Control",
        ] {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }
        assert_eq!(headers[header::ACCESS_CONTROL_MAX_AGE], "3600");
        assert!(headers.get("access-control-allow-credentials").is_none());
        assert!(CorsPolicy::is_preflight(&axum::http::Method::OPTIONS));
        assert!(!CorsPolicy::is_preflight(&axum::http::Method::GET));
    }

    #[test]
    fn configured_lists_and_credentials_replace_the_defaults() {
        let p = CorsPolicy::new(&CorsSettings {
            allowed_origins: vec!["http://ui".into(), "http://other".into()],
            allowed_methods: Some(vec!["GET".into(), "HEAD".into()]),
            allowed_headers: Some(vec!["Authorization".into()]),
            expose_headers: Some(vec!["Docker-Content-Digest".into()]),
            allow_credentials: true,
        })
        .unwrap();
        let request = with_origin("http://ui");
        let origin = p.allowed_origin(&request).unwrap();
        let headers = p.preflight_headers(origin);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD");
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "Authorization"
        );
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://ui");
        assert_eq!(headers["access-control-allow-credentials"], "true");
        let mut response = HeaderMap::new();
        p.decorate(&mut response, origin);
        assert_eq!(
            response[header::ACCESS_CONTROL_EXPOSE_HEADERS],
            "Docker-Content-Digest"
        );
        assert_eq!(response["access-control-allow-credentials"], "true");
        // Not listed: nothing to decorate with, so no credentials either.
        assert_eq!(p.allowed_origin(&with_origin("http://evil")), None);
    }

    #[test]
    fn any_origin_with_credentials_is_refused() {
        let settings = CorsSettings {
            allowed_origins: vec!["http://ui".into(), "*".into()],
            allow_credentials: true,
            ..Default::default()
        };
        let err = CorsPolicy::new(&settings).unwrap_err();
        assert_eq!(err, CorsError::AnyOriginWithCredentials);
        assert!(err.to_string().contains("\"*\""), "{err}");
        // The same list without credentials is fine.
        let without = CorsSettings {
            allow_credentials: false,
            ..settings
        };
        assert!(CorsPolicy::new(&without).is_ok());
    }

    #[test]
    fn vary_origin_on_every_response_once_cors_is_on() {
        let p = policy(&["http://ui"]);
        // A response to another origin, or to none, gets no CORS headers but
        // still varies on Origin.
        let mut plain = HeaderMap::new();
        p.add_vary(&mut plain);
        assert_eq!(plain[header::VARY], "Origin");
        assert!(plain.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        // Once only, even after decorate and a second call.
        let request = with_origin("http://ui");
        let mut decorated = HeaderMap::new();
        p.decorate(&mut decorated, p.allowed_origin(&request).unwrap());
        p.add_vary(&mut decorated);
        assert_eq!(decorated.get_all(header::VARY).iter().count(), 1);
        // Another Vary is kept; one naming Origin (any case) or `*` is enough.
        let mut other = HeaderMap::new();
        other.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        p.add_vary(&mut other);
        let values: Vec<_> = other.get_all(header::VARY).iter().collect();
        assert_eq!(values, ["Accept-Encoding", "Origin"]);
        for existing in ["accept, origin", "*"] {
            let mut h = HeaderMap::new();
            h.insert(header::VARY, HeaderValue::from_static(existing));
            p.add_vary(&mut h);
            assert_eq!(h.get_all(header::VARY).iter().count(), 1, "{existing}");
        }
        // CORS off: responses are left alone.
        let mut off = HeaderMap::new();
        CorsPolicy::default().add_vary(&mut off);
        assert!(off.get(header::VARY).is_none());
    }

    #[test]
    fn a_value_that_cannot_be_a_header_is_refused() {
        let bad = CorsSettings {
            allowed_origins: vec!["http://ui\n".into()],
            ..Default::default()
        };
        assert!(CorsPolicy::new(&bad).is_err());
    }
}
