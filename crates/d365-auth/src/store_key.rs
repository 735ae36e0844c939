//! The key that encrypts token stores. [`StoreKey::resolve`] takes it from the first source
//! that has one:
//!
//! 1. `D365_TOKEN_KEY`: 32 bytes in base64 (`openssl rand -base64 32`). An explicit key always
//!    wins — for CI, containers and a settings file copied to another machine.
//! 2. An existing key file `<config dir>/token.key` (the config dir is `D365_CONFIG_DIR`, else
//!    `~/.config/d365` or the platform's equivalent). A key file that exists is always used, so
//!    token stores written before the keyring was used (or a key file copied from another
//!    machine) are never orphaned.
//! 3. The OS keyring — the Secret Service over D-Bus on Linux and BSD (GNOME Keyring, KWallet),
//!    the login keychain on macOS, the Credential Manager on Windows — entry service `d365`, user
//!    `token-key:<absolute config dir>`, value the key in base64. Used when the keyring answers
//!    within [`KEYRING_TIMEOUT`]: an existing entry is read; when there is none, a new key is
//!    stored there (and read back), and the note `<config dir>/token.key.keyring` (no secret:
//!    service, user, key id) records that the key lives in the keyring.
//! 4. Otherwise a new key file: 32 random bytes in base64, mode 0600, in a 0700 directory.
//!
//! **When the keyring cannot be used.** No D-Bus session (headless servers, containers, SSH
//! sessions), no Secret Service provider, a locked keyring whose unlock prompt fails, a refused
//! write, or no answer within [`KEYRING_TIMEOUT`]: d365 falls back to the key file, logging why at
//! debug level — *unless* the note `token.key.keyring` says the key already lives in the keyring.
//! Then a new key would make every stored sign-in unreadable, so resolution fails with
//! [`StoreError::Keyring`], which names the entry and the ways out (unlock the keyring, set
//! `D365_TOKEN_KEY` to the stored key, or delete the note to start over). An entry whose value is
//! not a key is an error too and is never overwritten. If the note exists but the entry is gone
//! (deleted in the keyring's UI), a new key is created and a warning says stored sign-ins need
//! `d365 login` again.
//!
//! **Opting out.** `D365_TOKEN_KEYRING=off` never touches the keyring (the key file is used, as
//! before). The setting is an environment variable rather than a connection property because one
//! key serves every connection of a config directory. Only environments taken from the process
//! ([`Environment::from_process`]) use the OS keyring; [`Environment::empty`] (tests) does not
//! unless [`Environment::with_os_keyring`] turns it on.
//!
//! Key creation (keyring entry, note or key file) happens under an exclusive lock on
//! `<config dir>/token.key.lock`, so concurrent first runs agree on one key. Key bytes never
//! appear in `Debug`, logs or errors.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::token_store::StoreError;
use crate::{Environment, Secret};

pub use crate::os_keyring::OsKeyring;

/// The environment variable holding a base64 key.
pub const KEY_ENV: &str = "D365_TOKEN_KEY";
/// The environment variable that turns the OS keyring off (`off`) or leaves it on (`auto`, the
/// default).
pub const KEYRING_ENV: &str = "D365_TOKEN_KEYRING";
/// The keyring entry's service name.
pub const KEYRING_SERVICE: &str = "d365";
/// The key file's name in the config directory.
pub const KEY_FILE_NAME: &str = "token.key";
/// The note saying the key lives in the OS keyring.
pub const KEYRING_NOTE_NAME: &str = "token.key.keyring";
/// How long one keyring call may take before the keyring counts as unavailable.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the key came from (named in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `D365_TOKEN_KEY`.
    Environment,
    /// A key file.
    File(PathBuf),
    /// An OS keyring entry.
    Keyring {
        /// Which keyring (`the Secret Service`, …).
        keyring: String,
        /// The entry's service.
        service: String,
        /// The entry's user.
        user: String,
    },
    /// Given by the program.
    Explicit,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Environment => write!(f, "the {KEY_ENV} environment variable"),
            KeySource::File(p) => write!(f, "the key file {}", p.display()),
            KeySource::Keyring { keyring, service, user } => {
                write!(f, "the OS keyring entry (service \"{service}\", user \"{user}\") in {keyring}")
            }
            KeySource::Explicit => f.write_str("the key given by the program"),
        }
    }
}

