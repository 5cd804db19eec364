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
}
