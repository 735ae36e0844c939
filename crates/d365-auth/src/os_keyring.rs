//! The OS keyring through the `keyring` crate: the Secret Service over D-Bus on Linux and BSD
//! (pure Rust: `zbus`, no libdbus), the login keychain on macOS, the Credential Manager on
//! Windows. The keyring is opened once per process, on first use; when that fails (no D-Bus
//! session, no Secret Service provider), every call says [`KeyringError::Unavailable`].

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crate::Secret;
use crate::store_key::{Keyring, KeyringError};

/// The OS keyring. Values read or written are remembered for the life of the process, so one
/// run asks the keyring (and the user, if it prompts) at most once per entry.
#[derive(Default)]
pub struct OsKeyring {
    seen: Mutex<HashMap<(String, String), Secret>>,
}

impl std::fmt::Debug for OsKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsKeyring").field("name", &self.name()).finish_non_exhaustive()
    }
}

static SHARED: LazyLock<Arc<OsKeyring>> = LazyLock::new(|| Arc::new(OsKeyring::new()));

impl OsKeyring {
    /// A handle with its own memory of values (the keyring itself is shared by the process).
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide handle.
    pub fn shared() -> Arc<dyn Keyring> {
        SHARED.clone()
    }

    fn entry(service: &str, user: &str) -> Result<keyring::Entry, KeyringError> {
        keyring::Entry::new(service, user).map_err(|e| match e {
            keyring::Error::NoDefaultStore => KeyringError::Unavailable(match keyring::Entry::store_status() {
                Err(e) => describe(e),
                Ok(()) => "no keyring".into(),
            }),
            e => classify(&e),
        })
    }

    fn remember(&self, service: &str, user: &str, value: &Secret) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((service.to_string(), user.to_string()), value.clone());
    }
}

impl Keyring for OsKeyring {
    fn name(&self) -> String {
        if cfg!(target_os = "macos") {
            "the macOS keychain".into()
        } else if cfg!(windows) {
            "the Windows Credential Manager".into()
        } else {
            "the Secret Service".into()
        }
    }

    fn get(&self, service: &str, user: &str) -> Result<Option<Secret>, KeyringError> {
        let key = (service.to_string(), user.to_string());
        if let Some(v) = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(v.clone()));
        }
        match Self::entry(service, user)?.get_password() {
            Ok(v) => {
                let v = Secret::from(v);
                self.remember(service, user, &v);
                Ok(Some(v))
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(&e)),
        }
    }

    fn set(&self, service: &str, user: &str, value: &Secret) -> Result<(), KeyringError> {
        Self::entry(service, user)?.set_password(value.expose()).map_err(|e| classify(&e))?;
        // not remembered: the caller reads the value back from the keyring itself
        Ok(())
    }
}

/// An error as a message without secrets: `BadEncoding` / `BadDataFormat` carry the entry's
/// bytes, so they are never formatted with their payload.
fn describe(e: &keyring::Error) -> String {
    match e {
        keyring::Error::PlatformFailure(p) => p.to_string(),
        keyring::Error::NoStorageAccess(p) => p.to_string(),
        keyring::Error::NoEntry => "no such entry".into(),
        keyring::Error::BadEncoding(_) => "the entry is not UTF-8 text".into(),
        keyring::Error::BadDataFormat(..) => "the entry's data is malformed".into(),
        keyring::Error::BadStoreFormat(m) => format!("the keyring's data is malformed: {m}"),
        keyring::Error::TooLong(name, n) => format!("the entry's {name} is longer than the keyring allows ({n})"),
        keyring::Error::Invalid(name, why) => format!("the entry's {name} is invalid: {why}"),
        keyring::Error::Ambiguous(v) => format!("{} entries match", v.len()),
        keyring::Error::NoDefaultStore => "no keyring".into(),
        keyring::Error::NotSupportedByStore(m) => format!("not supported: {m}"),
        _ => "unknown keyring error".into(),
    }
}

fn classify(e: &keyring::Error) -> KeyringError {
    let m = describe(e);
    match e {
        keyring::Error::NoDefaultStore
        | keyring::Error::NotSupportedByStore(_)
        | keyring::Error::TooLong(..)
        | keyring::Error::Invalid(..) => KeyringError::Unavailable(m),
        keyring::Error::NoStorageAccess(_) => KeyringError::Denied(m),
        _ => KeyringError::Failed(m),
    }
}
