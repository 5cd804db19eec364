//! `REGISTRY_*` variables, as `registry:2` (distribution) users and tools
//! pass them, read into berth's settings so berth's image can replace
//! `registry:2` in existing scripts. Only variables whose meaning truly
//! matches a berth setting are read; every other `REGISTRY_*` variable is
//! reported back by name (never by value: it may be a secret).

use super::pull_through::{RawProxy, Secret};
use super::storage::{RawS3, RawStorage};
use super::{ConfigError, RawConfig};
use std::collections::HashMap;
use std::path::PathBuf;

/// Prefix of `registry:2`'s per-header variables, followed by the header name.
const HEADERS_PREFIX: &str = "REGISTRY_HTTP_HEADERS_";

/// What the `REGISTRY_*` variables in an environment amount to.
#[derive(Debug, Default, PartialEq)]
pub struct RegistryEnv {
    pub raw: RawConfig,
    /// A `tracing` filter from `REGISTRY_LOG_LEVEL`.
    pub log_level: Option<String>,
    /// Each variable read, with the `BERTH_*` variable of the same setting.
    pub read: Vec<(String, &'static str)>,
    /// Variables berth does not understand, sorted.
    pub ignored: Vec<String>,
}

/// A `registry:2` setting: how to parse it into a [`RawConfig`].
type Apply = fn(&mut RegistryEnv, &'static str, &str) -> Result<(), ConfigError>;

/// Plain variables berth reads, with the `BERTH_*` variable of the same setting.
const VARIABLES: &[(&str, &str, Apply)] = &[
    ("REGISTRY_HTTP_ADDR", "BERTH_ADDR", |e, _, v| {
        e.raw.addr = Some(v.to_string());
        Ok(())
    }),
    (
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
        "BERTH_DATA_DIR",
        |e, _, v| {
            e.raw.data_dir = Some(PathBuf::from(v));
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_DELETE_ENABLED",
        "BERTH_DELETE_ENABLED",
        |e, key, v| {
            e.raw.delete_enabled = Some(boolean(key, v)?);
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE",
        "BERTH_UPLOAD_EXPIRY_SECS",
        |e, key, v| {
            e.raw.upload_expiry_secs = Some(go_duration_secs(v).ok_or_else(|| invalid(key, v))?);
            Ok(())
        },
    ),
    (
        "REGISTRY_AUTH_HTPASSWD_PATH",
        "BERTH_HTPASSWD",
        |e, _, v| {
            e.raw.htpasswd = Some(PathBuf::from(v));
            Ok(())
        },
    ),
    (
        "REGISTRY_AUTH_HTPASSWD_REALM",
        "BERTH_AUTH_REALM",
        |e, _, v| {
            e.raw.auth_realm = Some(v.to_string());
            Ok(())
        },
    ),
    (
        "REGISTRY_HTTP_TLS_CERTIFICATE",
        "BERTH_TLS_CERTIFICATE",
        |e, _, v| {
            e.raw.tls_certificate = Some(PathBuf::from(v));
            Ok(())
        },
    ),
    ("REGISTRY_HTTP_TLS_KEY", "BERTH_TLS_KEY", |e, _, v| {
        e.raw.tls_key = Some(PathBuf::from(v));
        Ok(())
    }),
    ("REGISTRY_STORAGE", "BERTH_STORAGE", |e, _, v| {
        storage(e).backend = Some(v.to_string());
        Ok(())
    }),
    (
        "REGISTRY_STORAGE_S3_REGIONENDPOINT",
        "BERTH_S3_ENDPOINT",
        |e, _, v| {
            s3(e).endpoint = Some(v.to_string());
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_S3_BUCKET",
        "BERTH_S3_BUCKET",
        |e, _, v| {
            s3(e).bucket = Some(v.to_string());
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_S3_REGION",
        "BERTH_S3_REGION",
        |e, _, v| {
            s3(e).region = Some(v.to_string());
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_S3_ACCESSKEY",
        "BERTH_S3_ACCESS_KEY",
        |e, _, v| {
            s3(e).access_key = Some(v.to_string());
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_S3_SECRETKEY",
        "BERTH_S3_SECRET_KEY",
        |e, _, v| {
            s3(e).secret_key = Some(Secret::new(v));
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_S3_FORCEPATHSTYLE",
        "BERTH_S3_FORCE_PATH_STYLE",
        |e, key, v| {
            s3(e).force_path_style = Some(boolean(key, v)?);
            Ok(())
        },
    ),
    (
        "REGISTRY_STORAGE_S3_ROOTDIRECTORY",
        "BERTH_S3_ROOT",
        |e, _, v| {
            s3(e).root = Some(v.to_string());
            Ok(())
        },
    ),
    ("REGISTRY_LOG_LEVEL", "BERTH_LOG", |e, key, v| {
        e.log_level = Some(log_level(v).ok_or_else(|| invalid(key, v))?.to_string());
        Ok(())
    }),
];

/// `REGISTRY_HTTP_HEADERS_<name>` variables that feed the CORS answer
/// (name compared without case), with their `BERTH_*` counterpart.
const CORS_HEADERS: &[(&str, &str, Apply)] = &[
    (
        "Access-Control-Allow-Origin",
        "BERTH_CORS_ALLOWED_ORIGINS",
        |e, _, v| {
            e.raw.cors_allowed_origins = Some(yaml_list(v));
            Ok(())
        },
    ),
    (
        "Access-Control-Allow-Methods",
        "BERTH_CORS_ALLOWED_METHODS",
        |e, _, v| {
            e.raw.cors_allowed_methods = Some(yaml_list(v));
            Ok(())
        },
    ),
    (
        "Access-Control-Allow-Headers",
        "BERTH_CORS_ALLOWED_HEADERS",
        |e, _, v| {
            e.raw.cors_allowed_headers = Some(yaml_list(v));
            Ok(())
        },
    ),
    (
        "Access-Control-Expose-Headers",
        "BERTH_CORS_EXPOSE_HEADERS",
        |e, _, v| {
            e.raw.cors_expose_headers = Some(yaml_list(v));
            Ok(())
        },
    ),
    (
        "Access-Control-Allow-Credentials",
        "BERTH_CORS_ALLOW_CREDENTIALS",
        |e, key, v| {
            let list = yaml_list(v);
            let value = list.first().map(String::as_str).unwrap_or_default();
            e.raw.cors_allow_credentials = Some(boolean(key, value)?);
            Ok(())
        },
    ),
];

/// `registry:2`'s pull-through variables: the fallback upstream
/// (`[proxy]`). berth has no `BERTH_*` twin for them, so none can override.
const PROXY_VARIABLES: &[(&str, Apply)] = &[
    ("REGISTRY_PROXY_REMOTEURL", |e, _, v| {
        proxy(e).remoteurl = Some(v.to_string());
        Ok(())
    }),
    ("REGISTRY_PROXY_USERNAME", |e, _, v| {
        proxy(e).username = Some(v.to_string());
        Ok(())
    }),
    ("REGISTRY_PROXY_PASSWORD", |e, _, v| {
        proxy(e).password = Some(Secret::new(v));
        Ok(())
    }),
];

fn storage(e: &mut RegistryEnv) -> &mut RawStorage {
    e.raw.storage.get_or_insert_with(RawStorage::default)
}

fn s3(e: &mut RegistryEnv) -> &mut RawS3 {
    storage(e).s3.get_or_insert_with(RawS3::default)
}

fn proxy(e: &mut RegistryEnv) -> &mut RawProxy {
    e.raw.proxy.get_or_insert_with(RawProxy::default)
}

/// Variables whose value berth already has: understood, nothing to set.
fn already_true(key: &str, value: &str) -> bool {
    // berth's auth is htpasswd (with the path above).
    key == "REGISTRY_AUTH" && value == "htpasswd"
}

fn invalid(key: &'static str, value: &str) -> ConfigError {
    ConfigError::Invalid(key, value.to_string())
}

/// YAML's booleans as `registry:2` reads them from the environment.
fn boolean(key: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, value)),
    }
}

/// `[a, 'b', "c"]` (a YAML flow list, as `registry:2` takes header values)
/// or `a,b`, as a list of plain values.
fn yaml_list(value: &str) -> Vec<String> {
    let value = value.trim();
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            ['\'', '"']
                .iter()
                .find_map(|q| item.strip_prefix(*q).and_then(|i| i.strip_suffix(*q)))
                .unwrap_or(item)
                .to_string()
        })
        .filter(|item| !item.is_empty())
        .collect()
}

/// Whole seconds in a Go duration such as `168h`, `1h30m` or `90s`
/// (rounded up, so a short age never becomes 0).
fn go_duration_secs(value: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    let secs = total.ceil();
    (secs.is_finite() && secs < u64::MAX as f64).then_some(secs as u64)
}

/// `registry:2`'s log levels as a `tracing` filter.
fn log_level(value: &str) -> Option<&'static str> {
    match value.to_ascii_lowercase().as_str() {
        "debug" => Some("debug"),
        "info" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "fatal" | "panic" => Some("error"),
        _ => None,
    }
}

/// Reads every `REGISTRY_*` variable in `env`; a value berth reads but
/// cannot parse is an error, like a bad `BERTH_*` value.
pub fn read(env: &HashMap<String, String>) -> Result<RegistryEnv, ConfigError> {
    let mut out = RegistryEnv::default();
    let mut keys: Vec<&String> = env.keys().filter(|k| k.starts_with("REGISTRY_")).collect();
    keys.sort();
    for key in keys {
        let value = env.get(key).map(String::as_str).unwrap_or_default();
        if let Some((name, apply)) = PROXY_VARIABLES.iter().find(|(name, _)| *name == key) {
            if !value.is_empty() {
                apply(&mut out, name, value)?;
            }
            continue;
        }
        let known = match key.strip_prefix(HEADERS_PREFIX) {
            Some(header) => CORS_HEADERS
                .iter()
                .find(|(name, ..)| name.eq_ignore_ascii_case(header)),
            None => VARIABLES.iter().find(|(name, ..)| *name == key.as_str()),
        };
        match known {
            // Empty means unset, as for `BERTH_*` variables.
            Some(_) if value.is_empty() => {}
            Some((_, berth, apply)) => {
                let name = static_name(key);
                apply(&mut out, name, value)?;
                out.read.push((key.clone(), berth));
            }
            None if already_true(key, value) => {}
            None => out.ignored.push(key.clone()),
        }
    }
    Ok(out)
}

/// The canonical name of a variable berth reads, for error messages.
fn static_name(key: &str) -> &'static str {
    VARIABLES
        .iter()
        .map(|(name, ..)| *name)
        .find(|name| *name == key)
        .unwrap_or(match key.strip_prefix(HEADERS_PREFIX) {
            Some(_) => "REGISTRY_HTTP_HEADERS_*",
            None => "REGISTRY_*",
        })
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

    #[test]
    fn registry_2_settings_map_onto_berth_settings() {
        let e = read(&env(&[
            ("REGISTRY_HTTP_ADDR", ":5000"),
            ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/data"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "168h"),
            ("REGISTRY_LOG_LEVEL", "debug"),
            ("REGISTRY_STORAGE", "filesystem"),
        ]))
        .unwrap();
        assert_eq!(e.raw.addr.as_deref(), Some(":5000"));
        assert_eq!(e.raw.data_dir, Some(PathBuf::from("/data")));
        assert_eq!(e.raw.delete_enabled, Some(true));
        assert_eq!(e.raw.upload_expiry_secs, Some(168 * 3600));
        assert_eq!(e.log_level.as_deref(), Some("debug"));
        assert_eq!(e.ignored, Vec::<String>::new());
        assert_eq!(e.read.len(), 6);
        assert!(e
            .read
            .contains(&("REGISTRY_HTTP_ADDR".to_string(), "BERTH_ADDR")));
    }

    #[test]
    fn registry_2_htpasswd_auth_maps_onto_berth_auth() {
        let e = read(&env(&[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
        ]))
        .unwrap();
        assert_eq!(e.raw.htpasswd, Some(PathBuf::from("/auth/htpasswd")));
        assert_eq!(e.raw.auth_realm.as_deref(), Some("Registry Realm"));
        assert_eq!(e.ignored, Vec::<String>::new());
        assert!(e
            .read
            .contains(&("REGISTRY_AUTH_HTPASSWD_PATH".to_string(), "BERTH_HTPASSWD")));
        // Another auth kind is not something berth does.
        let e = read(&env(&[("REGISTRY_AUTH", "token")])).unwrap();
        assert_eq!(e.ignored, ["REGISTRY_AUTH"]);
    }

    #[test]
    fn cors_headers_take_yaml_lists_or_plain_values() {
        let e = read(&env(&[
            ("REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", "['*']"),
            (
                "REGISTRY_HTTP_HEADERS_ACCESS-CONTROL-ALLOW-METHODS",
                "[HEAD,GET, OPTIONS,DELETE]",
            ),
            (
                "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Headers",
                "[\"Authorization\", \"Accept\"]",
            ),
            (
                "REGISTRY_HTTP_HEADERS_Access-Control-Expose-Headers",
                "Docker-Content-Digest",
            ),
            (
                "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Credentials",
                "[true]",
            ),
        ]))
        .unwrap();
        assert_eq!(e.raw.cors_allowed_origins, Some(vec!["*".to_string()]));
        assert_eq!(
            e.raw.cors_allowed_methods,
            Some(vec![
                "HEAD".into(),
                "GET".into(),
                "OPTIONS".into(),
                "DELETE".into()
            ])
        );
        assert_eq!(
            e.raw.cors_allowed_headers,
            Some(vec!["Authorization".into(), "Accept".into()])
        );
        assert_eq!(
            e.raw.cors_expose_headers,
            Some(vec!["Docker-Content-Digest".into()])
        );
        assert_eq!(e.raw.cors_allow_credentials, Some(true));
        assert_eq!(yaml_list("[http://a, http://b]"), ["http://a", "http://b"]);
        assert_eq!(yaml_list("http://a"), ["http://a"]);
        assert_eq!(yaml_list("[]"), Vec::<String>::new());
    }

    #[test]
    fn registry_2_s3_settings_map_onto_storage_s3() {
        let e = read(&env(&[
            ("REGISTRY_STORAGE", "s3"),
            (
                "REGISTRY_STORAGE_S3_REGIONENDPOINT",
                "http://127.0.0.1:3900",
            ),
            ("REGISTRY_STORAGE_S3_BUCKET", "berth"),
            ("REGISTRY_STORAGE_S3_REGION", "garage"),
            ("REGISTRY_STORAGE_S3_ACCESSKEY", "GK1"),
            ("REGISTRY_STORAGE_S3_SECRETKEY", "not-for-logs"),
            ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"),
            ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/registry"),
        ]))
        .unwrap();
        let storage = e.raw.storage.clone().unwrap();
        assert_eq!(storage.backend.as_deref(), Some("s3"));
        let s3 = storage.s3.unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(s3.bucket.as_deref(), Some("berth"));
        assert_eq!(s3.region.as_deref(), Some("garage"));
        assert_eq!(s3.access_key.as_deref(), Some("GK1"));
        assert_eq!(s3.secret_key, Some(Secret::new("not-for-logs")));
        assert_eq!(s3.force_path_style, Some(true));
        assert_eq!(s3.root.as_deref(), Some("/registry"));
        assert!(e.ignored.is_empty(), "{:?}", e.ignored);
        assert_eq!(e.read.len(), 8);
        assert!(!format!("{e:?}").contains("not-for-logs"));
        assert!(matches!(
            read(&env(&[("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "sure")])),
            Err(ConfigError::Invalid(
                "REGISTRY_STORAGE_S3_FORCEPATHSTYLE",
                _
            ))
        ));
    }

    #[test]
    fn everything_else_is_reported_by_name_only() {
        let e = read(&env(&[
            ("REGISTRY_HTTP_SECRET", "s3cr3t"),
            ("REGISTRY_STORAGE_S3_ENCRYPT", "true"),
            ("REGISTRY_HTTP_HEADERS_X-Content-Type-Options", "[nosniff]"),
            ("REGISTRY_FOO_BAR", "x"),
            ("PATH", "/bin"),
            ("BERTH_ADDR", "127.0.0.1:1"),
        ]))
        .unwrap();
        assert_eq!(
            e.ignored,
            [
                "REGISTRY_FOO_BAR",
                "REGISTRY_HTTP_HEADERS_X-Content-Type-Options",
                "REGISTRY_HTTP_SECRET",
                "REGISTRY_STORAGE_S3_ENCRYPT"
            ]
        );
        assert_eq!(e.raw, RawConfig::default());
    }

    #[test]
    fn values_that_do_not_parse_are_errors() {
        for (key, value) in [
            ("REGISTRY_STORAGE_DELETE_ENABLED", "maybe"),
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "a week"),
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "7d"),
            ("REGISTRY_LOG_LEVEL", "loud"),
        ] {
            assert!(
                matches!(read(&env(&[(key, value)])), Err(ConfigError::Invalid(k, _)) if k == key),
                "{key}={value}"
            );
        }
        // Empty is unset, not an error.
        let e = read(&env(&[("REGISTRY_STORAGE_DELETE_ENABLED", "")])).unwrap();
        assert_eq!(e, RegistryEnv::default());
    }

    #[test]
    fn go_durations_become_whole_seconds() {
        assert_eq!(go_duration_secs("1h30m"), Some(5400));
        assert_eq!(go_duration_secs("90s"), Some(90));
        assert_eq!(go_duration_secs("1.5h"), Some(5400));
        assert_eq!(go_duration_secs("10ms"), Some(1));
        assert_eq!(go_duration_secs(""), None);
        assert_eq!(go_duration_secs("5"), None);
    }

    #[test]
    fn registry_proxy_variables_set_the_fallback_upstream_and_are_not_ignored() {
        let e = read(&env(&[
            ("REGISTRY_PROXY_REMOTEURL", "https://registry-1.docker.io"),
            ("REGISTRY_PROXY_USERNAME", "me"),
            ("REGISTRY_PROXY_PASSWORD", "hunter2"),
        ]))
        .unwrap();
        let proxy = e.raw.proxy.unwrap();
        assert_eq!(
            proxy.remoteurl.as_deref(),
            Some("https://registry-1.docker.io")
        );
        assert_eq!(proxy.username.as_deref(), Some("me"));
        assert_eq!(proxy.password.unwrap().expose(), "hunter2");
        assert!(e.ignored.is_empty(), "{:?}", e.ignored);
        assert!(e.read.is_empty(), "no BERTH_* twin to warn about");
        assert_eq!(
            read(&env(&[("REGISTRY_PROXY_USERNAME", "")]))
                .unwrap()
                .raw
                .proxy,
            None
        );
    }
}
