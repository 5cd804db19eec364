//! The admin socket (`<data_dir>/admin.sock`), `/api/v1/gc` and `berth gc`:
//! the socket's mode and lifetime, its callers' rights with auth on, GC
//! passes through the socket and offline, and who may ask for one.

use super::auth::AuthRegistry;
use super::harness::*;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_socket_is_private_admits_without_credentials_and_goes_at_shutdown() {
    let auth = AuthRegistry::start(false, &[]).await;
    let mut registry = auth.registry;
    let socket = registry.admin_socket();
    let metadata = std::fs::symlink_metadata(&socket).expect("admin.sock exists");
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);

    // Over TCP, no credentials: 401. Through the socket: the operator.
    let resp = registry
        .send(reqwest::Client::new().get(registry.url("/v2/")))
        .await;
    assert_eq!(resp.status(), 401);
    let resp = registry.admin_request("GET", "/v2/").await.unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let resp = registry.admin_request("GET", "/metrics").await.unwrap();
    assert_eq!(resp.status, 200);
    assert!(String::from_utf8_lossy(&resp.body).contains("berth_http_requests_total"));
    let resp = registry.admin_request("GET", "/v2/_catalog").await.unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    // Still a registry: what does not exist is still 404.
    let resp = registry
        .admin_request("GET", "/v2/none/manifests/latest")
        .await
        .unwrap();
    assert_eq!(resp.status, 404);

    registry.terminate();
    assert!(registry.wait_exit(Duration::from_secs(10)).await.is_some());
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_s_socket_file_is_replaced_on_restart() {
    let data = data_dir();
    let socket = data.path().join("admin.sock");
    let registry = Registry::start_in(data.path()).await;
    assert_eq!(
        registry.admin_request("GET", "/v2/").await.unwrap().status,
        200
    );
    registry.stop(); // SIGKILL: the file stays behind
    assert!(socket.exists());
    let registry = Registry::start_in(data.path()).await;
    assert_eq!(
        registry.admin_request("GET", "/v2/").await.unwrap().status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_data_folder_too_deep_for_a_socket_serves_without_one_and_says_so() {
    let base = data_dir();
    let deep = base.path().join("d".repeat(110));
    std::fs::create_dir_all(&deep).unwrap();
    let registry = Registry::start_in(&deep).await;
    assert_eq!(registry.send(registry.get("/v2/")).await.status(), 200);
    assert!(!registry.admin_socket().exists());
    let log = registry.stderr();
    assert!(log.contains("cannot listen on the admin socket"), "{log}");
    // berth gc finds the folder in use and no socket: it cannot run, and says why.
    let (code, out) = berth_gc(&deep, &["--dry-run"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("cannot connect to the server's admin socket"),
        "{out}"
    );
}

/// Runs `berth gc --data-dir DIR ARGS...` with no `BERTH_*` from the
/// environment; its exit code and stdout (stderr appended on failure).
fn berth_gc(data_dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let mut command = std::process::Command::new(berth_binary());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BERTH_")) {
        command.env_remove(key);
    }
    let output = command
        .arg("gc")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run berth gc");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        text.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    (output.status.code().unwrap_or(-1), text)
}

/// A blob pushed into `repo` that no manifest names: garbage once its
/// grace is over. Waits past the second it was pushed in (times are kept
/// in whole seconds), so that a 0s grace covers it.
async fn unreferenced_blob(registry: &Registry, repo: &str) -> (String, std::path::PathBuf) {
    let digest = registry.push_blob(repo, &random_bytes(3000)).await;
    let file = registry.blob_file(&digest);
    assert!(file.exists());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (digest, file)
}

#[tokio::test(flavor = "multi_thread")]
async fn berth_gc_through_the_socket_lists_on_a_dry_run_then_removes_an_unreferenced_blob() {
    let registry = Registry::start().await;
    let kept = registry.push_image("app", "v1").await;
    let (digest, file) = unreferenced_blob(&registry, "app").await;

    let (code, out) = berth_gc(registry.data_dir(), &["--dry-run", "--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("would remove 1 blob (2.9 KiB)"), "{out}");
    assert!(
        out.contains(&format!("blob {digest}")),
        "the list names it: {out}"
    );
    assert!(file.exists(), "a dry run removes nothing");

    let (code, out) = berth_gc(registry.data_dir(), &["--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("removed 1 blob (2.9 KiB), 0 manifests, 0 tags, 1 link"),
        "{out}"
    );
    assert!(!file.exists());
    let resp = registry
        .send(registry.head(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 404);
    // What a manifest names stays.
    let resp = registry
        .send(registry.get(&format!("/v2/app/blobs/{}", kept.layers[0].digest)))
        .await;
    assert_eq!(resp.status(), 200);
    registry.push_image("app", "v2").await;

    // The pass ran inside the server: its metrics saw it.
    let text = registry
        .send(registry.get("/metrics"))
        .await
        .text()
        .await
        .unwrap();
    let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    has("berth_gc_runs_total 1");
    has(r#"berth_gc_removed_total{kind="blob"} 1"#);
    has(r#"berth_gc_removed_total{kind="link"} 1"#);
    has(r#"berth_gc_removed_total{kind="upload"} 0"#);
    has("berth_gc_reclaimed_bytes_total 3000");
    has("berth_gc_candidates 1");
    for name in [
        "berth_gc_reclaimable_bytes ",
        "berth_gc_last_run_duration_seconds ",
        "berth_gc_last_run_timestamp_seconds ",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn berth_gc_on_a_stopped_server_s_folder_runs_the_pass_itself() {
    let data = data_dir();
    let mut registry = Registry::start_in(data.path()).await;
    let (digest, file) = unreferenced_blob(&registry, "app").await;
    registry.terminate();
    assert!(registry.wait_exit(Duration::from_secs(10)).await.is_some());

    let (code, out) = berth_gc(data.path(), &["--grace", "0s"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("removed 1 blob"), "{out}");
    assert!(!file.exists());
    // The folder serves again, without the blob.
    let registry = Registry::start_in(data.path()).await;
    let resp = registry
        .send(registry.head(&format!("/v2/app/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 404);
    registry.push_image("app", "v1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn berth_gc_keeps_what_is_younger_than_the_grace_and_cannot_run_on_no_data_folder() {
    let registry = Registry::start().await;
    let (_, file) = unreferenced_blob(&registry, "app").await;
    let (code, out) = berth_gc(registry.data_dir(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("removed 0 blobs (0 B)"),
        "the default grace is an hour: {out}"
    );
    assert!(file.exists());

    let empty = data_dir();
    let (code, out) = berth_gc(empty.path(), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not a berth data folder"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pass_streams_ndjson_progress_and_ends_with_its_report() {
    let registry = Registry::start().await;
    let (digest, _) = unreferenced_blob(&registry, "app").await;
    let resp = registry
        .admin_request("POST", "/api/v1/gc?dry_run=true&grace=0s")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    let text = String::from_utf8(resp.body).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let (last, progress) = lines.split_last().expect("lines");
    for line in progress {
        let object = line.as_object().unwrap();
        let phase = object.contains_key("phase") && object["total"].is_u64();
        let advance = object.len() == 1 && object["advance"].is_u64();
        assert!(phase || advance, "{line}");
    }
    let phases: Vec<&str> = progress
        .iter()
        .filter_map(|l| l["phase"].as_str())
        .collect();
    assert!(phases.contains(&"blobs"), "{phases:?}");
    let report = &last["report"];
    assert_eq!(report["dry_run"], true, "{last}");
    assert_eq!(report["blobs_removed"], 1, "{last}");
    let listed = report["removed"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|r| r["kind"] == "blob" && r["name"] == digest.as_str() && r["bytes"] == 3000),
        "{last}"
    );

    // GET: the state, with the pass just run and what could go.
    let resp = registry.send(registry.get("/api/v1/gc")).await;
    assert_eq!(resp.status(), 200);
    let state = json_body(resp).await;
    assert_eq!(state["running"], false, "{state}");
    assert_eq!(state["last"]["dry_run"], true, "{state}");
    assert_eq!(state["reclaimable"]["blobs"], 1, "{state}");
    assert_eq!(state["reclaimable"]["bytes"], 3000, "{state}");
    assert!(state["next_run_at"].is_i64(), "the worker is on: {state}");
    // A bad parameter is the client's error, in the OCI format.
    let resp = registry
        .send(registry.request(reqwest::Method::POST, "/api/v1/gc?grace=soon"))
        .await;
    assert_error(resp, 400, "UNSUPPORTED").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_a_pass_takes_admin_over_tcp_and_nothing_through_the_socket() {
    let auth = AuthRegistry::start(false, &[]).await;
    let post = reqwest::Method::POST;
    let resp = auth
        .send(None, post.clone(), "/api/v1/gc?dry_run=true")
        .await;
    assert_eq!(resp.status(), 401, "loopback is no login with auth on");
    let puller = super::auth::basic("puller", super::auth::PASSWORD);
    let resp = auth
        .send(Some(&puller), post.clone(), "/api/v1/gc?dry_run=true")
        .await;
    assert_error(resp, 403, "DENIED").await;
    let admin = super::auth::basic("admin", super::auth::PASSWORD);
    let resp = auth
        .send(Some(&admin), post, "/api/v1/gc?dry_run=true")
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.lines().last().unwrap().starts_with("{\"report\":"),
        "{text}"
    );
    let resp = auth
        .registry
        .admin_request("POST", "/api/v1/gc?dry_run=true")
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    let (code, out) = berth_gc(auth.registry.data_dir(), &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("would remove 0 blobs"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_background_worker_collects_every_interval_and_logs_each_pass() {
    let registry =
        Registry::start_with_env(&[("BERTH_GC_INTERVAL", "1s"), ("BERTH_GC_GRACE", "0s")]).await;
    let (_, file) = unreferenced_blob(&registry, "app").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "not collected:\n{}",
            registry.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = registry.stderr();
    assert!(
        log.contains("garbage collection runs in the background"),
        "{log}"
    );
    assert!(log.contains("garbage collection pass done"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_interval_off_no_pass_runs_by_itself() {
    let registry =
        Registry::start_with_env(&[("BERTH_GC_INTERVAL", "off"), ("BERTH_GC_GRACE", "0s")]).await;
    let (_, file) = unreferenced_blob(&registry, "app").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(file.exists());
    let state = json_body(registry.send(registry.get("/api/v1/gc")).await).await;
    assert!(state["next_run_at"].is_null(), "{state}");
    assert!(state["last"].is_null(), "{state}");
    // A bad setting stops the server before it serves, naming the variable.
    let output = std::process::Command::new(berth_binary())
        .args(["serve", "--data-dir"])
        .arg(registry.data_dir())
        .env("BERTH_GC_INTERVAL", "0s")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BERTH_GC_INTERVAL"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_each_quota_s_use_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "[[quota]]\nrepositories = \"small/*\"\nmax_bytes = \"1MiB\"\nmax_tags = 5\n",
    )
    .unwrap();
    let registry = Registry::start_with_args(&["--config", config.to_str().unwrap()], &[]).await;
    let image = registry.push_image("small/app", "v1").await;
    registry.push_image("free/app", "v1").await;
    let text = registry
        .send(registry.get("/metrics"))
        .await
        .text()
        .await
        .unwrap();
    let bytes = image.manifest.len() as u64 + image.config.size + image.layers[0].size;
    let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    has(&format!(
        r#"berth_quota_used_bytes{{repository="small/app"}} {bytes}"#
    ));
    has(r#"berth_quota_limit_bytes{repository="small/app"} 1048576"#);
    has(r#"berth_quota_used_tags{repository="small/app"} 1"#);
    has(r#"berth_quota_limit_tags{repository="small/app"} 5"#);
    assert!(
        !text.contains(r#"repository="free/app""#),
        "no quota, no series"
    );
}
