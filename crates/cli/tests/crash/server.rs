//! One `berth serve` process on a data folder, killed with SIGKILL by its PID.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Berth {
    child: Child,
    pub addr: SocketAddr,
    stderr_path: PathBuf,
}

impl Berth {
    /// Starts berth on `data` and waits until `/v2/` answers; on failure
    /// returns its stderr.
    pub async fn start(data: &Path, logs: &Path, env: &[(&str, &str)]) -> Result<Berth, String> {
        let mut last = String::new();
        for attempt in 0..5 {
            let addr = free_local_addr();
            let stderr_path = logs.join(format!("berth-{}-{attempt}.log", addr.port()));
            let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
            let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
            for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BERTH_")) {
                command.env_remove(key);
            }
            let child = command
                .arg("serve")
                .arg("--addr")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|e| format!("spawn berth: {e}"))?;
            let mut berth = Berth {
                child,
                addr,
                stderr_path,
            };
            match berth.wait_ready().await {
                Ok(()) => return Ok(berth),
                Err(e) if e.to_lowercase().contains("in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(format!("no free port after 5 attempts:\n{last}"))
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = reqwest::Client::new();
        let url = self.url("/v2/");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("berth exited ({status}):\n{}", self.stderr()));
            }
            let probe = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if matches!(&probe, Ok(r) if r.status() == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "berth not ready after {READY_TIMEOUT:?} ({probe:?}):\n{}",
                    self.stderr()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL (to this child's PID only) and reap it, so that nothing holds
    /// the filesystem any more.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_local_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
}

/// Runs `berth fsck --data-dir DIR`: `None` while this build has no fsck
/// subcommand (`berth fsck --help` fails), else its exit status and output.
pub fn fsck(data: &Path) -> Option<(bool, String)> {
    let berth = env!("CARGO_BIN_EXE_berth");
    let has_fsck = Command::new(berth)
        .args(["fsck", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_fsck {
        // Only a build from before fsck may skip it; CI runs the one with it.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "berth fsck is missing from this build"
        );
        return None;
    }
    let out = Command::new(berth)
        .arg("fsck")
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run berth fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

/// A mounted crashfs, or `None` (the test is skipped) where FUSE is not
/// available; with `CI=true` that is a failure instead.
pub fn mount_crashfs(dir: &Path, capacity: u64) -> Option<crashfs::CrashFs> {
    if let Err(why) = crashfs::fuse_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "crash tests need FUSE: {why}"
        );
        eprintln!("skipped: {why}");
        return None;
    }
    Some(crashfs::CrashFs::mount(dir, capacity).expect("mount crashfs"))
}
