//! One `berth serve` process per test: start on a free port, wait until it
//! answers, read its log, kill it when the test ends.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::shared_stores::{Backend, SharedStores};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `berth serve`, killed when dropped.
pub struct Registry {
    child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stderr_path: PathBuf,
    data_path: PathBuf,
    // Held only to delete the directories when the test ends.
    _data: Option<tempfile::TempDir>,
    _logs: Option<tempfile::TempDir>,
    /// S3 + PostgreSQL stores this server uses, kept running while it does.
    _stores: Option<SharedStores>,
}

impl Registry {
    /// A fresh registry on an empty data directory.
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// A fresh registry with extra environment variables (e.g. `BERTH_DELETE_ENABLED=false`).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let data = data_dir();
        let path = data.path().to_path_buf();
        let mut registry = Self::launch(&path, env).await;
        registry._data = Some(data);
        registry
    }

    /// A fresh registry with extra `berth serve` arguments (e.g. `--cors-origin X`).
    pub async fn start_with_args(args: &[&str], env: &[(&str, &str)]) -> Self {
        let data = data_dir();
        let path = data.path().to_path_buf();
        let mut registry = Self::launch_with(&path, env, None, args).await;
        registry._data = Some(data);
        registry
    }

    /// A registry on a data directory the caller owns (to restart on the same data).
    pub async fn start_in(data_dir: &Path) -> Self {
        Self::launch(data_dir, &[]).await
    }

    /// [`Registry::start_in`] with extra `berth serve` arguments.
    pub async fn start_in_with_args(data_dir: &Path, args: &[&str]) -> Self {
        Self::launch_with(data_dir, &[], None, args).await
    }

    /// A fresh registry whose open-file limit (soft and hard) is `nofile`,
    /// set with `prlimit` before berth starts.
    pub async fn start_with_fd_limit(nofile: u64, env: &[(&str, &str)]) -> Self {
        let data = data_dir();
        let path = data.path().to_path_buf();
        let mut registry = Self::launch_with(&path, env, Some(nofile), &[]).await;
        registry._data = Some(data);
        registry
    }

    /// A fresh replica on `stores` (shared with other replicas), with its
    /// own data folder for what is its own (lock, admin socket).
    pub async fn start_on(stores: &SharedStores, env: &[(&str, &str)]) -> Self {
        let data = data_dir();
        let path = data.path().to_path_buf();
        let mut registry = Self::launch_on(&path, env, None, &[], Some(stores.clone())).await;
        registry._data = Some(data);
        registry
    }

    async fn launch(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::launch_with(data_dir, env, None, &[]).await
    }

    /// Starts on the data folder's own stores, or, under
    /// `BERTH_CONFORMANCE_BACKEND=pg|s3pg`, on fresh shared stores
    /// (unless the test chose the storage itself).
    async fn launch_with(
        data_dir: &Path,
        env: &[(&str, &str)],
        nofile: Option<u64>,
        args: &[&str],
    ) -> Self {
        let backend = Backend::requested();
        let chosen_by_test = env
            .iter()
            .any(|(k, _)| *k == "BERTH_STORAGE" || *k == "BERTH_METADATA_URL");
        let stores = if backend == Backend::Local || chosen_by_test {
            None
        } else {
            Some(
                SharedStores::fresh_for(backend)
                    .await
                    .expect("BERTH_CONFORMANCE_BACKEND needs its engines"),
            )
        };
        Self::launch_on(data_dir, env, nofile, args, stores).await
    }

    async fn launch_on(
        data_dir: &Path,
        env: &[(&str, &str)],
        nofile: Option<u64>,
        args: &[&str],
        stores: Option<SharedStores>,
    ) -> Self {
        let logs = self::data_dir();
        let mut last_stderr = String::new();
        for attempt in 0..5 {
            let addr = free_local_addr();
            let stderr_path = logs.path().join(format!("stderr-{attempt}.log"));
            let stderr = std::fs::File::create(&stderr_path).expect("create stderr log");
            // prlimit execs berth, so the child's PID is berth's.
            let mut command = match nofile {
                Some(n) => {
                    let mut c = Command::new("prlimit");
                    c.arg(format!("--nofile={n}:{n}"))
                        .arg("--")
                        .arg(berth_binary());
                    c
                }
                None => Command::new(berth_binary()),
            };
            // Hermetic: settings come only from the flags and `env` below.
            for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("BERTH_")) {
                command.env_remove(key);
            }
            let child = command
                .arg("serve")
                .arg("--addr")
                .arg(addr.to_string())
                .arg("--data-dir")
                .arg(data_dir)
                .args(args)
                .envs(
                    stores
                        .iter()
                        .flat_map(|s| s.env.iter().map(|(k, v)| (k, v))),
                )
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn berth serve");
            let client = reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("build HTTP client");
            let mut registry = Registry {
                child,
                addr,
                client,
                stderr_path,
                data_path: data_dir.to_path_buf(),
                _data: None,
                _logs: None,
                _stores: stores.clone(),
            };
            match registry.wait_ready().await {
                Ok(()) => {
                    registry._logs = Some(logs);
                    return registry;
                }
                Err(stderr) if stderr.to_lowercase().contains("in use") => {
                    last_stderr = stderr; // someone took the port between our probe and the bind
                }
                Err(stderr) => panic!("berth serve did not become ready on {addr}:\n{stderr}"),
            }
        }
        panic!("berth serve could not bind a free port after 5 attempts:\n{last_stderr}");
    }

    /// Polls `GET /healthz` (anonymous even with auth on) until it answers
    /// 200; on failure returns the server's stderr.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.url("/healthz");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.stderr()));
            }
            let probe = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if matches!(&probe, Ok(r) if r.status() == StatusCode::OK) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "(timed out; last probe: {probe:?})\n{}",
                    self.stderr()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_path
    }

    /// Where the filesystem store keeps the blob `digest` (`algorithm:hex`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // used by `wire`
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
        self.data_path
            .join("blobs")
            .join(algorithm)
            .join(&hex[..2])
            .join(hex)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }

    /// Panics with the server's stderr if the process has died.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("berth serve died ({status}):\n{}", self.stderr());
        }
    }

    /// Sends SIGTERM (a clean stop request) to this server only.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process (like a crash or `kill -9`) and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `authorization` with every request of [`Registry::client`]
    /// from now on (a logged-in client); the helpers then push as that user.
    pub fn authorize_with(&mut self, authorization: &str) {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            authorization.parse().expect("authorization header value"),
        );
        self.client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("build HTTP client");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A `Location` header may be absolute or relative; this makes it a URL.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            self.url(location)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn head(&self, path: &str) -> RequestBuilder {
        self.request(Method::HEAD, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Sends and unwraps: a transport error is always a test failure here.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        let request = request.build().expect("build request");
        let what = format!("{} {}", request.method(), request.url());
        match self.client.execute(request).await {
            Ok(resp) => resp,
            Err(e) => panic!("{what} failed: {e:?}\nserver stderr:\n{}", self.stderr()),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            // The failing test's server log, for the assertion message above it.
            let log = self.stderr();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- berth serve stderr (last 40 lines) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

/// The binary under test: this build's, or `BERTH_TEST_BIN` (to run the
/// suite against another build, e.g. to see a new test fail on old code).
pub fn berth_binary() -> PathBuf {
    std::env::var_os("BERTH_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth")))
}

/// A fresh folder under the build's own temporary folder: on the same disk
/// as `target/`, never a tmpfs, so blob reads take the paths production
/// takes (sendfile needs a filesystem with `RWF_NOWAIT`).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a folder in CARGO_TARGET_TMPDIR")
}

fn free_local_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}
