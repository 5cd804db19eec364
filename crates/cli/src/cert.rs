//! `berth cert`: a local certificate authority and a server certificate
//! signed by it, so that clients can verify berth without a public CA.
//!
//! The CA (`ca.crt`, `ca.key`) is made once and reused: clients trust it
//! once, and each later run (to add a name, or renew) issues a new server
//! certificate (`server.crt` holding the chain, `server.key`) that they
//! already trust. A running `berth serve` picks the new pair up by itself.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::{Duration, OffsetDateTime};

/// Default validity of a server certificate: Apple's clients refuse longer
/// ones (825 days), even from a private CA.
pub const DEFAULT_DAYS: u32 = 825;

/// Validity of the CA: long, since replacing it means re-trusting it everywhere.
const CA_DAYS: i64 = 10 * 365;

/// Names every server certificate covers.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Rcgen(String, rcgen::Error),
    #[error("--days must be at least 1")]
    NoDays,
    #[error("{0} exists but {1} does not: restore it, or remove both to make a new CA (clients must then trust the new one)")]
    HalfCa(PathBuf, PathBuf),
}

/// The files `berth cert` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }
}

/// What [`make`] did.
#[derive(Debug)]
pub struct Made {
    pub files: CertFiles,
    /// Whether the CA was made now (clients must be told to trust it).
    pub new_ca: bool,
    /// The names the server certificate is valid for.
    pub names: Vec<String>,
}

pub fn run(out: &Path, extra_names: &[String], days: u32, port: u16) -> ExitCode {
    match make(out, extra_names, days) {
        Ok(made) => {
            print!("{}", instructions(&made, port));
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Makes (or reuses) the CA in `out` and issues a server certificate for
/// the local names, this host's name and `extra_names`.
pub fn make(out: &Path, extra_names: &[String], days: u32) -> Result<Made, CertError> {
    if days == 0 {
        return Err(CertError::NoDays);
    }
    std::fs::create_dir_all(out).map_err(|e| CertError::Io(out.to_owned(), e))?;
    let files = CertFiles::in_dir(out);
    let (ca_pem, ca_key, new_ca) = match (files.ca_cert.exists(), files.ca_key.exists()) {
        (true, true) => {
            let key_pem = read(&files.ca_key)?;
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| CertError::Rcgen(files.ca_key.display().to_string(), e))?;
            (read(&files.ca_cert)?, key, false)
        }
        (false, false) => {
            let (pem, key) = new_ca()?;
            write(&files.ca_key, key.serialize_pem().as_bytes(), true)?;
            write(&files.ca_cert, pem.as_bytes(), false)?;
            (pem, key, true)
        }
        (true, false) => return Err(CertError::HalfCa(files.ca_cert, files.ca_key)),
        (false, true) => return Err(CertError::HalfCa(files.ca_key, files.ca_cert)),
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .map_err(|e| CertError::Rcgen(files.ca_cert.display().to_string(), e))?;

    let names = server_names(extra_names, hostname().as_deref());
    let server_key = KeyPair::generate().map_err(|e| CertError::Rcgen("key".into(), e))?;
    let mut params = CertificateParams::new(names.clone())
        .map_err(|e| CertError::Rcgen("a --name".into(), e))?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
    let server = params
        .signed_by(&server_key, &issuer)
        .map_err(|e| CertError::Rcgen("signing the server certificate".into(), e))?;
    // Key first: a server reloading between the two writes sees a
    // mismatched pair, keeps its old one, and loads the new pair on its next look.
    write(
        &files.server_key,
        server_key.serialize_pem().as_bytes(),
        true,
    )?;
    let chain = format!("{}{}", server.pem(), ca_pem);
    write(&files.server_cert, chain.as_bytes(), false)?;
    Ok(Made {
        files,
        new_ca,
        names,
    })
}

/// A CA certificate (PEM) and its key.
fn new_ca() -> Result<(String, KeyPair), CertError> {
    let key = KeyPair::generate().map_err(|e| CertError::Rcgen("key".into(), e))?;
    let mut params = CertificateParams::default();
    let host = hostname().unwrap_or_else(|| "localhost".into());
    params
        .distinguished_name
        .push(DnType::CommonName, format!("berth local CA ({host})"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "berth");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    let cert = params
        .self_signed(&key)
        .map_err(|e| CertError::Rcgen("signing the CA".into(), e))?;
    Ok((cert.pem(), key))
}

/// The local names, `host`, then `extra`, without repeats.
fn server_names(extra: &[String], host: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let candidates = LOCAL_NAMES
        .iter()
        .copied()
        .chain(host)
        .chain(extra.iter().map(String::as_str));
    for name in candidates {
        let name = name.trim();
        if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
    }
    names
}

fn hostname() -> Option<String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_str().ok()?.trim().to_string();
    (!name.is_empty() && name != "localhost").then_some(name)
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|e| CertError::Io(path.to_owned(), e))
}

/// Writes `bytes` to a temporary file beside `path` and renames it over
/// `path`, so a server never reads half a file; keys are 0600 from the start.
fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e| CertError::Io(path.to_owned(), e);
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&temp)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)
}

