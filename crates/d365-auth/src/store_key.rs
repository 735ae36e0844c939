//! The key that encrypts token stores, from the first source that has one:
//!
//! 1. `D365_TOKEN_KEY`: 32 bytes in base64 (`openssl rand -base64 32`) — for CI, containers and
//!    copying a settings file to another machine;
//! 2. the key file `<config dir>/d365/token.key` (created on first use with 32 random bytes,
//!    mode 0600, in a 0700 directory).
//!
//! The OS keyring is not used: on the headless Linux servers and containers this tool targets
//! there is no D-Bus session and no Secret Service provider (the reference's
//! `rust-crates.md` §1), and the kernel keyring does not survive a reboot. A key file with 0600
//! permissions next to the encrypted store protects against the same threats on such machines
//! (other users, backups of the store alone, a store copied without its key).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::Environment;
use crate::token_store::StoreError;

/// The environment variable holding a base64 key.
pub const KEY_ENV: &str = "D365_TOKEN_KEY";

/// Where the key came from (named in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `D365_TOKEN_KEY`.
    Environment,
    /// A key file.
    File(PathBuf),
    /// Given by the program.
    Explicit,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Environment => write!(f, "the {KEY_ENV} environment variable"),
            KeySource::File(p) => write!(f, "the key file {}", p.display()),
            KeySource::Explicit => f.write_str("the key given by the program"),
        }
    }
}

/// A 256-bit store key.
#[derive(Clone)]
pub struct StoreKey {
    bytes: [u8; 32],
    source: KeySource,
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKey").field("bytes", &"<redacted>").field("source", &self.source).finish()
    }
}

impl StoreKey {
    /// A key given by the program.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes, source: KeySource::Explicit }
    }

    /// The key bytes.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Where it came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// 8 bytes identifying the key (stored in file headers so a wrong key is told apart from a
    /// damaged file).
    pub fn id(&self) -> [u8; 8] {
        let mut input = b"d365 token store key id\0".to_vec();
        input.extend_from_slice(&self.bytes);
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
        let mut id = [0; 8];
        id.copy_from_slice(&d.as_ref()[..8]);
        id
    }

    /// Decodes a base64 key (standard or URL-safe alphabet).
    pub fn decode(text: &str, source: KeySource) -> Result<Self, StoreError> {
        let t = text.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| URL_SAFE.decode(t))
            .or_else(|_| URL_SAFE_NO_PAD.decode(t))
            .map_err(|_| bad_key(&source, "it is not base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| bad_key(&source, &format!("it decodes to {} bytes, not 32", v.len())))?;
        Ok(Self { bytes, source })
    }

    /// The key from `D365_TOKEN_KEY`, else the key file in the config directory (created when
    /// missing).
    pub fn resolve(env: &Environment) -> Result<Self, StoreError> {
        if let Some(v) = env.get(KEY_ENV) {
            return Self::decode(v, KeySource::Environment);
        }
        let dir = env.d365_config_dir().ok_or(StoreError::NoConfigDir)?;
        Self::from_file_or_create(&dir.join("token.key"))
    }

    /// Reads the key file at `path`, creating it (0600, 32 random bytes) when it does not exist.
    pub fn from_file_or_create(path: &Path) -> Result<Self, StoreError> {
        let source = KeySource::File(path.to_path_buf());
        for _ in 0..50 {
            match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => return Self::decode(&text, source),
                Ok(_) => {
                    // another process is between create and rename: impossible with the
                    // hard-link scheme below, but an empty file written by hand lands here
                    return Err(bad_key(&source, "the file is empty"));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(path, "read the key file", e)),
            }
            if let Some(parent) = path.parent() {
                crate::token_store::create_private_dir(parent)?;
            }
            let mut bytes = [0u8; 32];
            aws_lc_rs::rand::fill(&mut bytes).map_err(|_| bad_key(&source, "no random numbers available"))?;
            let tmp = crate::token_store::temp_path(path);
            {
                let mut f = crate::token_store::create_private_file(&tmp)?;
                f.write_all(STANDARD.encode(bytes).as_bytes())
                    .and_then(|()| f.write_all(b"\n"))
                    .and_then(|()| f.sync_all())
                    .map_err(|e| StoreError::io(&tmp, "write the key file", e))?;
            }
            // hard_link fails when the key file already exists: the first writer wins, atomically
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "created a new token store key file");
                    return Ok(Self { bytes, source });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io(path, "create the key file", e)),
            }
        }
        Err(bad_key(&source, "it could not be created"))
    }
}

fn bad_key(source: &KeySource, why: &str) -> StoreError {
    StoreError::BadKey { origin: source.to_string(), message: why.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_key_and_key_file() {
        let key = STANDARD.encode([7u8; 32]);
        let k = StoreKey::resolve(&Environment::empty().with(KEY_ENV, &key)).unwrap();
        assert_eq!(k.bytes(), &[7u8; 32]);
        assert!(!format!("{k:?}").contains(&key));
        let e = StoreKey::resolve(&Environment::empty().with(KEY_ENV, "c2hvcnQ=")).unwrap_err().to_string();
        assert!(e.contains("D365_TOKEN_KEY") && e.contains("5 bytes"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let env = Environment::empty().with("D365_CONFIG_DIR", dir.path().join("d365").to_str().unwrap());
        let a = StoreKey::resolve(&env).unwrap();
        let b = StoreKey::resolve(&env).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("d365/token.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
