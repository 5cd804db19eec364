//! OCI Distribution Spec v1.1 conformance suite for berth.
//!
//! Every test starts its own `berth serve` on a free port and an empty data
//! directory, then speaks plain HTTP to it, so tests run in parallel and
//! nothing depends on berth's internals. One module per area of the spec:
//!
//! | module          | area                                                        |
//! |-----------------|-------------------------------------------------------------|
//! | `base`          | `/v2/` support check, error body format                    |
//! | `pull`          | manifest and blob GET/HEAD, Accept, Range                   |
//! | `blob_upload`   | monolithic, chunked and streamed uploads, mounts            |
//! | `manifest_push` | manifest PUT rules: references, media types, limits        |
//! | `validation`    | repository names, tags and digests                          |
//! | `discovery`     | tag list, catalog, referrers                                |
//! | `delete`        | manifest, tag and blob deletion; deletion disabled          |
//! | `robustness`    | truncated bodies, concurrency, upload expiry                |
//! | `durability`    | state surviving a restart                                   |
//! | `wire`          | blob bytes on real sockets; sendfile and streaming paths    |
//! | `portable_io`   | push and pull with Linux's calls forced off (as on macOS)   |
//! | `slow_clients`  | header, idle and body timeouts; connection cap; shutdown    |
//! | `cors`          | preflight and actual responses for browser origins          |
//! | `registry_env`  | registry:2's `REGISTRY_*` variables, ignored ones logged    |
//! | `operations`    | /healthz, /readyz (and its failures), /metrics              |
//! | `ui`            | the web UI's pages, assets, escaping and deletes            |
//! | `api`           | /api/v1 JSON: overview, summaries, tag and image details    |
//! | `repository_delete` | DELETE /api/v1/repositories/NAME and the UI's repository delete: answer, rights, gone; GC and quota panels |
//! | `auth`          | denial matrix, tokens and attacks on them, bcrypt cache     |
//! | `gc`            | the admin socket, `/api/v1/gc`, `berth gc` online and offline |
//! | `policies`      | immutable tags and quotas from a config file: DENIED bodies |
//! | `pull_through`  | a berth in front of a token-auth berth: prefix and `?ns=`, hits, stale, read-only, REGISTRY_PROXY_* |
//! | `replicas`      | two `berth serve` on one Garage bucket and PostgreSQL database: cross-replica pulls, uploads, racing tag pushes |
//!
//! `BERTH_CONFORMANCE_BACKEND=s3pg` starts every server on S3 (Garage) +
//! PostgreSQL instead of the data folder's stores; tests/run.sh runs a
//! subset of the modules so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod conformance {
    pub mod harness;

    mod api;
    mod auth;
    mod base;
    mod blob_upload;
    mod cors;
    mod delete;
    mod discovery;
    mod durability;
    mod gc;
    mod manifest_push;
    mod operations;
    mod policies;
    mod portable_io;
    mod pull;
    mod pull_through;
    mod registry_env;
    mod replicas;

    mod repository_delete;
    mod robustness;
    mod slow_clients;
    mod ui;
    mod ui_login;
    mod validation;
    // sendfile and the page-cache probes it relies on are Linux's.
    #[cfg(target_os = "linux")]
    mod wire;
}
