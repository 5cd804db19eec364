//! [`TempGarage`]: a throwaway Garage (S3-compatible store) for tests, one
//! node or a cluster of them, on loopback ports in a temp folder.

use super::{cache_dir, loopback_port as free_port, missing_engine, temp_folder};
use crate::storage::s3::{S3BlobStore, S3Settings};
use crate::storage::BlobStore;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "berth";
const REGION: &str = "garage";
/// How long a node may take to listen, and a cluster to serve S3.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs Garage (`$4…`) and kills it once the test process (`$1`) is gone,
/// then removes the engine's folder (`$3`): a Garage shared through a
/// `static` is never dropped, and must not outlive its tests. Writes
/// Garage's PID to `$2` so that it is stopped by PID.
const WATCHDOG: &str = r#"parent=$1; pid_file=$2; dir=$3; shift 3
"$@" & garage=$!
echo "$garage" > "$pid_file"
while kill -0 "$parent" 2>/dev/null && kill -0 "$garage" 2>/dev/null; do sleep 0.5; done
if ! kill -0 "$parent" 2>/dev/null; then
  kill -9 "$garage" 2>/dev/null; wait "$garage"; rm -rf "$dir"
fi"#;

/// Garage nodes running for a test; every process is killed by its PID and
/// the folder removed when this is dropped.
pub struct TempGarage {
    dir: PathBuf,
    binary: PathBuf,
    nodes: Vec<Node>,
    access_key: String,
    secret_key: String,
    /// `<node id>@<rpc address>` of each node, once a cluster is formed.
    node_ids: Vec<String>,
}

struct Node {
    config: PathBuf,
    log: PathBuf,
    /// Where the watchdog writes Garage's PID.
    pid_file: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    /// Log bytes written before the current start: readiness is read after.
    log_start: u64,
    child: Option<Child>,
    /// Extra arguments of `garage server` (single-node set-up).
    server_args: Vec<&'static str>,
}

