//! `berth import-distribution`: brings a registry:2 filesystem tree into the
//! data folder through the registry's push path, showing progress, and
//! turns the report into a summary and an exit code.

use crate::config::Config;
use crate::data_dir;
use berth_registry::import::{self, DistributionTree, ImportOptions, ImportProgress, ImportReport};
use berth_registry::storage::fs::{create_dir_durably, FsBlobStore};
use berth_registry::storage::sqlite::SqliteMetaStore;
use berth_registry::{Registry, RegistryOptions};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A line on stdout; a closed stdout is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Exit code when something could not be imported (the rest was).
const INCOMPLETE: u8 = 1;
/// Exit code when the import could not run.
const CANNOT_RUN: u8 = 2;

/// How often progress is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Progress as a bar on a terminal, else as a line every few seconds
/// (logs of `docker run` and CI jobs).
enum Progress {
    Bar(ProgressBar),
    Lines(Mutex<Lines>),
}

struct Lines {
    total: u64,
    done: u64,
    repository: String,
    last: Instant,
}

impl Progress {
    fn new() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines(Mutex::new(Lines {
                total: 0,
                done: 0,
                repository: String::new(),
                last: Instant::now(),
            }));
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:20!} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        );
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Progress::Bar(bar)
    }

    fn line(lines: &mut Lines, force: bool) {
        if !force && lines.last.elapsed() < LINE_EVERY {
            return;
        }
        lines.last = Instant::now();
        let percent = lines.done.saturating_mul(100) / lines.total.max(1);
        eprintln!(
            "import: {} of {} ({percent}%), at {}",
            HumanBytes(lines.done),
            HumanBytes(lines.total),
            lines.repository
        );
    }
}

impl ImportProgress for Progress {
    fn start(&self, total_bytes: u64) {
        match self {
            Progress::Bar(bar) => bar.set_length(total_bytes),
            Progress::Lines(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.total = total_bytes;
                    eprintln!("import: {} of blobs to check", HumanBytes(total_bytes));
                }
            }
        }
    }
    fn repository(&self, name: &str) {
        match self {
            Progress::Bar(bar) => bar.set_message(name.to_string()),
            Progress::Lines(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.repository = name.to_string();
                    Progress::line(&mut lines, false);
                }
            }
        }
    }
    fn advance(&self, bytes: u64) {
        match self {
            Progress::Bar(bar) => bar.inc(bytes),
            Progress::Lines(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.done += bytes;
                    Progress::line(&mut lines, false);
                }
            }
        }
    }
    fn finish(&self) {
        match self {
            Progress::Bar(bar) => bar.finish_and_clear(),
            Progress::Lines(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    Progress::line(&mut lines, true);
                }
            }
        }
    }
}

/// Imports the registry:2 tree at `src` into the data folder of `config`,
/// hard-linking blob files where it can when `hard_link`.
pub fn run(src: &Path, config: &Config, hard_link: bool) -> ExitCode {
    let tree = match DistributionTree::locate(src) {
        Ok(tree) => tree,
        Err(e) => {
            eprintln!("berth import-distribution: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth import-distribution: cannot start runtime: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    let started = Instant::now();
    match runtime.block_on(import_into(&tree, config, ImportOptions { hard_link })) {
        Ok(report) => {
            print_report(src, &report, started);
            if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(INCOMPLETE)
            }
        }
        Err(e) => {
            eprintln!("berth import-distribution: {e}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}

async fn import_into(
    tree: &DistributionTree,
    config: &Config,
    options: ImportOptions,
) -> Result<ImportReport, Box<dyn std::error::Error>> {
    let dir = &config.data_dir;
    data_dir::check_writable(dir)?;
    create_dir_durably(dir)?;
    let _lock = data_dir::lock(dir)?;
    let registry = Registry::new(
        Arc::new(FsBlobStore::open(dir)?),
        Arc::new(SqliteMetaStore::open(&dir.join("meta.db"))?),
        RegistryOptions {
            min_free_bytes: config.min_free_bytes,
            min_free_percent: config.min_free_percent,
            ..Default::default()
        },
    );
    let progress = Progress::new();
    let report = import::import(&registry, tree, options, &progress).await?;
    let marker = format!("imported from {}\n", tree.v2().display());
    std::fs::write(dir.join(data_dir::IMPORTED_MARKER), marker)?;
    Ok(report)
}

fn print_report(src: &Path, report: &ImportReport, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    say!(
        "imported {} into berth in {secs:.1}s: {} tags, {} manifests, {} blobs ({}, \
         {:.0} MB/s, {} hard-linked, {} copied); {} repositories now in berth",
        src.display(),
        report.tags,
        report.manifests,
        report.blobs,
        HumanBytes(report.bytes),
        report.bytes as f64 / 1e6 / secs.max(1e-3),
        report.blobs_linked,
        report.blobs - report.blobs_linked,
        report.repositories,
    );
    if report.tags_present + report.manifests_present + report.blobs_present > 0 {
        say!(
            "already in berth: {} tags, {} manifests, {} blob links",
            report.tags_present,
            report.manifests_present,
            report.blobs_present
        );
    }
    for skipped in &report.skipped {
        say!("skipped: {skipped}");
    }
    if !report.is_complete() {
        say!(
            "{} item(s) not imported; everything else was",
            report.skipped.len()
        );
    }
}
