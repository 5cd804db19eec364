//! `berth gc`: one garbage collection pass now, inside the running server
//! when one holds the data folder (through its admin socket, progress
//! streamed back as NDJSON), else in this process under the folder's lock.
//! Either way the same progress bar and the same report.

use crate::admin_client::{self, AdminClient, Target};
use crate::config::Config;
use berth_registry::gc::{GcProgress, GcReport, GcRequest, Removal, RemovalKind};
use berth_registry::IoMode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use std::io::IsTerminal;
use std::process::ExitCode;

/// A line on stdout; a closed stdout (`berth gc | head`) is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Exit code when the pass failed.
const FAILED: u8 = 1;
/// Exit code when no pass could start.
const CANNOT_RUN: u8 = 2;

/// Why no report came back.
#[derive(Debug)]
enum Failure {
    /// Nothing ran: no data folder, no server answering, a refusal.
    CannotRun(String),
    /// The pass started and failed.
    Failed(String),
}

/// Runs a pass on `config.data_dir` and prints its report.
pub fn run(config: &Config, io: IoMode, request: GcRequest) -> ExitCode {
    let target = match admin_client::locate_for(config) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("berth gc: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("berth gc: cannot start a runtime: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    let bar = Bar::new();
    let outcome = runtime.block_on(async {
        match target {
            Target::Server(client) => through_server(&client, &request, &bar).await,
            Target::Offline(_lock) => offline(config, io, &request, &bar).await,
        }
    });
    bar.0.finish_and_clear();
    match outcome {
        Ok(report) => {
            print_report(&report);
            ExitCode::SUCCESS
        }
        Err(Failure::CannotRun(message)) => {
            eprintln!("berth gc: {message}");
            ExitCode::from(CANNOT_RUN)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("berth gc: the pass failed: {message}");
            ExitCode::from(FAILED)
        }
    }
}

/// One line of the server's NDJSON stream.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Phase { phase: String, total: u64 },
    Advance { advance: u64 },
    Report { report: Box<GcReport> },
    Error { error: String },
}

/// The query string of a pass request.
fn query_of(request: &GcRequest) -> String {
    let mut query = format!("dry_run={}", request.dry_run);
    if let Some(grace) = request.grace {
        query.push_str("&grace=");
        query.push_str(&berth_registry::units::format_duration(grace));
    }
    query
}

/// Asks the server holding the folder for a pass, drawing its progress.
async fn through_server(
    client: &AdminClient,
    request: &GcRequest,
    bar: &Bar,
) -> Result<GcReport, Failure> {
    let path = format!("/api/v1/gc?{}", query_of(request));
    let mut response = client
        .send(hyper::Method::POST, &path)
        .await
        .map_err(|e| Failure::CannotRun(e.to_string()))?;
    loop {
        let line = response
            .next_line()
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        let Some(line) = line else {
            return Err(Failure::Failed(
                "the server closed the stream before the pass ended (stopped?)".into(),
            ));
        };
        match serde_json::from_str::<Line>(&line) {
            Ok(Line::Phase { phase, total }) => bar.phase(&phase, total),
            Ok(Line::Advance { advance }) => bar.advance(advance),
            Ok(Line::Report { report }) => return Ok(*report),
            Ok(Line::Error { error }) => return Err(Failure::Failed(error)),
            // A line a newer server added: not ours to fail on.
            Err(_) => {}
        }
    }
}

/// Opens the stores as `berth serve` does and runs the pass here; the
/// caller holds the data folder's lock.
async fn offline(
    config: &Config,
    io: IoMode,
    request: &GcRequest,
    bar: &Bar,
) -> Result<GcReport, Failure> {
    let registry = crate::serve::open_registry(config, io)
        .await
        .map_err(|e| Failure::CannotRun(format!("cannot open the stores: {e}")))?;
    // What a crash left half-deleted is finished first, as serve does at start.
    registry
        .recover_gc()
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    registry
        .collect_garbage(request, bar)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))
}

/// A bar per phase, drawn only when stderr is a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::hidden();
        if std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>20} {wide_bar} {pos}/{len} {elapsed}")
        {
            bar.set_style(style);
        }
        Bar(bar)
    }
}

impl GcProgress for Bar {
    fn phase(&self, name: &str, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_message(name.to_string());
    }

    /// Never past the phase's total: a batch may count steps the phase
    /// did not announce.
    fn advance(&self, n: u64) {
        let position = self.0.position().saturating_add(n);
        match self.0.length() {
            Some(total) if total > 0 => self.0.set_position(position.min(total)),
            _ => self.0.set_position(position),
        }
    }
}

