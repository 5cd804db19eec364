//! `berth migrate --from CONFIG --to CONFIG`: copies a whole registry
//! between two sets of stores, showing progress, and turns the report into
//! a summary and an exit code. The copy is in [`copy`]; opening a side in
//! [`stores`].

mod copy;
mod stores;

use crate::config::Config;
use crate::progress::{human_bytes, Bar};
use berth_registry::{IoMode, Registry, RegistryOptions};
use copy::{Migration, Report, Totals};
use std::process::ExitCode;
use std::time::Instant;
use stores::{Side, Stores};

/// Exit code when something could not be copied (the rest was).
const INCOMPLETE: u8 = 1;
/// Exit code when the migration could not run.
const CANNOT_RUN: u8 = 2;

/// A line on stdout; a closed stdout is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub fn run(from: &Config, to: &Config, io: IoMode, dry_run: bool) -> ExitCode {
    if stores::same_stores(from, to) {
        eprintln!("berth migrate: --from and --to name the same stores: nothing to copy");
        return ExitCode::from(CANNOT_RUN);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("berth migrate: cannot start a runtime: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    runtime.block_on(migrate(from, to, io, dry_run))
}

async fn migrate(from: &Config, to: &Config, io: IoMode, dry_run: bool) -> ExitCode {
    let started = Instant::now();
    let source = match Stores::open(from, io, Side::From).await {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("berth migrate: --from: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    eprintln!("migrate: counting what {} holds", source.described);
    let (names, totals) = match copy::count(&source).await {
        Ok(counted) => counted,
        Err(e) => {
            eprintln!("berth migrate: listing the source: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    say!("{}", describe_totals(&totals));
    if dry_run {
        return ExitCode::SUCCESS;
    }
    let destination = match Stores::open(to, io, Side::To).await {
        Ok(stores) => stores,
        Err(e) => {
            eprintln!("berth migrate: --to: {e}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    // Policies stay off: a migration copies what the source holds, even
    // where the destination's quotas or immutable tags would refuse a push.
    let registry = Registry::new(
        destination.blobs.clone(),
        destination.meta.clone(),
        RegistryOptions {
            min_free_bytes: to.min_free_bytes,
            min_free_percent: to.min_free_percent,
            shared_stores: destination.shared,
            ..Default::default()
        },
    );
    eprintln!("migrate: copying into {}", destination.described);
    let bar = Bar::bytes("migrate");
    bar.phase("blobs", totals.bytes);
    let mut migration = Migration::new(&source, &destination, &registry, &bar, totals);
    let mut stopped = None;
    for repo in &names {
        if let Err(e) = migration.repository(repo).await {
            stopped = Some(format!("{repo}: {e}"));
            break;
        }
    }
    bar.finish();
    let report = migration.report;
    say!("{}", summary(&report, started.elapsed().as_secs_f64()));
    for failure in &report.failures {
        say!("not copied: {failure}");
    }
    if let Some(why) = stopped {
        eprintln!("berth migrate: stopped: {why}; run it again to continue");
        return ExitCode::from(INCOMPLETE);
    }
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INCOMPLETE)
    }
}

fn describe_totals(totals: &Totals) -> String {
    format!(
        "source: {} repositories, {} manifests, {} tags, {} blobs ({})",
        totals.repositories,
        totals.manifests,
        totals.tags,
        totals.blobs,
        human_bytes(totals.bytes)
    )
}

/// `migrated in 3.2 s: 120 blobs copied (40.0 MiB), 80 linked, 0 present; ...`
fn summary(report: &Report, secs: f64) -> String {
    let mut text = format!(
        "migrated in {secs:.1} s: {} blobs copied ({}), {} linked, {} already there; \
         {} manifests copied, {} already there; {} tags set, {} already there",
        report.blobs_copied,
        human_bytes(report.bytes_copied),
        report.blobs_linked,
        report.blobs_present,
        report.manifests_copied,
        report.manifests_present,
        report.tags_copied,
        report.tags_present,
    );
    if report.cached_left > 0 {
        text.push_str(&format!(
            "; {} cached manifests left for the pull-through cache to fetch again",
            report.cached_left
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_was_copied_and_what_was_there() {
        let report = Report {
            blobs_copied: 3,
            bytes_copied: 2048,
            blobs_linked: 1,
            manifests_copied: 2,
            tags_present: 4,
            ..Default::default()
        };
        let text = summary(&report, 1.25);
        assert!(
            text.starts_with("migrated in 1.2 s: 3 blobs copied (2.0 KiB), 1 linked"),
            "{text}"
        );
        assert!(text.ends_with("0 tags set, 4 already there"), "{text}");
    }
}
