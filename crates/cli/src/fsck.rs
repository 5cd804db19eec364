//! `berth fsck`: runs the registry's data-folder check, shows its progress,
//! prints what it found (and, with `--repair`, what it moved), and turns the
//! outcome into an exit code.

use berth_registry::fsck::{self, Access, Progress, Report};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// A line on stdout; a closed stdout (`berth fsck | head`) is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Exit code when the data folder has problems (left after `--repair`, if given).
const PROBLEMS_FOUND: u8 = 1;
/// Exit code when fsck could not run at all.
const CANNOT_RUN: u8 = 2;

/// A bar over the bytes to hash, drawn only when stderr is a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::hidden();
        if std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        let style = ProgressStyle::with_template(
            "hashing blobs {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        );
        if let Ok(style) = style {
            bar.set_style(style);
        }
        Bar(bar)
    }
}

impl Progress for Bar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Whether fsck can check the configured stores: only a data folder's
/// own (filesystem blobs, the embedded database).
pub fn covers(config: &crate::config::Config) -> bool {
    use crate::config::{MetadataConfig, StorageConfig};
    matches!(
        (&config.storage, &config.metadata),
        (StorageConfig::Filesystem, MetadataConfig::Sqlite)
    )
}

/// Checks (and with `repair`, repairs) the data folder at `dir`.
pub fn run(dir: &Path, repair: bool) -> ExitCode {
    let access = match fsck::lock(dir) {
        Ok(access) => access,
        Err(e) => {
            eprintln!("berth fsck: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    if let Access::Shared = access {
        if repair {
            eprintln!(
                "berth fsck: a berth server is using {}; stop it before --repair \
                 (a check without --repair can run beside it)",
                dir.display()
            );
            return ExitCode::from(CANNOT_RUN);
        }
        eprintln!(
            "berth fsck: a berth server is using {}: checking read-only, \
             skipping uploads changed in the last {} minutes",
            dir.display(),
            fsck::IN_FLIGHT_GRACE.as_secs() / 60
        );
    }
    let started = Instant::now();
    let report = match fsck::check(dir, &access, &Bar::new()) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("berth fsck: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    print_report(dir, &report, started);
    if report.is_clean() {
        say!("clean");
        return ExitCode::SUCCESS;
    }
    if !repair {
        say!(
            "{} problem(s) found; `berth fsck --repair` quarantines them",
            report.problems.len()
        );
        return ExitCode::from(PROBLEMS_FOUND);
    }
    let repaired = match fsck::repair(dir, &report.problems) {
        Ok(repaired) => repaired,
        Err(e) => {
            eprintln!("berth fsck: repair failed: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    if let Some(folder) = &repaired.folder {
        for path in &repaired.moved {
            say!(
                "moved {} to {}",
                path.display(),
                folder.join(path).display()
            );
        }
        say!(
            "removed {} and added {} metadata row(s); removed rows are in {}",
            repaired.rows_removed,
            repaired.rows_added,
            folder.join("rows.json").display()
        );
    }
    for problem in &repaired.left {
        say!("not repaired: {problem}");
    }
    if repaired.left.is_empty() {
        say!("repaired {} problem(s)", report.problems.len());
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PROBLEMS_FOUND)
    }
}

fn print_report(dir: &Path, report: &Report, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    say!(
        "checked {}: {} blob(s), {} hashed in {secs:.1}s ({:.0} MB/s)",
        dir.display(),
        report.blobs,
        HumanBytes(report.bytes_hashed),
        report.bytes_hashed as f64 / 1e6 / secs.max(1e-3),
    );
    if report.unreferenced.count > 0 {
        say!(
            "info: {} blob(s), {}, are in no repository (kept: deletes only unlink)",
            report.unreferenced.count,
            HumanBytes(report.unreferenced.bytes)
        );
    }
    if report.in_flight > 0 {
        say!(
            "info: {} upload(s) skipped as possibly in flight",
            report.in_flight
        );
    }
    for problem in &report.problems {
        say!("problem: {problem}");
    }
}