/// Why a keyring call failed. The messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    /// There is no usable keyring here: no D-Bus session or Secret Service provider, an
    /// unsupported platform, or no answer in time.
    Unavailable(String),
    /// The keyring is there but refused access (locked and not unlocked, prompt dismissed).
    Denied(String),
    /// Anything else the keyring reported.
    Failed(String),
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyringError::Unavailable(m) => write!(f, "it is not available ({m})"),
            KeyringError::Denied(m) => write!(f, "it refused access ({m})"),
            KeyringError::Failed(m) => write!(f, "it failed ({m})"),
        }
    }
}

/// A keyring that can hold the store key: [`OsKeyring`] in production, a fake in tests. Calls
/// may block; [`StoreKey::resolve_with`] runs each on its own thread with a timeout.
pub trait Keyring: Send + Sync {
    /// What it is, for messages (`the Secret Service`, `the macOS keychain`, …).
    fn name(&self) -> String;
    /// The value of the entry, `None` when there is no such entry.
    fn get(&self, service: &str, user: &str) -> Result<Option<Secret>, KeyringError>;
    /// Creates or replaces the entry.
    fn set(&self, service: &str, user: &str, value: &Secret) -> Result<(), KeyringError>;
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

/// Whether the OS keyring may be used (`D365_TOKEN_KEYRING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyringMode {
    Auto,
    Off,
}

fn keyring_mode(env: &Environment) -> Result<KeyringMode, StoreError> {
    match env.get(KEYRING_ENV).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(KeyringMode::Auto),
        Some(v) if matches!(v.as_str(), "auto" | "on" | "true" | "yes" | "1") => Ok(KeyringMode::Auto),
        Some(v) if matches!(v.as_str(), "off" | "false" | "no" | "0") => Ok(KeyringMode::Off),
        Some(v) => Err(StoreError::Keyring {
            message: format!(
                "{KEYRING_ENV}={v} is not a valid value: use `auto` (the default: the OS keyring when one is reachable) or `off` (never the keyring)"
            ),
        }),
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

    fn id_hex(&self) -> String {
        self.id().iter().map(|b| format!("{b:02x}")).collect()
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

    /// 32 random bytes.
    fn random(source: KeySource) -> Result<Self, StoreError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| bad_key(&source, "no random numbers available"))?;
        Ok(Self { bytes, source })
    }

    fn to_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.bytes))
    }

    /// The key for `env`, in the order the module documentation gives: `D365_TOKEN_KEY`, an
    /// existing key file, the OS keyring (when `env` allows it), a new key file.
    pub fn resolve(env: &Environment) -> Result<Self, StoreError> {
        let keyring = env.os_keyring().then(OsKeyring::shared);
        Self::resolve_with(env, keyring)
    }

    /// [`StoreKey::resolve`] with the keyring given (`None` = no keyring).
    pub fn resolve_with(env: &Environment, keyring: Option<Arc<dyn Keyring>>) -> Result<Self, StoreError> {
        Self::resolve_inner(env, keyring, KEYRING_TIMEOUT)
    }

    pub(crate) fn resolve_inner(
        env: &Environment,
        keyring: Option<Arc<dyn Keyring>>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        if let Some(v) = env.get(KEY_ENV) {
            return Self::decode(v, KeySource::Environment);
        }
        let dir = env.d365_config_dir().ok_or(StoreError::NoConfigDir)?;
        let file = dir.join(KEY_FILE_NAME);
        if let Some(k) = Self::read_key_file(&file)? {
            return Ok(k);
        }
        let mode = keyring_mode(env)?;
        let slot = KeyringSlot::new(&dir);
        let why = match (mode, keyring) {
            (KeyringMode::Auto, Some(keyring)) => return slot.resolve(keyring, &file, timeout),
            (KeyringMode::Auto, None) => "this program was started without access to the OS keyring".to_string(),
            (KeyringMode::Off, _) => format!("{KEYRING_ENV}=off keeps d365 from reading it"),
        };
        // no keyring: the key file, unless the note says the key is in the keyring
        let _lock = slot.lock()?;
        if slot.note.exists() {
            return Err(slot.in_use_error("the OS keyring", &why));
        }
        tracing::debug!(reason = %why, "OS keyring not used: the token store key comes from the key file");
        Self::from_file_or_create(&file)
    }

    /// The key in the file at `path`, `None` when there is no such file.
    fn read_key_file(path: &Path) -> Result<Option<Self>, StoreError> {
        let source = KeySource::File(path.to_path_buf());
        match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => Self::decode(&text, source).map(Some),
            // another process is between create and rename: impossible with the hard-link
            // scheme below, but an empty file written by hand lands here
            Ok(_) => Err(bad_key(&source, "the file is empty")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(path, "read the key file", e)),
        }
    }

    /// Reads the key file at `path`, creating it (0600, 32 random bytes) when it does not exist.
    pub fn from_file_or_create(path: &Path) -> Result<Self, StoreError> {
        let source = KeySource::File(path.to_path_buf());
        for _ in 0..50 {
            if let Some(k) = Self::read_key_file(path)? {
                return Ok(k);
            }
            if let Some(parent) = path.parent() {
                crate::token_store::create_private_dir(parent)?;
            }
            let key = Self::random(source.clone())?;
            let tmp = crate::token_store::temp_path(path);
            {
                let mut f = crate::token_store::create_private_file(&tmp)?;
                f.write_all(key.to_base64().expose().as_bytes())
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
                    return Ok(key);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io(path, "create the key file", e)),
            }
        }
        Err(bad_key(&source, "it could not be created"))
    }
}

