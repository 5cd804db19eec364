//! How numbers, times, modes and digests are written on the pages.

use berth_oci::Digest;

/// Bytes in binary units, one decimal below 10 of a unit: `0 B`, `512 B`,
/// `1.5 KiB`, `23 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// The first 12 hex digits, as `docker images` shows them.
pub fn short_digest(digest: &Digest) -> &str {
    let hex = digest.hex();
    hex.get(..12).unwrap_or(hex)
}

/// Unix seconds as `2026-11-30 08:01:02 UTC`.
pub fn absolute_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Unix seconds as an ISO 8601 instant, for `<time datetime>`.
pub fn iso_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// How long before `now` `then` was: `just now`, `5 minutes ago`, `3 days ago`.
pub fn relative_time(then: i64, now: i64) -> String {
    let ago = now.saturating_sub(then);
    if ago < 60 {
        return "just now".into();
    }
    format!("{} ago", span(ago))
}

/// A repository's use of its quota, only the limits it has: "1.0 MiB of
/// 10.0 MiB (10%) · 3 of 5 tags".
pub fn quota_use(quota: &crate::ui::view::QuotaView) -> String {
    let percent = |used: u64, max: u64| (used.saturating_mul(100)).checked_div(max).unwrap_or(100);
    let mut parts = Vec::new();
    if let Some(max) = quota.max_bytes {
        parts.push(format!(
            "{} of {} ({}%)",
            size(quota.used_bytes),
            size(max),
            percent(quota.used_bytes, max)
        ));
    }
    if let Some(max) = quota.max_tags {
        parts.push(format!("{} of {max} tags", quota.tags));
    }
    parts.join(" · ")
}

/// How far ahead `then` is: "in 40 minutes", "within a minute".
pub fn time_until(then: i64, now: i64) -> String {
    let ahead = then.saturating_sub(now);
    if ahead < 60 {
        return "within a minute".into();
    }
    format!("in {}", span(ahead))
}

/// A length of time of at least a minute, in its largest whole unit.
fn span(seconds: i64) -> String {
    let (n, unit) = match seconds {
        a if a < 3600 => (a / 60, "minute"),
        a if a < 86_400 => (a / 3600, "hour"),
        a if a < 30 * 86_400 => (a / 86_400, "day"),
        a if a < 365 * 86_400 => (a / (30 * 86_400), "month"),
        a => (a / (365 * 86_400), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural}")
}

/// A tar mode as `ls -l` writes it: `drwxr-xr-x`, `-rwsr-xr-x`, `lrwxrwxrwx`.
pub fn mode(type_char: char, mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(type_char);
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let special = |exec: bool, set: bool, lower: char, upper: char| match (exec, set) {
        (true, true) => lower,
        (false, true) => upper,
        (true, false) => 'x',
        (false, false) => '-',
    };
    out.push(bit(0o400, 'r'));
    out.push(bit(0o200, 'w'));
    out.push(special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'));
    out.push(bit(0o040, 'r'));
    out.push(bit(0o020, 'w'));
    out.push(special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'));
    out.push(bit(0o004, 'r'));
    out.push(bit(0o002, 'w'));
    out.push(special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'));
    out
}

/// JSON re-indented two spaces a level, keys in the order they were
/// pushed and every number and string exactly as written (parsing into a
/// map would sort the keys); bytes that are not JSON come back as text.
pub fn pretty_json(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = text.chars().peekable();
    let (mut in_string, mut escaped) = (false, false);
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
                let close = if c == '{' { '}' } else { ']' };
                out.push(c);
                if chars.next_if_eq(&close).is_some() {
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(23 * 1024 * 1024), "23 MiB");
        assert_eq!(size(u64::MAX), "16 EiB");
    }

    #[test]
    fn times_are_utc_and_relative_to_now() {
        assert_eq!(absolute_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(absolute_time(1_796_000_000), "2026-11-30 00:53:20 UTC");
        assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(relative_time(100, 130), "just now");
        assert_eq!(relative_time(0, 60), "1 minute ago");
        assert_eq!(relative_time(0, 7200), "2 hours ago");
        assert_eq!(relative_time(0, 3 * 86_400), "3 days ago");
        assert_eq!(relative_time(0, 400 * 86_400), "1 year ago");
        assert_eq!(relative_time(10, 0), "just now");
        assert_eq!(time_until(2400, 0), "in 40 minutes");
        assert_eq!(time_until(30, 0), "within a minute");
        assert_eq!(time_until(0, 10), "within a minute", "overdue");
    }

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode('-', 0o755), "-rwxr-xr-x");
        assert_eq!(mode('d', 0o700), "drwx------");
        assert_eq!(mode('-', 0o4755), "-rwsr-xr-x");
        assert_eq!(mode('-', 0o4644), "-rwSr--r--");
        assert_eq!(mode('d', 0o1777), "drwxrwxrwt");
        assert_eq!(mode('l', 0o777), "lrwxrwxrwx");
    }

    #[test]
    fn json_is_reindented_in_its_own_order() {
        let raw = br#"{"schemaVersion":2,"b":[1.50, {}],"a":{"k":"{x, \"y\": [z]}"},"e":[ ]}"#;
        assert_eq!(
            pretty_json(raw),
            "{\n  \"schemaVersion\": 2,\n  \"b\": [\n    1.50,\n    {}\n  ],\n  \"a\": {\n    \"k\": \"{x, \\\"y\\\": [z]}\"\n  },\n  \"e\": []\n}"
        );
        assert_eq!(pretty_json(b"not json {"), "not json {");
    }

    #[test]
    fn short_digests_are_twelve_hex_digits() {
        let digest = Digest::sha256_of(b"x");
        assert_eq!(short_digest(&digest), &digest.hex()[..12]);
    }

    #[test]
    fn quota_use_names_only_the_limits_a_quota_has() {
        let quota = crate::ui::view::QuotaView {
            used_bytes: 1024 * 1024,
            max_bytes: Some(10 * 1024 * 1024),
            tags: 3,
            max_tags: Some(5),
        };
        assert_eq!(quota_use(&quota), "1.0 MiB of 10 MiB (10%) · 3 of 5 tags");
        let tags_only = crate::ui::view::QuotaView {
            max_bytes: None,
            ..quota
        };
        assert_eq!(quota_use(&tags_only), "3 of 5 tags");
    }
}
