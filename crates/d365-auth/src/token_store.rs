//! The token store at `OAuthSettingsLocation`: where delegated sign-ins keep their access and
//! refresh tokens between runs.
//!
//! * **Location**: a file path (default `<config dir>/d365/tokens/<hash of authority, tenant,
//!   client and organization>.bin`), or `memory://name`: an in-process map shared by every
//!   handle with the same name.
//! * **At rest**: AES-256-GCM. File = header (`D365TOK`, format version, algorithm, 8-byte key
//!   id) ‖ 12-byte random nonce ‖ ciphertext with tag; the header is the AAD. The key comes
//!   from [`crate::store_key`]: `D365_TOKEN_KEY`, else the key file `<config dir>/d365/token.key`
//!   if it exists, else the OS keyring when one is reachable, else a new key file. Copying the
//!   file to another machine (headless option 2) works only when the key travels too: set the
//!   same `D365_TOKEN_KEY` there (the value of the keyring entry, or of `token.key`), or copy
//!   `token.key`.
//! * **Writes** are atomic (a 0600 temporary file in the same directory, fsync, rename).
//! * **Concurrency**: [`TokenStore::lock`] takes an exclusive lock (`File::lock`) on
//!   `<file>.lock` for a read-modify-write, so of two processes (or two handles in one process)
//!   needing a refresh, one refreshes and the other then reads the new tokens.
//! * **Damage**: a file that is not a token store, was written by a newer d365, was encrypted
//!   with another key, or fails authentication gives a [`StoreError`] naming the file and the
//!   fix. The file is never deleted or overwritten because of such an error.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex as StdMutex};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

use crate::Environment;
use crate::store_key::StoreKey;

const MAGIC: &[u8; 7] = b"D365TOK";
const FORMAT_VERSION: u8 = 1;
const ALG_AES_256_GCM: u8 = 1;
const HEADER_LEN: usize = 7 + 1 + 1 + 8;

/// Why the token store could not be used. Each message names the file and the way out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a d365 token store.
    #[error(
        "{} is not a d365 token store (unknown format): point OAuthSettingsLocation at another file, or if it is d365's and damaged, delete it (`d365 logout`) and sign in again",
        path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// Written by a newer d365.
    #[error("{} was written by a newer d365 (format {version}): upgrade d365, or use another OAuthSettingsLocation", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        version: u8,
    },
    /// Encrypted with another key.
    #[error(
        "{} was encrypted with a different key than {key_source}: set D365_TOKEN_KEY to the key used when it was written (the other machine's d365/token.key, or its OS keyring entry for service d365), or delete it with `d365 logout` and sign in again",
        path.display()
    )]
    WrongKey {
        /// The file.
        path: PathBuf,
        /// Where the key in use came from.
        key_source: String,
    },
    /// Damaged.
    #[error("{} is damaged ({detail}): delete it (`d365 logout`) and sign in again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The key is unusable.
    #[error(
        "the token store key from {origin} is unusable: {message} (a key is 32 random bytes in base64: `openssl rand -base64 32`)"
    )]
    BadKey {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// No place for the default store or key file.
    #[error(
        "no configuration directory for the token store (HOME / XDG_CONFIG_HOME / APPDATA are unset): set OAuthSettingsLocation and D365_TOKEN_KEY, or D365_CONFIG_DIR"
    )]
    NoConfigDir,
    /// The OS keyring holds the key but cannot be used now, or `D365_TOKEN_KEYRING` is invalid.
    #[error("{message}")]
    Keyring {
        /// What is wrong and the way out.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        StoreError::Io { path: path.to_path_buf(), action, source }
    }
}

/// The tokens of one sign-in (one authority + client + resource).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredTokens {
    /// Access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Its expiry, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The signed-in user's name (from the ID token), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The tenant id (from the ID token), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The flow that obtained them.
    #[serde(default)]
    pub flow: String,
    /// When they were stored, Unix seconds.
    #[serde(default)]
    pub updated_at: i64,
    /// SHA-256 (hex) of the `OAuthVerifier` these tokens were redeemed from, so the same
    /// single-use code is not redeemed twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier_sha256: Option<String>,
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("access_token", &self.access_token.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .field("username", &self.username)
            .field("tenant_id", &self.tenant_id)
            .field("flow", &self.flow)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Everything in one store: sign-ins by key.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoreData {
    /// Entries by [`entry_key`].
    #[serde(default)]
    pub entries: BTreeMap<String, StoredTokens>,
}

/// The key of a sign-in inside a store: `authority host|tenant|client|resource`, lower case.
pub fn entry_key(authority_host: &str, tenant: &str, client_id: &str, resource: &str) -> String {
    format!("{}|{}|{}|{}", authority_host.trim_end_matches('/'), tenant, client_id, resource.trim_end_matches('/'))
        .to_ascii_lowercase()
}

type MemoryMap = Arc<tokio::sync::Mutex<StoreData>>;

static MEMORY: LazyLock<StdMutex<HashMap<String, MemoryMap>>> = LazyLock::new(Default::default);

#[derive(Clone)]
enum Backend {
    File { path: PathBuf, key: StoreKey },
    Memory { name: String, map: MemoryMap },
}

/// A handle on one token store. Cheap to clone; handles on the same file or memory name see
/// each other's writes.
#[derive(Clone)]
pub struct TokenStore {
    backend: Backend,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokenStore").field(&self.location()).finish()
    }
}