/// The Garage binary: `$BERTH_GARAGE`, else the one `tests/engines/garage.sh
/// ensure` builds into the cache folder.
pub fn garage_binary() -> PathBuf {
    std::env::var_os("BERTH_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("garage/bin/garage"))
}

impl TempGarage {
    /// One node (replication factor 1) with bucket `berth` and a key that
    /// may use it; `None` (after saying why) when there is no Garage binary.
    pub fn start() -> Option<TempGarage> {
        Self::launch(1)
    }

    /// `n` nodes on loopback RPC, replication factor `n`, in one zone, with
    /// bucket `berth` reachable through every node's S3 port.
    pub fn cluster(n: usize) -> Option<TempGarage> {
        Self::launch(n)
    }

    fn launch(n: usize) -> Option<TempGarage> {
        let binary = garage_binary();
        if !binary.is_file() {
            missing_engine(
                "garage",
                &format!(
                    "no binary at {} (set BERTH_GARAGE, or run tests/engines/garage.sh ensure)",
                    binary.display()
                ),
            );
            return None;
        }
        // A port taken between choosing and binding it fails the start:
        // try again on other ports.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Self::try_launch(&binary, n) {
                Ok(garage) => return Some(garage),
                Err(e) => last_error = e,
            }
        }
        panic!("garage did not start: {last_error}");
    }

    fn try_launch(binary: &Path, n: usize) -> Result<TempGarage, String> {
        let mut garage = TempGarage {
            dir: temp_folder("berth-garage"),
            binary: binary.to_path_buf(),
            nodes: Vec::new(),
            access_key: format!("GK{}", &random_hex()[..24]),
            secret_key: format!("{}{}", random_hex(), random_hex()),
            node_ids: Vec::new(),
        };
        let rpc_secret = format!("{}{}", random_hex(), random_hex());
        for i in 0..n {
            let node = garage.write_node(i, n, &rpc_secret)?;
            garage.nodes.push(node);
        }
        for i in 0..n {
            garage.spawn_node(i);
        }
        for i in 0..n {
            garage.wait_listening(i)?;
        }
        if n > 1 {
            garage.form_cluster()?;
        }
        garage.wait_serving()?;
        Ok(garage)
    }

    /// Settings for the bucket through node 0's S3 port, under `root`.
    pub fn settings(&self) -> S3Settings {
        self.settings_via(0)
    }

    /// Settings for the bucket through node `i`'s S3 port.
    pub fn settings_via(&self, i: usize) -> S3Settings {
        S3Settings {
            endpoint: Some(format!("http://127.0.0.1:{}", self.nodes[i].s3_port)),
            bucket: BUCKET.to_string(),
            region: REGION.to_string(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            force_path_style: true,
            root: None,
            redirect: false,
            allow_http: true,
        }
    }

    /// The end of node `i`'s log, to explain a failure.
    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Kills node `i` (SIGKILL, by PID): its data stays for `start_node`.
    pub fn stop_node(&mut self, i: usize) {
        let Some(mut watchdog) = self.nodes[i].child.take() else {
            return;
        };
        if let Some(pid) = self.garage_pid(i) {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }

    /// Starts node `i` again on its own configuration and ports, and
    /// reconnects it to the others (Garage would only retry after a while).
    pub fn start_node(&mut self, i: usize) {
        if self.nodes[i].child.is_some() {
            return;
        }
        self.spawn_node(i);
        self.wait_listening(i).expect("the node starts again");
        let others = (0..self.node_ids.len()).filter(|j| *j != i);
        for j in others {
            self.cli(i, &["node", "connect", &self.node_ids[j]])
                .expect("the node reconnects");
        }
    }

    fn spawn_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let _ = std::fs::remove_file(&node.pid_file);
        node.log_start = std::fs::metadata(&node.log).map(|m| m.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("a garage log file");
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(std::process::id().to_string())
            .arg(&node.pid_file)
            .arg(&self.dir)
            .arg(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .args(&node.server_args)
            .env("GARAGE_DEFAULT_ACCESS_KEY", &self.access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret_key)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "warn,garage=info,garage_net::netapp=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a garage log file"))
            .stderr(log)
            .spawn()
            .expect("sh starts");
        node.child = Some(child);
    }

    /// The PID of node `i`'s Garage process, once its watchdog wrote it.
    fn garage_pid(&self, i: usize) -> Option<u32> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pid = std::fs::read_to_string(&self.nodes[i].pid_file).unwrap_or_default();
            if let Ok(pid) = pid.trim().parse() {
                return Some(pid);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn write_node(&self, i: usize, n: usize, rpc_secret: &str) -> Result<Node, String> {
        let home = self.dir.join(format!("node{i}"));
        let (s3_port, rpc_port) = (free_port(), free_port());
        let config = format!(
            r#"metadata_dir = "{home}/meta"
data_dir = "{home}/data"
db_engine = "sqlite"
replication_factor = {n}
compression_level = "none"
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#,
            home = home.display()
        );
        std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
        let path = home.join("garage.toml");
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        Ok(Node {
            config: path,
            log: home.join("garage.log"),
            pid_file: home.join("garage.pid"),
            s3_port,
            rpc_port,
            log_start: 0,
            child: None,
            server_args: if n == 1 {
                vec!["--single-node", "--default-bucket"]
            } else {
                vec![]
            },
        })
    }

    /// Waits for node `i` to say that its S3 API and its RPC listen; an
    /// exit is a failure (a port taken, say), with the log's end as reason.
    fn wait_listening(&mut self, i: usize) -> Result<(), String> {
        let node = &self.nodes[i];
        let wanted = [
            format!(
                "S3 API server listening on http://127.0.0.1:{}",
                node.s3_port
            ),
            format!("Listening on 127.0.0.1:{}", node.rpc_port),
        ];
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = std::fs::read(&self.nodes[i].log).unwrap_or_default();
            let start = (self.nodes[i].log_start as usize).min(log.len());
            let log = String::from_utf8_lossy(&log[start..]).into_owned();
            if wanted.iter().all(|line| log.contains(line.as_str())) {
                return Ok(());
            }
            let exited = match self.nodes[i].child.as_mut() {
                Some(child) => child.try_wait().ok().flatten().is_some(),
                None => true,
            };
            if exited || Instant::now() > deadline {
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(format!("node {i} is not listening: {tail}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connects the nodes, gives each a role, applies the layout and adds
    /// the key and the bucket, through node 0's CLI.
    fn form_cluster(&mut self) -> Result<(), String> {
        let ids: Vec<String> = (0..self.nodes.len())
            .map(|i| {
                self.cli(i, &["node", "id", "-q"])
                    .map(|id| id.trim().to_string())
            })
            .collect::<Result<_, _>>()?;
        for id in &ids[1..] {
            self.cli(0, &["node", "connect", id])?;
        }
        let mut assign = vec!["layout", "assign", "-z", "dc1", "-c", "1G"];
        let hex_ids: Vec<&str> = ids
            .iter()
            .map(|id| id.split('@').next().unwrap_or_default())
            .collect();
        assign.extend(hex_ids.iter().copied());
        self.cli(0, &assign)?;
        self.cli(0, &["layout", "apply", "--version", "1"])?;
        self.cli(
            0,
            &["key", "import", "--yes", &self.access_key, &self.secret_key],
        )?;
        self.cli(0, &["bucket", "create", BUCKET])?;
        self.cli(
            0,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                BUCKET,
                "--key",
                &self.access_key,
            ],
        )?;
        self.node_ids = ids;
        Ok(())
    }

    /// Runs `garage <args>` against node `i`; its standard output.
    fn cli(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("garage {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "garage {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until the bucket answers through every node's S3 port (a new
    /// cluster's layout, key and bucket take a moment to reach every node).
    fn wait_serving(&self) -> Result<(), String> {
        let stores: Vec<S3BlobStore> = (0..self.nodes.len())
            .map(|i| S3BlobStore::new(self.settings_via(i)).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        // Its own thread and runtime: callers may be inside a runtime.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let deadline = Instant::now() + START_TIMEOUT;
                for store in &stores {
                    loop {
                        match store.check().await {
                            Ok(()) => break,
                            Err(e) if Instant::now() > deadline => {
                                return Err(format!("the bucket does not answer: {e}"))
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                }
                Ok(())
            })
        })
        .join()
        .map_err(|_| "the readiness check panicked".to_string())?
    }
}

impl Drop for TempGarage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
