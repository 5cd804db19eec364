//! Docker credential helpers: `docker-credential-<name> get` reads the
//! registry's address on stdin and prints `{"Username","Secret"}`.

use crate::Login;
use berth_registry::pull_through::UpstreamError;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The address a helper knows `host` by: docker stores Docker Hub's
/// credentials under its old index URL, every other registry by host.
pub fn server_address(host: &str) -> &str {
    match host {
        "registry-1.docker.io" | "index.docker.io" | "docker.io" => "https://index.docker.io/v1/",
        other => other,
    }
}

/// Runs the helper once. Errors name the helper, never its output (which
/// may hold the secret).
pub async fn run(helper: &str, host: &str, timeout: Duration) -> Result<Login, UpstreamError> {
    let program = format!("docker-credential-{helper}");
    let failed =
        |why: String| UpstreamError::Unauthorized(format!("credential helper {program} {why}"));
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not be started: {}", e.kind())))?;
    if let Some(mut stdin) = child.stdin.take() {
        let address = format!("{}\n", server_address(host));
        stdin
            .write_all(address.as_bytes())
            .await
            .map_err(|e| failed(format!("did not read its input: {}", e.kind())))?;
    }
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("did not answer within {}s", timeout.as_secs())))?
        .map_err(|e| failed(format!("failed: {}", e.kind())))?;
    if !output.status.success() {
        return Err(failed(format!("failed ({})", output.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| failed("printed no {\"Username\",\"Secret\"} object".to_string()))?;
    if answer.username == "<token>" {
        return Err(failed(
            "returned an identity token, which berth cannot use: give username/password"
                .to_string(),
        ));
    }
    Ok(Login {
        username: answer.username,
        password: answer.secret,
    })
}