impl TokenStore {
    /// Opens the store at `location` (`OAuthSettingsLocation`): `memory://name`, a file path, or a
    /// directory (ending in `/` or existing) to hold `default_file_name`; `None` = the default
    /// directory `<config dir>/d365/tokens/`. The key is resolved from `env` for files.
    pub fn open(location: Option<&str>, default_file_name: &str, env: &Environment) -> Result<Self, StoreError> {
        Self::open_with_key(location, default_file_name, env, None)
    }

    /// [`TokenStore::open`] with the key given (`None` = resolve it from `env`).
    pub fn open_with_key(
        location: Option<&str>,
        default_file_name: &str,
        env: &Environment,
        key: Option<&StoreKey>,
    ) -> Result<Self, StoreError> {
        if let Some(name) = location.and_then(|l| l.strip_prefix("memory://")) {
            return Ok(Self::memory(name));
        }
        let path = match location {
            Some(l) => {
                let p = PathBuf::from(l);
                if l.ends_with(['/', '\\']) || p.is_dir() { p.join(default_file_name) } else { p }
            }
            None => env.d365_config_dir().ok_or(StoreError::NoConfigDir)?.join("tokens").join(default_file_name),
        };
        let key = match key {
            Some(k) => k.clone(),
            None => StoreKey::resolve(env)?,
        };
        Ok(Self::file(path, key))
    }

    /// A store in the file `path`, encrypted with `key`.
    pub fn file(path: PathBuf, key: StoreKey) -> Self {
        Self { backend: Backend::File { path, key } }
    }

    /// The in-process store named `name`.
    pub fn memory(name: &str) -> Self {
        let map = MEMORY.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_string()).or_default().clone();
        Self { backend: Backend::Memory { name: name.to_string(), map } }
    }

    /// `memory://name` or the file path.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::File { path, .. } => path.display().to_string(),
            Backend::Memory { name, .. } => format!("memory://{name}"),
        }
    }

    /// The file path, for file stores.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::File { path, .. } => Some(path),
            Backend::Memory { .. } => None,
        }
    }

    /// Takes the store's exclusive lock (waiting for other handles and processes).
    pub async fn lock(&self) -> Result<StoreGuard, StoreError> {
        match &self.backend {
            Backend::Memory { map, .. } => Ok(StoreGuard { inner: Guard::Memory(map.clone().lock_owned().await) }),
            Backend::File { path, key } => {
                let lock_path = lock_path(path);
                if let Some(parent) = path.parent() {
                    create_private_dir(parent)?;
                }
                let lp = lock_path.clone();
                let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, StoreError> {
                    let f = open_lock_file(&lp)?;
                    f.lock().map_err(|e| StoreError::io(&lp, "lock", e))?;
                    Ok(f)
                })
                .await
                .map_err(|e| StoreError::io(&lock_path, "lock", std::io::Error::other(e.to_string())))??;
                Ok(StoreGuard { inner: Guard::File { _lock: file, path: path.clone(), key: key.clone() } })
            }
        }
    }

    /// Reads the store (taking the lock for the duration of the read).
    pub async fn load(&self) -> Result<StoreData, StoreError> {
        self.lock().await?.read()
    }

    /// Deletes the store (logout): the file (its lock file stays), or the memory map's content.
    /// Returns whether there was anything.
    pub async fn delete(&self) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory { map, .. } => {
                let mut m = map.lock().await;
                let had = !m.entries.is_empty();
                *m = StoreData::default();
                Ok(had)
            }
            Backend::File { path, .. } => {
                let guard = self.lock().await?;
                let had = match std::fs::remove_file(path) {
                    Ok(()) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                    Err(e) => return Err(StoreError::io(path, "delete", e)),
                };
                drop(guard);
                Ok(had)
            }
        }
    }
}

