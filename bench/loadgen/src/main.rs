//! loadgen: drives an OCI registry over HTTP/1.1 on loopback and prints one
//! JSON line of results per run. See bench/README.md.

mod api;
mod auth;
mod http;
mod listing;
mod machine;
mod manifest;
mod pull;
mod push;
mod soak;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Load generator for the berth benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log in with these credentials (a throwaway bench user): `Authorization:
    /// Basic` on every request, as docker sends after `docker login`.
    #[arg(long, global = true, value_name = "USER:PASSWORD")]
    basic: Option<String>,
    /// With --basic: fetch one Bearer token (scope repository:REPO:pull,push)
    /// from the realm of the registry's challenge and send it instead.
    #[arg(long, global = true)]
    token: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Push `count` fresh random blobs of `size` bytes over `streams` connections.
    Push {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "bench/push")]
        repo: String,
        #[arg(long, value_parser = parse_size, default_value = "64MiB")]
        size: usize,
        #[arg(long, default_value_t = 4)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        streams: usize,
        #[arg(long, value_enum, default_value = "monolithic")]
        mode: push::Mode,
        #[arg(long, value_parser = parse_size, default_value = "8MiB")]
        chunk: usize,
        /// Write the pushed digests here (one per line) for `pull`.
        #[arg(long)]
        digests_out: Option<PathBuf>,
        /// At the end, PUT a manifest naming every pushed blob under this tag
        /// (timed with the push), so that a collector keeps them.
        #[arg(long)]
        manifest_tag: Option<String>,
    },
    /// Push fresh blobs that no manifest names, `rate` per second: garbage
    /// for a collector to chew on. Prints its totals every second.
    Churn {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "bench/churn")]
        repo: String,
        #[arg(long, value_parser = parse_size, default_value = "256KiB")]
        size: usize,
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, value_parser = parse_duration, default_value = "3600s")]
        duration: Duration,
    },
    /// GET every blob listed in --digests.
    Pull {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "bench/push")]
        repo: String,
        #[arg(long)]
        digests: PathBuf,
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Hash each blob on the client and compare with its digest.
        #[arg(long)]
        verify: bool,
        /// Go through the list this many times.
        #[arg(long, default_value_t = 1)]
        passes: usize,
    },
    /// GET or HEAD one manifest by tag on `conns` keep-alive connections; or
    /// PUT a new manifest of that image per request, each connection under
    /// its own tag (`put-N`).
    Manifest {
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "bench/manifest")]
        repo: String,
        #[arg(long, default_value = "latest")]
        tag: String,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        duration: Duration,
        #[arg(long, default_value = "GET")]
        method: String,
        /// Do not push the image first: it is already there (a pull-through
        /// cache, which refuses pushes, serving it from its upstream).
        #[arg(long)]
        no_seed: bool,
    },
    /// Create repositories PREFIX00000.. each with one small image tagged v1.
    SeedRepos {
        #[arg(long)]
        url: String,
        count: usize,
        #[arg(long, default_value_t = 0)]
        start: usize,
        #[arg(long, default_value_t = 16)]
        streams: usize,
        #[arg(long, default_value = "seed/r")]
        prefix: String,
    },
    /// List the whole catalog page by page, following Link headers.
    ListCatalog {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 100)]
        n: usize,
        /// Fail unless at least this many repositories are listed.
        #[arg(long, default_value_t = 0)]
        expect: usize,
    },
    /// berth's /api/v1/repositories: every page (following Link), then
    /// `searches` filtered requests; latencies per request.
    ListApi {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 100)]
        n: usize,
        /// Fail unless at least this many repositories are listed.
        #[arg(long, default_value_t = 0)]
        expect: usize,
        #[arg(long, default_value = "seed/r")]
        prefix: String,
        #[arg(long, default_value_t = 50)]
        searches: usize,
    },
    /// GET tags/list of repositories PREFIX00000.. PREFIX<count-1>.
    ListTags {
        #[arg(long)]
        url: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        start: usize,
        #[arg(long, default_value_t = 8)]
        streams: usize,
        #[arg(long, default_value = "seed/r")]
        prefix: String,
    },
    /// Many clients mixing pushes, pulls, listings, mounts and deletes for a
    /// while; prints figures and a verdict, exits 1 if any check fails.
    Soak {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 500)]
        clients: usize,
        #[arg(long, value_parser = parse_duration, default_value = "300s")]
        duration: Duration,
        /// Memory before this is not judged (default: a fifth of the run, 5-30 s).
        #[arg(long, value_parser = parse_duration)]
        warmup: Option<Duration>,
        /// The server's PID, for its memory (VmRSS) and descriptors.
        #[arg(long)]
        server_pid: u32,
        /// The server's log, scanned for panics and warnings at the end.
        #[arg(long)]
        server_log: Option<PathBuf>,
        /// Distinct blob bytes the clients draw from (bounds the server's disk use).
        #[arg(long, value_parser = parse_size, default_value = "1GiB")]
        pool: usize,
        /// A request with no complete answer after this is an error.
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        timeout: Duration,
        /// The verdict fails if the server's RSS ever exceeds this
        /// (default: 64 MiB + 512 KiB per client).
        #[arg(long)]
        rss_ceiling_mib: Option<u64>,
        /// Write the figures and checks as JSON here.
        #[arg(long)]
        json_out: Option<PathBuf>,
    },
    /// The soak with the garbage collector running: docker-like pushers,
    /// verifying pullers, deleters, retention and GC passes at once against a
    /// server with a grace of seconds; then the end state. Exits 1 if a check fails.
    GcSoak {
        #[arg(long)]
        url: String,
        #[arg(long, value_parser = parse_duration, default_value = "90s")]
        duration: Duration,
        #[arg(long, default_value_t = 8)]
        pushers: usize,
        #[arg(long, default_value_t = 8)]
        pullers: usize,
        #[arg(long, default_value_t = 2)]
        deleters: usize,
        /// Shared repositories (`soak/gc/rN`) the pushers' tags live in.
        #[arg(long, default_value_t = 4)]
        repos: usize,
        /// Tags per pusher.
        #[arg(long, default_value_t = 3)]
        slots: usize,
        /// Repositories under the server's retention rule (`soak/retained/rN`).
        #[arg(long, default_value_t = 2)]
        retained: usize,
        /// The rule's keep_last.
        #[arg(long, default_value_t = 2)]
        keep_last: u64,
        /// The server's [gc] grace and untagged_after (what to wait at the end).
        #[arg(long, value_parser = parse_duration, default_value = "3s")]
        grace: Duration,
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        untagged_after: Duration,
        /// berth binary for explicit `berth gc` passes (none: only the server's worker).
        #[arg(long)]
        berth: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        gc_every: Duration,
        #[arg(long, value_parser = parse_size, default_value = "256MiB")]
        pool: usize,
        /// Blobs per size class that images share.
        #[arg(long, default_value_t = 6)]
        hot: u32,
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        timeout: Duration,
        #[arg(long)]
        server_pid: u32,
        #[arg(long)]
        server_log: Option<PathBuf>,
        #[arg(long)]
        json_out: Option<PathBuf>,
    },
    /// SHA-256 speed of one core over an in-memory buffer.
    Sha256 {
        #[arg(long, value_parser = parse_size, default_value = "1GiB")]
        size: usize,
    },
    /// Sequential write + fsync of a file in --dir.
    Disk {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, value_parser = parse_size, default_value = "256MiB")]
        size: usize,
        #[arg(long, value_parser = parse_size, default_value = "1MiB")]
        block: usize,
    },
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mul) = [
        ("GiB", 1usize << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1000),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((s, 1));
    num.trim()
        .parse::<usize>()
        .map(|n| n * mul)
        .map_err(|e| format!("bad size {s:?}: {e}"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1000.0)
    };
    num.parse::<f64>()
        .map(|n| Duration::from_millis((n * ms) as u64))
        .map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// The target of `url`, logged in as `login` (for `repo`'s token scope).
async fn target(
    url: &str,
    login: &auth::Login,
    repo: Option<&str>,
    setup_ms: &mut Option<f64>,
) -> Result<http::Target> {
    let mut t = http::Target::parse(url)?;
    *setup_ms = auth::log_in(&mut t, login, repo).await?;
    Ok(t)
}

async fn run(cmd: Cmd, login: auth::Login) -> Result<serde_json::Value> {
    let mut setup_ms = None;
    let mut out = run_logged_in(cmd, &login, &mut setup_ms).await?;
    if let (Some(ms), Some(obj)) = (setup_ms, out.as_object_mut()) {
        obj.insert(
            "auth".into(),
            serde_json::json!(if login.is_token() { "token" } else { "basic" }),
        );
        obj.insert("auth_setup_ms".into(), serde_json::json!(ms));
    }
    Ok(out)
}

async fn run_logged_in(
    cmd: Cmd,
    login: &auth::Login,
    setup_ms: &mut Option<f64>,
) -> Result<serde_json::Value> {
    let ms = setup_ms;
    Ok(match cmd {
        Cmd::Push {
            url,
            repo,
            size,
            count,
            streams,
            mode,
            chunk,
            digests_out,
            manifest_tag,
        } => {
            if chunk == 0 || streams == 0 {
                bail!("--chunk and --streams must be > 0");
            }
            let a = push::PushArgs {
                repo,
                size,
                count,
                streams,
                mode,
                chunk,
                digests_out,
                manifest_tag,
            };
            push::run(target(&url, login, Some(&a.repo), ms).await?, a).await?
        }
        Cmd::Churn {
            url,
            repo,
            size,
            rate,
            duration,
        } => {
            push::churn(
                target(&url, login, Some(&repo), ms).await?,
                repo,
                size,
                rate,
                duration,
            )
            .await?
        }
        Cmd::Pull {
            url,
            repo,
            digests,
            streams,
            verify,
            passes,
        } => {
            pull::run(
                target(&url, login, Some(&repo), ms).await?,
                pull::PullArgs {
                    repo,
                    digests,
                    streams,
                    verify,
                    passes,
                },
            )
            .await?
        }
        Cmd::Manifest {
            url,
            repo,
            tag,
            conns,
            duration,
            method,
            no_seed,
        } => {
            let method = match method.to_ascii_uppercase().as_str() {
                "GET" => ::http::Method::GET,
                "HEAD" => ::http::Method::HEAD,
                "PUT" => ::http::Method::PUT,
                m => bail!("--method must be GET, HEAD or PUT, not {m}"),
            };
            let a = manifest::ManifestArgs {
                repo,
                tag,
                conns,
                duration,
                method,
                seed: !no_seed,
            };
            manifest::run(target(&url, login, Some(&a.repo), ms).await?, a).await?
        }
        Cmd::SeedRepos {
            url,
            count,
            start,
            streams,
            prefix,
        } => {
            listing::seed(
                target(&url, login, None, ms).await?,
                prefix,
                start,
                count,
                streams,
            )
            .await?
        }
        Cmd::ListCatalog { url, n, expect } => {
            listing::list_catalog(target(&url, login, None, ms).await?, n, expect).await?
        }
        Cmd::ListApi {
            url,
            n,
            expect,
            prefix,
            searches,
        } => {
            api::list_api(
                target(&url, login, None, ms).await?,
                n,
                expect,
                prefix,
                searches,
            )
            .await?
        }
        Cmd::ListTags {
            url,
            count,
            start,
            streams,
            prefix,
        } => {
            listing::list_tags(
                target(&url, login, None, ms).await?,
                prefix,
                start,
                count,
                streams,
            )
            .await?
        }
        Cmd::Soak { .. } | Cmd::GcSoak { .. } => bail!("soaks are run by main"),
        Cmd::Sha256 { size } => machine::sha256(size)?,
        Cmd::Disk { dir, size, block } => machine::disk(&dir, size, block)?,
    })
}

/// A soak's exit: 0 if every check passed, 1 if one failed, 2 if it could not run.
fn exit_soak(outcome: Result<bool>) -> ! {
    match outcome {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::exit(2);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let login = match auth::Login::from_args(cli.basic, cli.token) {
        Ok(l) => l,
        Err(e) => {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::exit(1);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if matches!(cli.cmd, Cmd::Soak { .. } | Cmd::GcSoak { .. })
        && !matches!(login, auth::Login::Anonymous)
    {
        println!(
            "{}",
            serde_json::json!({ "error": "soak runs without auth" })
        );
        std::process::exit(2);
    }
    if let Cmd::Soak {
        url,
        clients,
        duration,
        warmup,
        server_pid,
        server_log,
        pool,
        timeout,
        rss_ceiling_mib,
        json_out,
    } = cli.cmd
    {
        let a = soak::SoakArgs {
            clients,
            duration,
            warmup,
            server_pid,
            server_log,
            pool_bytes: pool as u64,
            timeout,
            rss_ceiling_mib,
            json_out,
        };
        exit_soak(http::Target::parse(&url).and_then(|t| rt.block_on(soak::run(t, a))));
    }
    if let Cmd::GcSoak {
        url,
        duration,
        pushers,
        pullers,
        deleters,
        repos,
        slots,
        retained,
        keep_last,
        grace,
        untagged_after,
        berth,
        data_dir,
        config,
        gc_every,
        pool,
        hot,
        timeout,
        server_pid,
        server_log,
        json_out,
    } = cli.cmd
    {
        let gc = match (berth, data_dir) {
            (Some(berth), Some(data_dir)) => Some(soak::gc::GcCommand {
                berth,
                data_dir,
                config,
            }),
            (None, _) => None,
            (Some(_), None) => {
                println!(
                    "{}",
                    serde_json::json!({ "error": "--berth needs --data-dir" })
                );
                std::process::exit(2);
            }
        };
        let a = soak::gc::GcSoakArgs {
            duration,
            pushers,
            pullers,
            deleters,
            repos,
            slots,
            retained,
            keep_last,
            grace,
            untagged_after,
            gc,
            gc_every,
            pool_bytes: pool as u64,
            hot,
            timeout,
            server_pid,
            server_log,
            json_out,
        };
        exit_soak(http::Target::parse(&url).and_then(|t| rt.block_on(soak::gc::run(t, a))));
    }
    match rt.block_on(run(cli.cmd, login)) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::exit(1);
        }
    }
}