fn print_report(report: &GcReport) {
    say!("{}", summary(report));
    if report.dry_run {
        for removal in &report.removed {
            say!("  {}", describe(removal));
        }
        let listed = report.removed.len() as u64;
        let total = report.blobs_removed
            + report.manifests_removed
            + report.tags_removed
            + report.links_removed
            + report.uploads_removed;
        if total > listed {
            say!("  ... and {} more", total - listed);
        }
    }
}

/// `removed 12 blobs (340.2 MiB), 3 manifests, 5 tags, 2 links, 1 upload in
/// 0.4 s`, or `would remove ...` for a dry run; also what the log says of
/// each background pass.
pub fn summary(report: &GcReport) -> String {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut text = format!(
        "{verb} {} ({}), {}, {}, {}, {} in {:.1} s",
        count(report.blobs_removed, "blob"),
        human_bytes(report.bytes_removed),
        count(report.manifests_removed, "manifest"),
        count(report.tags_removed, "tag"),
        count(report.links_removed, "link"),
        count(report.uploads_removed, "upload"),
        report.took_ms as f64 / 1000.0,
    );
    if report.evicted_images > 0 {
        // Their blobs come back in a later pass, once past the grace.
        text.push_str(&format!(
            "; {} evicted from the pull-through cache (over [cache] max_size)",
            count(report.evicted_images, "cached image")
        ));
    }
    if report.rescued > 0 {
        text.push_str(&format!(
            "; {} rescued by a push meanwhile",
            count(report.rescued, "candidate")
        ));
    }
    text
}

/// One removal of a dry run's list.
fn describe(removal: &Removal) -> String {
    let kind = match removal.kind {
        RemovalKind::Tag => "tag",
        RemovalKind::Manifest => "manifest",
        RemovalKind::Link => "link",
        RemovalKind::Blob => "blob",
        RemovalKind::Upload => "upload",
    };
    let mut text = match &removal.repository {
        Some(repository) => format!("{kind} {repository} {}", removal.name),
        None => format!("{kind} {}", removal.name),
    };
    if removal.bytes > 0 {
        text.push_str(&format!(" ({})", human_bytes(removal.bytes)));
    }
    if !removal.reason.is_empty() {
        text.push_str(&format!(": {}", removal.reason));
    }
    text
}

fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `340.2 MiB`: binary units, one decimal (none for bytes).
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(356_725_555), "340.2 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn the_summary_counts_each_kind_and_says_would_for_a_dry_run() {
        let mut report = GcReport {
            blobs_removed: 12,
            bytes_removed: 356_725_555,
            manifests_removed: 3,
            tags_removed: 5,
            links_removed: 2,
            uploads_removed: 1,
            took_ms: 400,
            ..Default::default()
        };
        assert_eq!(
            summary(&report),
            "removed 12 blobs (340.2 MiB), 3 manifests, 5 tags, 2 links, 1 upload in 0.4 s"
        );
        report.dry_run = true;
        report.rescued = 1;
        assert!(summary(&report).starts_with("would remove 12 blobs"));
        assert!(summary(&report).ends_with("; 1 candidate rescued by a push meanwhile"));
        report.rescued = 0;
        report.evicted_images = 2;
        assert!(
            summary(&report).ends_with(
                "; 2 cached images evicted from the pull-through cache (over [cache] max_size)"
            ),
            "{}",
            summary(&report)
        );
    }

    #[test]
    fn the_request_travels_as_a_query() {
        let request = GcRequest {
            dry_run: true,
            grace: Some(std::time::Duration::from_secs(90)),
        };
        assert_eq!(query_of(&request), "dry_run=true&grace=90s");
        let request = GcRequest {
            dry_run: false,
            grace: None,
        };
        assert_eq!(query_of(&request), "dry_run=false");
    }

    #[test]
    fn stream_lines_parse_and_unknown_ones_are_skipped() {
        assert!(matches!(
            serde_json::from_str::<Line>("{\"phase\":\"blobs\",\"total\":3}"),
            Ok(Line::Phase { total: 3, .. })
        ));
        assert!(matches!(
            serde_json::from_str::<Line>("{\"advance\":2}"),
            Ok(Line::Advance { advance: 2 })
        ));
        assert!(matches!(
            serde_json::from_str::<Line>("{\"error\":\"disk\"}"),
            Ok(Line::Error { .. })
        ));
        assert!(serde_json::from_str::<Line>("{\"news\":1}").is_err());
    }
}