enum Guard {
    Memory(tokio::sync::OwnedMutexGuard<StoreData>),
    File { _lock: std::fs::File, path: PathBuf, key: StoreKey },
}

/// The store, locked: read and write while holding it. Dropping it releases the lock.
pub struct StoreGuard {
    inner: Guard,
}

impl fmt::Debug for StoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreGuard")
    }
}

impl StoreGuard {
    /// The current content (empty when the file does not exist yet).
    pub fn read(&self) -> Result<StoreData, StoreError> {
        match &self.inner {
            Guard::Memory(m) => Ok((**m).clone()),
            Guard::File { path, key, .. } => match std::fs::read(path) {
                Ok(bytes) => decrypt(path, key, &bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreData::default()),
                Err(e) => Err(StoreError::io(path, "read", e)),
            },
        }
    }

    /// Replaces the content (atomically for files).
    pub fn write(&mut self, data: &StoreData) -> Result<(), StoreError> {
        match &mut self.inner {
            Guard::Memory(m) => {
                **m = data.clone();
                Ok(())
            }
            Guard::File { path, key, .. } => {
                let bytes = encrypt(path, key, data)?;
                write_atomically(path, &bytes)
            }
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    path.with_file_name(name)
}

/// A fresh temporary name beside `path`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut r = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut r);
    let suffix: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp-{}-{suffix}", std::process::id()));
    path.with_file_name(name)
}

/// Creates `dir` (and parents), 0700 on Unix for the directories it creates.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| StoreError::io(dir, "create the directory", e))
}

/// Creates a new file with mode 0600 (fails if it exists).
pub(crate) fn create_private_file(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map_err(|e| StoreError::io(path, "create", e))
}

pub(crate) fn open_lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map_err(|e| StoreError::io(path, "open the lock file", e))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = create_private_file(&tmp)?;
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| StoreError::io(&tmp, "write", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, "replace", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn header(key: &StoreKey) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..7].copy_from_slice(MAGIC);
    h[7] = FORMAT_VERSION;
    h[8] = ALG_AES_256_GCM;
    h[9..].copy_from_slice(&key.id());
    h
}

fn aead_key(path: &Path, key: &StoreKey) -> Result<LessSafeKey, StoreError> {
    let k = UnboundKey::new(&AES_256_GCM, key.bytes()).map_err(|_| StoreError::BadKey {
        origin: key.source().to_string(),
        message: format!("rejected for {}", path.display()),
    })?;
    Ok(LessSafeKey::new(k))
}

fn encrypt(path: &Path, key: &StoreKey, data: &StoreData) -> Result<Vec<u8>, StoreError> {
    let plain = serde_json::to_vec(data)
        .map_err(|e| StoreError::Corrupt { path: path.to_path_buf(), detail: e.to_string() })?;
    let h = header(key);
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| StoreError::BadKey {
        origin: key.source().to_string(),
        message: "no random numbers available".into(),
    })?;
    let mut buf = plain;
    aead_key(path, key)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&h[..]), &mut buf)
        .map_err(|_| StoreError::Corrupt { path: path.to_path_buf(), detail: "encryption failed".into() })?;
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + buf.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Decrypts a store file's bytes.
pub(crate) fn decrypt(path: &Path, key: &StoreKey, bytes: &[u8]) -> Result<StoreData, StoreError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < 8 || &bytes[..7] != MAGIC {
        return Err(StoreError::Foreign { path: path_buf() });
    }
    if bytes[7] != FORMAT_VERSION {
        return Err(StoreError::NewerFormat { path: path_buf(), version: bytes[7] });
    }
    if bytes.len() < HEADER_LEN + NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(StoreError::Corrupt { path: path_buf(), detail: "truncated".into() });
    }
    if bytes[8] != ALG_AES_256_GCM {
        return Err(StoreError::Corrupt { path: path_buf(), detail: format!("unknown cipher {}", bytes[8]) });
    }
    if bytes[9..HEADER_LEN] != key.id() {
        return Err(StoreError::WrongKey { path: path_buf(), key_source: key.source().to_string() });
    }
    let (h, rest) = bytes.split_at(HEADER_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| StoreError::Corrupt { path: path_buf(), detail: "bad nonce".into() })?;
    let mut buf = sealed.to_vec();
    let plain = aead_key(path, key)?
        .open_in_place(nonce, Aad::from(h), &mut buf)
        .map_err(|_| StoreError::Corrupt { path: path_buf(), detail: "authentication failed".into() })?;
    serde_json::from_slice(plain)
        .map_err(|e| StoreError::Corrupt { path: path_buf(), detail: format!("bad content: {e}") })
}

#[cfg(test)]
#[path = "token_store_tests.rs"]
mod tests;