/// What to do with the files: where each client looks for the CA, and how
/// to serve with the pair.
pub fn instructions(made: &Made, port: u16) -> String {
    let f = &made.files;
    let ca = f.ca_cert.display();
    let mut text = String::new();
    let ca_state = if made.new_ca {
        "new: clients must trust it"
    } else {
        "reused: clients that trust it need nothing new"
    };
    text.push_str(&format!("CA certificate:     {ca} ({ca_state})\n"));
    text.push_str(&format!(
        "CA key:             {} (keep private)\n",
        f.ca_key.display()
    ));
    text.push_str(&format!(
        "Server certificate: {} (with the CA, for: {})\n",
        f.server_cert.display(),
        made.names.join(", ")
    ));
    text.push_str(&format!(
        "Server key:         {}\n\n",
        f.server_key.display()
    ));
    text.push_str(&format!(
        "Serve with:\n  berth serve --tls-cert {} --tls-key {}\n\n",
        f.server_cert.display(),
        f.server_key.display()
    ));
    let host = format!("localhost:{port}");
    text.push_str(&format!(
        "Trust the CA (HOST:PORT is how clients name berth, e.g. {host}):\n\
         \x20 docker:     /etc/docker/certs.d/HOST:PORT/ca.crt\n\
         \x20   sudo mkdir -p /etc/docker/certs.d/{host} && sudo cp {ca} /etc/docker/certs.d/{host}/ca.crt\n\
         \x20 podman:     /etc/containers/certs.d/HOST:PORT/ca.crt (or --cert-dir DIR holding ca.crt)\n\
         \x20   sudo mkdir -p /etc/containers/certs.d/{host} && sudo cp {ca} /etc/containers/certs.d/{host}/ca.crt\n\
         \x20 skopeo:     the same folders as podman, or --src-cert-dir/--dest-cert-dir DIR\n\
         \x20 containerd: /etc/containerd/certs.d/HOST:PORT/hosts.toml (config_path = \"/etc/containerd/certs.d\"):\n\
         \x20   server = \"https://{host}\"\n\
         \x20   [host.\"https://{host}\"]\n\
         \x20     capabilities = [\"pull\", \"resolve\", \"push\"]\n\
         \x20     ca = \"/etc/containerd/certs.d/{host}/ca.crt\"\n\
         \x20 KinD nodes: copy ca.crt into each node's /etc/containerd/certs.d/NAME:PORT/ beside hosts.toml\n\
         \x20 curl:       --cacert {ca}\n"
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    /// Verifies `server.crt` against `ca.crt` the way a TLS client would.
    fn verify(files: &CertFiles, name: &str) -> Result<(), rustls::Error> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&files.ca_cert).unwrap())
            .unwrap();
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(&files.server_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
    }

    #[test]
    fn the_server_certificate_verifies_against_the_ca_for_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let made = make(
            dir.path(),
            &["berth-registry".into(), "10.1.2.3".into()],
            30,
        )
        .unwrap();
        assert!(made.new_ca);
        for name in [
            "localhost",
            "127.0.0.1",
            "::1",
            "berth-registry",
            "10.1.2.3",
        ] {
            verify(&made.files, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(verify(&made.files, "elsewhere.example").is_err());
    }

    #[test]
    fn a_second_run_reuses_the_ca_and_adds_names() {
        let dir = tempfile::tempdir().unwrap();
        let first = make(dir.path(), &[], 30).unwrap();
        let ca = std::fs::read(&first.files.ca_cert).unwrap();
        let server = std::fs::read(&first.files.server_cert).unwrap();
        let second = make(dir.path(), &["other".into()], 30).unwrap();
        assert!(!second.new_ca);
        assert_eq!(std::fs::read(&second.files.ca_cert).unwrap(), ca);
        assert_ne!(std::fs::read(&second.files.server_cert).unwrap(), server);
        verify(&second.files, "other").unwrap();
        verify(&second.files, "localhost").unwrap();
    }

    #[test]
    fn another_ca_does_not_verify_the_certificate() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let made = make(a.path(), &[], 30).unwrap();
        let other = make(b.path(), &[], 30).unwrap();
        let mixed = CertFiles {
            ca_cert: other.files.ca_cert.clone(),
            ..made.files.clone()
        };
        assert!(verify(&mixed, "localhost").is_err());
    }

    #[test]
    fn keys_are_private_and_a_half_ca_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let made = make(dir.path(), &[], 30).unwrap();
        for key in [&made.files.ca_key, &made.files.server_key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        std::fs::remove_file(&made.files.ca_key).unwrap();
        assert!(matches!(
            make(dir.path(), &[], 30),
            Err(CertError::HalfCa(..))
        ));
    }

    #[test]
    fn names_are_local_then_host_then_given_without_repeats() {
        let names = server_names(
            &["berth-registry".into(), "LOCALHOST".into(), " ".into()],
            Some("box"),
        );
        assert_eq!(
            names,
            ["localhost", "127.0.0.1", "::1", "box", "berth-registry"]
        );
    }
}
