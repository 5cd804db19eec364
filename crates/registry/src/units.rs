//! Durations and byte sizes as people write them in configuration and on
//! the command line: `90s`, `10m`, `1h`, `7d`; `512MiB`, `10GiB`, `2GB`.

use std::time::Duration;

/// A value that is not a duration or size this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {expected}")]
pub struct UnitError {
    pub value: String,
    pub expected: &'static str,
}

/// Splits `"10GiB"` into `(10, "GiB")`.
fn split_number(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let number = s[..end].parse().ok()?;
    Some((number, s[end..].trim()))
}

/// `90s`, `10m`, `1h`, `7d` (or a bare number of seconds).
pub fn parse_duration(value: &str) -> Result<Duration, UnitError> {
    let error = || UnitError {
        value: value.to_string(),
        expected: "a duration such as 90s, 10m, 1h or 7d",
    };
    let (number, unit) = split_number(value).ok_or_else(error)?;
    let seconds_per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(error()),
    };
    number
        .checked_mul(seconds_per)
        .map(Duration::from_secs)
        .ok_or_else(error)
}

/// Writes a duration the way [`parse_duration`] reads it, in its largest
/// whole unit: `3600s` is `1h`, `90s` stays `90s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => "0s".to_string(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `512MiB`, `10GiB`, `2GB`, `100kB` or a bare number of bytes. Binary
/// units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (kB, MB,
/// GB, TB) powers of 1000.
pub fn parse_size(value: &str) -> Result<u64, UnitError> {
    let error = || UnitError {
        value: value.to_string(),
        expected: "a size such as 512MiB, 10GiB or 2GB",
    };
    let (number, unit) = split_number(value).ok_or_else(error)?;
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(error()),
    };
    number.checked_mul(multiplier).ok_or_else(error)
}

/// Bytes for people, in binary units with at most one decimal: `512 B`,
/// `1.5 KiB`, `10 GiB` (a whole number of the unit drops the `.0`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit = 0;
    let mut scale: u64 = 1024;
    while unit + 1 < UNITS.len() && bytes / scale >= 1024 {
        scale *= 1024;
        unit += 1;
    }
    // Tenths of the unit, rounded, in integers so large sizes stay exact.
    let tenths = (u128::from(bytes) * 10 + u128::from(scale) / 2) / u128::from(scale);
    if tenths % 10 == 0 {
        format!("{} {}", tenths / 10, UNITS[unit])
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_each_unit_and_refuse_others() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        for bad in ["", "h", "1w", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn durations_format_in_their_largest_whole_unit() {
        for (secs, text) in [
            (0, "0s"),
            (90, "90s"),
            (600, "10m"),
            (3600, "1h"),
            (172_800, "2d"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)));
        }
    }

    #[test]
    fn sizes_read_binary_and_decimal_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("100kB"), Ok(100_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "GiB", "1.5GiB", "10gib", "-1", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn sizes_format_in_binary_units_with_one_decimal() {
        for (bytes, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (10 << 30, "10 GiB"),
            ((10 << 30) + (1 << 29), "10.5 GiB"),
            (u64::MAX, "16 EiB"),
        ] {
            assert_eq!(format_size(bytes), text, "{bytes}");
        }
    }
}
