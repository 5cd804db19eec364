//! The `[gc]` table: how long unreferenced blobs are kept (`grace`), how
//! often the background pass runs (`interval`, `"off"` for never) and when
//! untagged manifests go too (`untagged_after`, unset: never). Written as
//! durations (`90s`, `10m`, `1h`, `7d`), in the file or as `BERTH_GC_*`.

use super::ConfigError;
use berth_registry::units::{parse_duration, UnitError};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Longest duration accepted (ten years): beyond it time arithmetic overflows.
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

/// The word that turns a duration setting off.
const OFF: &str = "off";

/// `[gc]` as written; every key optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawGc {
    pub grace: Option<String>,
    pub interval: Option<String>,
    pub untagged_after: Option<String>,
}

/// `[gc]`, validated. Defaults: grace 1h, a pass every hour, untagged
/// manifests kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// How long an unreferenced blob is kept after it was last wanted.
    pub grace: Duration,
    /// Time between background passes; `None`: no background pass.
    pub interval: Option<Duration>,
    /// Age at which an untagged manifest is collected; `None`: kept.
    pub untagged_after: Option<Duration>,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            grace: Duration::from_secs(3600),
            interval: Some(Duration::from_secs(3600)),
            untagged_after: None,
        }
    }
}

impl RawGc {
    /// Keys set in `over` replace ours.
    pub fn overlay(self, over: RawGc) -> RawGc {
        RawGc {
            grace: over.grace.or(self.grace),
            interval: over.interval.or(self.interval),
            untagged_after: over.untagged_after.or(self.untagged_after),
        }
    }

    /// `BERTH_GC_*` from `env`, checked here so that an error names the variable.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Option<RawGc>, ConfigError> {
        let read = |key: &'static str, off_allowed: bool| {
            let value = env.get(key).filter(|v| !v.is_empty());
            if let Some(value) = value {
                setting(key, value, off_allowed)?;
            }
            Ok::<_, ConfigError>(value.cloned())
        };
        let raw = RawGc {
            grace: read("BERTH_GC_GRACE", false)?,
            interval: read("BERTH_GC_INTERVAL", true)?,
            untagged_after: read("BERTH_GC_UNTAGGED_AFTER", true)?,
        };
        Ok((raw != RawGc::default()).then_some(raw))
    }

    /// Validates what the layers merged into; errors name the file's key.
    pub fn validate(self) -> Result<GcConfig, ConfigError> {
        let defaults = GcConfig::default();
        let grace = match &self.grace {
            Some(v) => setting("[gc] grace", v, false)?.unwrap_or(defaults.grace),
            None => defaults.grace,
        };
        let interval = match &self.interval {
            Some(v) => setting("[gc] interval", v, true)?,
            None => defaults.interval,
        };
        let untagged_after = match &self.untagged_after {
            Some(v) => setting("[gc] untagged_after", v, true)?,
            None => defaults.untagged_after,
        };
        if interval == Some(Duration::ZERO) {
            return Err(ConfigError::Gc {
                key: "[gc] interval",
                reason: "0s would run passes back to back; use \"off\" for no background pass"
                    .into(),
            });
        }
        Ok(GcConfig {
            grace,
            interval,
            untagged_after,
        })
    }
}

/// One duration setting; `Ok(None)` for `"off"` where that is allowed.
fn setting(
    key: &'static str,
    value: &str,
    off_allowed: bool,
) -> Result<Option<Duration>, ConfigError> {
    if value.trim() == OFF {
        if off_allowed {
            return Ok(None);
        }
        return Err(ConfigError::Gc {
            key,
            reason: format!(
                "{value:?} is not allowed here: give a duration such as 90s, 10m, 1h or 7d"
            ),
        });
    }
    let duration = parse_duration(value).map_err(|e: UnitError| ConfigError::Gc {
        key,
        reason: e.to_string(),
    })?;
    if duration.as_secs() > MAX_SECS {
        return Err(ConfigError::Gc {
            key,
            reason: format!("{value:?} is over ten years"),
        });
    }
    Ok(Some(duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn raw(grace: Option<&str>, interval: Option<&str>, untagged: Option<&str>) -> RawGc {
        RawGc {
            grace: grace.map(Into::into),
            interval: interval.map(Into::into),
            untagged_after: untagged.map(Into::into),
        }
    }

    #[test]
    fn defaults_keep_an_hour_and_pass_hourly_and_keep_untagged_manifests() {
        let gc = RawGc::default().validate().unwrap();
        assert_eq!(gc, GcConfig::default());
        assert_eq!(gc.grace, Duration::from_secs(3600));
        assert_eq!(gc.interval, Some(Duration::from_secs(3600)));
        assert_eq!(gc.untagged_after, None);
    }

    #[test]
    fn durations_and_off_are_read() {
        let gc = raw(Some("90s"), Some("off"), Some("7d"))
            .validate()
            .unwrap();
        assert_eq!(gc.grace, Duration::from_secs(90));
        assert_eq!(gc.interval, None);
        assert_eq!(gc.untagged_after, Some(Duration::from_secs(7 * 86_400)));
        let gc = raw(Some("0s"), Some("10m"), Some("off"))
            .validate()
            .unwrap();
        assert_eq!(gc.grace, Duration::ZERO);
        assert_eq!(gc.interval, Some(Duration::from_secs(600)));
        assert_eq!(gc.untagged_after, None);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (gc, key) in [
            (raw(Some("soon"), None, None), "[gc] grace"),
            (raw(Some("off"), None, None), "[gc] grace"),
            (raw(None, Some("0s"), None), "[gc] interval"),
            (raw(None, Some("1w"), None), "[gc] interval"),
            (raw(None, None, Some("99999d")), "[gc] untagged_after"),
        ] {
            match gc.clone().validate() {
                Err(ConfigError::Gc { key: named, .. }) => assert_eq!(named, key, "{gc:?}"),
                other => panic!("{gc:?}: {other:?}"),
            }
        }
        let message = raw(Some("soon"), None, None)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("[gc] grace") && message.contains("90s"),
            "{message}"
        );
    }

    #[test]
    fn environment_errors_name_the_variable() {
        for key in [
            "BERTH_GC_GRACE",
            "BERTH_GC_INTERVAL",
            "BERTH_GC_UNTAGGED_AFTER",
        ] {
            match RawGc::from_env(&env(&[(key, "later")])) {
                Err(ConfigError::Gc { key: named, .. }) => assert_eq!(named, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        assert!(RawGc::from_env(&env(&[("BERTH_GC_GRACE", "off")])).is_err());
        assert_eq!(RawGc::from_env(&env(&[])).unwrap(), None);
        let read = RawGc::from_env(&env(&[("BERTH_GC_INTERVAL", "off")]))
            .unwrap()
            .unwrap();
        assert_eq!(read.interval.as_deref(), Some("off"));
    }
}
