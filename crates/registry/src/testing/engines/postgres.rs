//! [`TempPostgres`]: a PostgreSQL cluster of a test's own.
//!
//! `initdb` makes a cluster in a temp folder (trust authentication, user
//! `berth`, no locale, no fsync), `postgres` serves it on a free loopback
//! port with its socket in that folder, and a database `berth` is created.
//! Binaries come from `pg_config --bindir`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's server package).
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as CI
//! does here), the folder is handed to `nobody` (its uid and gid from
//! `/etc/passwd`, 65534 if it is not there) and `initdb` and `postgres`
//! run as that user (std's `Command::uid`/`gid`, which also drop root's
//! supplementary groups); nothing is added to the system.
//!
//! Dropping it stops the server by its PID (SIGTERM, then SIGQUIT if it
//! has not stopped within seconds) and removes the folder. A cluster held
//! in a `static` is never dropped: a watchdog shell, whose stdin is a pipe
//! only this process holds, does the same when the test process exits,
//! however it exits.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh cluster may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Ports tried before giving up (another process may take a free port
/// between the check and the bind).
const PORT_ATTEMPTS: usize = 5;

/// A running throwaway PostgreSQL server.
pub struct TempPostgres {
    server: Child,
    watchdog: Option<Child>,
    port: u16,
    bin: PathBuf,
    databases: AtomicUsize,
    /// Removed after the server stopped (fields drop after `Drop::drop`).
    dir: tempfile::TempDir,
}

/// The user the cluster runs as when the tests run as root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl TempPostgres {
    /// Starts a cluster, or `None` (with the reason printed) when the
    /// PostgreSQL binaries are missing; under `CI=true` that panics.
    pub fn start() -> Option<TempPostgres> {
        let bin = match bin_dir() {
            Ok(bin) => bin,
            Err(why) => return super::unavailable("PostgreSQL", why),
        };
        match Self::start_in(&bin) {
            Ok(pg) => Some(pg),
            Err(why) => panic!("PostgreSQL from {} did not start: {why}", bin.display()),
        }
    }

    fn start_in(bin: &Path) -> Result<TempPostgres, String> {
        // In /tmp when there is one, whatever TMPDIR says: `nobody` must be
        // able to reach it, and the socket's path must stay short (107 bytes).
        let parent = Path::new("/tmp");
        let parent = if parent.is_dir() {
            parent.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("berth-pg-")
            .tempdir_in(parent)
            .map_err(|e| format!("temp folder: {e}"))?;
        let run_as = unprivileged_user();
        if let Some(user) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
                .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        let initdb = command(bin, "initdb", dir.path(), run_as)
            .arg("-D")
            .arg(&data)
            .args(["-U", "berth", "--auth=trust", "--no-locale", "-E", "UTF8"])
            .arg("--no-sync")
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb: {}: {}",
                initdb.status,
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = super::free_port().map_err(|e| format!("free port: {e}"))?;
            let log_path = dir.path().join(format!("postgres-{port}.log"));
            let log = std::fs::File::create(&log_path).map_err(|e| format!("log: {e}"))?;
            let log_err = log.try_clone().map_err(|e| format!("log: {e}"))?;
            let mut server = command(bin, "postgres", dir.path(), run_as)
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(dir.path())
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "shared_buffers=16MB"])
                .args(["-c", "max_connections=200"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| format!("postgres: {e}"))?;
            match wait_ready(bin, &mut server, port) {
                Ok(()) => {
                    let watchdog = watchdog(server.id(), dir.path());
                    let pg = TempPostgres {
                        server,
                        watchdog,
                        port,
                        bin: bin.to_path_buf(),
                        databases: AtomicUsize::new(0),
                        dir,
                    };
                    pg.create_database("berth")?;
                    return Ok(pg);
                }
                Err(why) => {
                    stop(&mut server);
                    last_failure = format!("{why}; log: {}", read_log(&log_path));
                    if !last_failure.contains("could not bind") {
                        break;
                    }
                }
            }
        }
        Err(last_failure)
    }

    /// The database `berth`, as a `postgres://` URL (no password: trust).
    pub fn url(&self) -> String {
        self.database_url("berth")
    }

    /// The URL of database `name` on this server.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://berth@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID (the postmaster).
    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    /// The folder holding the cluster (`data/`), its socket and its logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates an empty database no other caller gets and returns its URL:
    /// one per test keeps tests sharing a server isolated.
    pub fn fresh_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        if let Err(why) = self.create_database(&name) {
            panic!("creating database {name}: {why}");
        }
        self.database_url(&name)
    }

    /// Creates an empty schema in database `berth` no other caller gets, and
    /// returns a URL whose connections work in it (`search_path`). As
    /// isolated for berth as a database of its own (all its tables live in
    /// one schema) at a fraction of the cost: no copy of the template.
    pub async fn fresh_schema(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url()));
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|e| panic!("creating schema {name}: {e}"));
        drop(client);
        let _ = connection.await;
        format!("{}?options=-c%20search_path%3D{name}", self.url())
    }

    fn create_database(&self, name: &str) -> Result<(), String> {
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "berth",
            ])
            .arg(name)
            .output()
            .map_err(|e| format!("createdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "createdb {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        stop(&mut self.server);
    }
}

/// Stops the server by its PID: SIGTERM (smart shutdown), then SIGQUIT
/// (immediate) if clients keep it up, and waits for it.
fn stop(server: &mut Child) {
    let pid = rustix::process::Pid::from_child(server);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::QUIT);
    let _ = server.wait();
}

/// Waits until the server on `port` accepts connections, or fails if it
/// exited or is still not ready after [`READY_WITHIN`].
fn wait_ready(bin: &Path, server: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("postgres exited: {status}"));
        }
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
            .status()
            .map_err(|e| format!("pg_isready: {e}"))?;
        if ready.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not ready within {READY_WITHIN:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell that stops the server and removes its folder once its stdin
/// closes, which happens when this process exits, even killed. `None` if
/// no shell could be started (a `static` cluster then outlives the tests).
fn watchdog(server: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .args([
            "-c",
            "read _; kill -TERM \"$0\" 2>/dev/null; \
             while kill -0 \"$0\" 2>/dev/null; do sleep 0.1; done; rm -rf \"$1\"",
        ])
        .arg(server.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// A PostgreSQL program run in `dir`, as `run_as` when given.
fn command(bin: &Path, program: &str, dir: &Path, run_as: Option<RunAs>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin.join(program));
    cmd.current_dir(dir);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// `nobody` when running as root (PostgreSQL refuses root), else `None`.
fn unprivileged_user() -> Option<RunAs> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let nobody = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["nobody", _, uid, gid, ..] => Some(RunAs {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    });
    Some(nobody.unwrap_or(RunAs {
        uid: 65534,
        gid: 65534,
    }))
}

/// The folder holding `initdb`, `postgres`, `pg_isready` and `createdb`.
fn bin_dir() -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            candidates.push(PathBuf::from(dir));
        }
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    // Newest major version first (numeric, so 15 before 9).
    debian.sort_by_key(|p| {
        let version = p.parent().and_then(|v| v.file_name());
        let version = version
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok());
        std::cmp::Reverse(version.unwrap_or(0))
    });
    candidates.extend(debian);
    let needed = ["initdb", "postgres", "pg_isready", "createdb"];
    candidates
        .into_iter()
        .find(|dir| needed.iter().all(|b| dir.join(b).is_file()))
        .ok_or_else(|| {
            "no initdb/postgres/pg_isready/createdb from `pg_config --bindir` or \
             /usr/lib/postgresql/*/bin (apt-get install postgresql)"
                .to_string()
        })
}
