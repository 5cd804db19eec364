//! The router, where names, references and digests arrive from the network:
//! any path parses without panicking, and a route it accepts renders to a
//! canonical path that parses back to the same route.
#![no_main]

use axum::http::Method;
use berth_server::api_route::ApiRoute;
use berth_server::route::{parse, Route};
use libfuzzer_sys::fuzz_target;

const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fn canonical(route: &Route) -> String {
    match route {
        Route::Base => "/v2/".into(),
        Route::Catalog => "/v2/_catalog".into(),
        Route::Tags { name } => format!("/v2/{name}/tags/list"),
        Route::Manifest { name, reference } => format!("/v2/{name}/manifests/{reference}"),
        Route::Blob { name, digest } => format!("/v2/{name}/blobs/{digest}"),
        Route::StartUpload { name } => format!("/v2/{name}/blobs/uploads/"),
        Route::Upload { name, id } => format!("/v2/{name}/blobs/uploads/{id}"),
        Route::Referrers { name, digest } => format!("/v2/{name}/referrers/{digest}"),
        Route::Healthz => "/healthz".into(),
        Route::Readyz => "/readyz".into(),
        Route::Metrics => "/metrics".into(),
        Route::Token => "/token".into(),
        Route::Api(api) => match api {
            ApiRoute::Overview => "/api/v1/overview".into(),
            ApiRoute::Repositories => "/api/v1/repositories".into(),
            ApiRoute::Tags { name } => format!("/api/v1/repositories/{name}/tags"),
            ApiRoute::Manifest { name, reference } => {
                format!("/api/v1/repositories/{name}/manifests/{reference}")
            }
            ApiRoute::ManifestFiles { name, reference } => {
                format!("/api/v1/repositories/{name}/manifests/{reference}/files")
            }
            ApiRoute::BlobFiles { name, digest } => {
                format!("/api/v1/repositories/{name}/blobs/{digest}/files")
            }
            ApiRoute::Gc => "/api/v1/gc".into(),
            ApiRoute::DeleteRepository { name } => format!("/api/v1/repositories/{name}"),
        },
    }
}

/// `/api/v1` paths read from the end are ambiguous when a repository's
/// last component is an endpoint word: `x/manifests` + `/tags` reads as
/// the manifest `tags` of `x`. The README documents that precedence; such
/// routes need not round-trip.
fn ambiguous(route: &Route) -> bool {
    let name = match route {
        Route::Api(ApiRoute::Tags { name } | ApiRoute::Manifest { name, .. }) => name,
        _ => return false,
    };
    matches!(
        name.as_str().rsplit('/').next(),
        Some("manifests" | "blobs")
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, path)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let method = &METHODS[usize::from(selector) % METHODS.len()];
    if let Some(route) = parse(method, path).ok().filter(|r| !ambiguous(r)) {
        let again = canonical(&route);
        match parse(method, &again) {
            Ok(same) => assert_eq!(same, route, "{path:?} → {again:?}"),
            Err(e) => panic!("{path:?} parsed, its canonical {again:?} did not: {e:?}"),
        }
        if let Route::Upload { id, .. } = &route {
            assert!(!id.is_empty() && !id.contains('/'));
        }
    }
});