/// The keyring entry of one config directory, and its note.
struct KeyringSlot {
    dir: PathBuf,
    user: String,
    note: PathBuf,
}

impl KeyringSlot {
    fn new(dir: &Path) -> Self {
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self {
            dir: dir.to_path_buf(),
            user: format!("token-key:{}", absolute.display()),
            note: dir.join(KEYRING_NOTE_NAME),
        }
    }

    fn source(&self, keyring: &dyn Keyring) -> KeySource {
        KeySource::Keyring { keyring: keyring.name(), service: KEYRING_SERVICE.into(), user: self.user.clone() }
    }

    /// The error for "the key lives in the keyring but cannot be read now".
    fn in_use_error(&self, keyring: &str, problem: &str) -> StoreError {
        StoreError::Keyring {
            message: format!(
                "the token store key of {} is kept in {keyring} (service \"{KEYRING_SERVICE}\", user \"{}\"; see {}), but {problem}. \
                 Run where the keyring is reachable and unlocked (a desktop session), or set {KEY_ENV} to the key stored there; \
                 deleting {} instead starts over with a new key file, after which stored sign-ins need `d365 login` again",
                self.dir.display(),
                self.user,
                self.note.display(),
                self.note.display(),
            ),
        }
    }

    fn get(
        &self,
        keyring: &Arc<dyn Keyring>,
        timeout: Duration,
    ) -> Result<Option<Result<StoreKey, StoreError>>, KeyringError> {
        let (k, user) = (keyring.clone(), self.user.clone());
        let value = with_timeout(timeout, move || k.get(KEYRING_SERVICE, &user))?;
        Ok(value.map(|v| StoreKey::decode(v.expose(), self.source(keyring.as_ref()))))
    }

    /// Takes the exclusive lock on `<dir>/token.key.lock` (held until the file is dropped).
    fn lock(&self) -> Result<std::fs::File, StoreError> {
        crate::token_store::create_private_dir(&self.dir)?;
        let lock_path = self.dir.join(format!("{KEY_FILE_NAME}.lock"));
        let lock = crate::token_store::open_lock_file(&lock_path)?;
        lock.lock().map_err(|e| StoreError::io(&lock_path, "lock", e))?;
        Ok(lock)
    }

