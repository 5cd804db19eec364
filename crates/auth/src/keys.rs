//! The key berth signs tokens with: ES256 (P-256), generated on first start
//! into `<data_dir>/auth/token-key.pem` or loaded from a configured PEM file.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

/// Where the generated key lives, under the data folder.
pub fn default_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("auth").join("token-key.pem")
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PKCS#8 PEM private key berth can sign with (ECDSA P-256/P-384 or RSA): {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("generating a key: {0}")]
    Generate(String),
}

/// A private key for signing tokens, with its public half for verifying
/// berth's own tokens and a `kid` naming it.
#[derive(Clone)]
pub struct SigningKey {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: String,
}

impl fmt::Debug for SigningKey {
    /// Never prints the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A fresh ES256 private key as PKCS#8 PEM, for a caller that stores it
/// itself (replicas keep theirs in the metadata store).
pub fn generate_pem() -> Result<String, KeyError> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(pair.serialize_pem())
}

impl SigningKey {
    /// A fresh ES256 key (not saved).
    pub fn generate() -> Result<SigningKey, KeyError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        SigningKey::from_pem(&pair.serialize_pem(), Path::new("<generated>"))
    }

    /// Parses a PKCS#8 PEM private key; `origin` names it in errors.
    pub fn from_pem(pem: &str, origin: &Path) -> Result<SigningKey, KeyError> {
        let unusable = |reason: String| KeyError::Unusable {
            path: origin.to_path_buf(),
            reason,
        };
        let pair = rcgen::KeyPair::from_pem(pem).map_err(|e| unusable(e.to_string()))?;
        let public_pem = pair.public_key_pem();
        let alg = pair.algorithm();
        let (algorithm, encoding, decoding) =
            if alg == &rcgen::PKCS_ECDSA_P256_SHA256 || alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
                let algorithm = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
                    Algorithm::ES256
                } else {
                    Algorithm::ES384
                };
                (
                    algorithm,
                    EncodingKey::from_ec_pem(pem.as_bytes()),
                    DecodingKey::from_ec_pem(public_pem.as_bytes()),
                )
            } else if alg == &rcgen::PKCS_RSA_SHA256 {
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_pem(pem.as_bytes()),
                    DecodingKey::from_rsa_pem(public_pem.as_bytes()),
                )
            } else {
                return Err(unusable(format!("unsupported key type {alg:?}")));
            };
        let encoding = encoding.map_err(|e| unusable(e.to_string()))?;
        let decoding = decoding.map_err(|e| unusable(e.to_string()))?;
        Ok(SigningKey {
            algorithm,
            kid: kid_of(&rcgen::PublicKeyData::subject_public_key_info(&pair)),
            encoding,
            decoding,
            public_pem,
        })
    }

    /// Loads a configured key file.
    pub fn from_pem_file(path: &Path) -> Result<SigningKey, KeyError> {
        let pem = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        SigningKey::from_pem(&pem, path)
    }

    /// Loads the key at `path`, or generates one there (folder 0700, file
    /// 0600, created exclusively so two starts cannot both write it).
    pub fn load_or_generate(path: &Path) -> Result<SigningKey, KeyError> {
        if path.exists() {
            return SigningKey::from_pem_file(path);
        }
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let pem = pair.serialize_pem();
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| {
                file.write_all(pem.as_bytes())?;
                file.sync_all()
            });
        match written {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated the token signing key");
                SigningKey::from_pem(&pem, path)
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                SigningKey::from_pem_file(path)
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Names the key in token headers: derived from the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public key (SPKI PEM), e.g. for another service to trust berth's tokens.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }
}

/// The first 16 bytes of sha256 of the public key's DER, in hex.
fn kid_of(public_der: &[u8]) -> String {
    hex::encode(&Sha256::digest(public_der)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_with_private_modes_then_loaded_again() {
        let data = tempfile::tempdir().unwrap();
        let path = default_key_path(data.path());
        let first = SigningKey::load_or_generate(&path).unwrap();
        assert_eq!(first.algorithm(), Algorithm::ES256);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = SigningKey::load_or_generate(&path).unwrap();
        assert_eq!(first.kid(), again.kid());
        assert_eq!(first.public_key_pem(), again.public_key_pem());
        let configured = SigningKey::from_pem_file(&path).unwrap();
        assert_eq!(configured.kid(), first.kid());
    }

    #[test]
    fn kids_differ_between_keys_and_debug_hides_the_key() {
        let one = SigningKey::generate().unwrap();
        let two = SigningKey::generate().unwrap();
        assert_ne!(one.kid(), two.kid());
        assert_eq!(one.kid().len(), 32);
        assert!(!format!("{one:?}").contains("PRIVATE"));
    }

    #[test]
    fn unusable_files_are_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        fs::write(&path, "not a key").unwrap();
        let error = SigningKey::from_pem_file(&path).unwrap_err();
        assert!(matches!(error, KeyError::Unusable { .. }));
        assert!(error.to_string().contains("key.pem"));
        // A public key is not a signing key.
        let public = SigningKey::generate().unwrap().public_key_pem().to_string();
        fs::write(&path, public).unwrap();
        assert!(SigningKey::from_pem_file(&path).is_err());
        assert!(matches!(
            SigningKey::from_pem_file(&dir.path().join("missing.pem")),
            Err(KeyError::Io { .. })
        ));
    }
}
