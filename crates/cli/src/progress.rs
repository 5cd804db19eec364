//! The progress bar of the long-running commands (`berth gc`, `berth
//! backup`, `berth migrate`) on stderr: drawn on a terminal; elsewhere (CI
//! logs, `docker run`) a line every few seconds when asked for, else nothing.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// What the bar's position counts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Items,
    Bytes,
}

/// A bar on a terminal; lines prefixed by `command` elsewhere.
pub struct Bar {
    bar: ProgressBar,
    unit: Unit,
    /// Set when lines are printed instead of a bar: the command's name and
    /// when the last line went out.
    lines: Option<(&'static str, Mutex<Instant>)>,
}

impl Bar {
    /// A bar counting items, silent off a terminal (what `berth gc` shows).
    pub fn items() -> Bar {
        Bar::new(
            "{msg:>20} {wide_bar} {pos}/{len} {elapsed}",
            Unit::Items,
            None,
        )
    }

    /// A bar counting bytes, with a line every few seconds off a terminal.
    pub fn bytes(command: &'static str) -> Bar {
        Bar::new(
            "{msg:>24} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            Unit::Bytes,
            Some(command),
        )
    }

    fn new(template: &str, unit: Unit, command: Option<&'static str>) -> Bar {
        let bar = ProgressBar::hidden();
        let terminal = std::io::stderr().is_terminal();
        if terminal {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        let lines = match command {
            Some(command) if !terminal => Some((command, Mutex::new(Instant::now()))),
            _ => None,
        };
        Bar { bar, unit, lines }
    }

    /// Starts a phase of `total` units named `name`, at zero.
    pub fn phase(&self, name: &str, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(name.to_string());
    }

    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
        self.line(false);
    }

    /// Moves forward by `n`, never past the total: a batch may count steps
    /// the phase did not announce.
    pub fn advance(&self, n: u64) {
        let position = self.bar.position().saturating_add(n);
        match self.bar.length() {
            Some(total) if total > 0 => self.bar.set_position(position.min(total)),
            _ => self.bar.set_position(position),
        }
        self.line(false);
    }

    /// Clears the bar (the summary follows), or prints the last line.
    pub fn finish(&self) {
        self.line(true);
        self.bar.finish_and_clear();
    }

    fn line(&self, force: bool) {
        let Some((command, last)) = &self.lines else {
            return;
        };
        let Ok(mut last) = last.lock() else {
            return;
        };
        if !force && last.elapsed() < LINE_EVERY {
            return;
        }
        *last = Instant::now();
        let (done, total) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let amounts = match self.unit {
            Unit::Items => format!("{done}/{total}"),
            Unit::Bytes => format!("{}/{}", HumanBytes(done), HumanBytes(total)),
        };
        eprintln!("{command}: {} {amounts}", self.bar.message());
    }
}

/// `340.2 MiB`: binary units, one decimal (none for bytes).
pub fn human_bytes(bytes: u64) -> String {
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
    fn advancing_stops_at_the_total() {
        let bar = Bar::items();
        bar.phase("blobs", 3);
        bar.advance(2);
        bar.advance(5);
        assert_eq!(bar.bar.position(), 3);
    }
}