    fn resolve(&self, keyring: Arc<dyn Keyring>, file: &Path, timeout: Duration) -> Result<StoreKey, StoreError> {
        let name = keyring.name();
        let first = match self.get(&keyring, timeout) {
            Ok(Some(key)) => return self.found(key),
            Err(e) if self.note.exists() => return Err(self.unusable(&name, &e)),
            other => other,
        };
        // no entry, or no keyring: create a key under the lock, so that concurrent first runs
        // (threads or processes) agree on one
        let _lock = self.lock()?;
        if let Some(k) = StoreKey::read_key_file(file)? {
            return Ok(k);
        }
        let second = match first {
            Ok(_) => self.get(&keyring, timeout),
            Err(e) => Err(e),
        };
        match second {
            Ok(Some(key)) => return self.found(key),
            Ok(None) => {}
            // the note is checked under the lock: another process may just have put the key there
            Err(e) if self.note.exists() => return Err(self.unusable(&name, &e)),
            Err(e) => {
                tracing::debug!(keyring = %name, reason = %e, "OS keyring not used for the token store key: using the key file");
                return StoreKey::from_file_or_create(file);
            }
        }
        if self.note.exists() {
            tracing::warn!(
                keyring = %name,
                user = %self.user,
                "the OS keyring entry holding the token store key is gone: creating a new key; token stores encrypted with the old one need `d365 login` again"
            );
        }
        let key = StoreKey::random(self.source(keyring.as_ref()))?;
        // the note first: if the process dies after the keyring write, the entry is still known
        self.write_note(&key, &name)?;
        let (k, user, value) = (keyring.clone(), self.user.clone(), key.to_base64());
        let stored = with_timeout(timeout, move || k.set(KEYRING_SERVICE, &user, &value)).and_then(|()| {
            // read back: a keyring that accepts a write but cannot return it is not usable
            match self.get(&keyring, timeout)? {
                Some(Ok(back)) if back.bytes == key.bytes => Ok(()),
                _ => Err(KeyringError::Failed("the stored key did not read back".into())),
            }
        });
        match stored {
            Ok(()) => {
                tracing::info!(keyring = %name, user = %self.user, "stored a new token store key in the OS keyring");
                Ok(key)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.note);
                tracing::debug!(keyring = %name, reason = %e, "cannot store the token store key in the OS keyring: using a key file");
                StoreKey::from_file_or_create(file)
            }
        }
    }

    /// An entry was found: its key (or why it is unusable), and the note repaired if missing.
    fn found(&self, key: Result<StoreKey, StoreError>) -> Result<StoreKey, StoreError> {
        let key = key?;
        if !self.note.exists() {
            let name = match key.source() {
                KeySource::Keyring { keyring, .. } => keyring.clone(),
                _ => "the OS keyring".into(),
            };
            if let Err(e) = self.write_note(&key, &name) {
                tracing::debug!(error = %e, "cannot write the keyring note");
            }
        }
        Ok(key)
    }

    /// The error when the keyring holds the key (the note says so) but could not be read.
    fn unusable(&self, name: &str, e: &KeyringError) -> StoreError {
        let problem = match e {
            KeyringError::Unavailable(m) => format!("it cannot be reached ({m})"),
            KeyringError::Denied(m) => format!("it refused access ({m})"),
            KeyringError::Failed(m) => format!("reading the entry failed ({m})"),
        };
        self.in_use_error(name, &problem)
    }

    fn write_note(&self, key: &StoreKey, keyring: &str) -> Result<(), StoreError> {
        let text = format!(
            "The token store key of this directory is kept in the OS keyring ({keyring}):\n\
             \x20 service: {KEYRING_SERVICE}\n\
             \x20 user:    {}\n\
             \x20 key id:  {}\n\
             This file holds no secret. While it exists, d365 refuses to create another key when the\n\
             keyring cannot be reached, so that stored sign-ins stay readable. Delete it only to start\n\
             over with a new key file (stored sign-ins then need `d365 login` again).\n",
            self.user,
            key.id_hex(),
        );
        crate::token_store::create_private_dir(&self.dir)?;
        let tmp = crate::token_store::temp_path(&self.note);
        let result = (|| {
            let mut f = crate::token_store::create_private_file(&tmp)?;
            f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| StoreError::io(&tmp, "write", e))?;
            drop(f);
            std::fs::rename(&tmp, &self.note).map_err(|e| StoreError::io(&self.note, "write the keyring note", e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Runs `f` on its own thread and gives up after `timeout` (the thread is left to finish or
/// hang on its own: a keyring that does not answer must not hang d365).
fn with_timeout<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> Result<T, KeyringError> + Send + 'static,
) -> Result<T, KeyringError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("d365-keyring".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| KeyringError::Unavailable(format!("cannot start a thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(KeyringError::Unavailable(format!("no answer within {} ms", timeout.as_millis())))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(KeyringError::Failed("the keyring call panicked".into()))
        }
    }
}

fn bad_key(source: &KeySource, why: &str) -> StoreError {
    StoreError::BadKey { origin: source.to_string(), message: why.to_string() }
}

#[cfg(test)]
#[path = "store_key_tests.rs"]
mod tests;
