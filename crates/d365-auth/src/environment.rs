//! The environment variables the sign-in layer reads, as an injectable map so that tests never
//! touch the process environment.
//!
//! Read: the azure-identity fallbacks (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH`, `AZURE_CLIENT_CERTIFICATE_PASSWORD`,
//! `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`), `SSL_CERT_FILE`, the App Service
//! managed-identity pair (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`), `D365_BROWSER`,
//! `D365_TOKEN_KEY`, `D365_TOKEN_KEYRING`, `D365_CONFIG_DIR` and the config-directory variables
//! (`XDG_CONFIG_HOME`, `HOME`, `APPDATA`).
//!
//! The OS keyring counts as part of the environment: a snapshot of the process
//! ([`Environment::from_process`]) may use it for the token store key, an
//! [`Environment::empty`] one does not (so tests never touch the user's keyring) unless
//! [`Environment::with_os_keyring`] says so.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Names whose values are secrets (never shown by `Debug`).
const SECRET_VARS: &[&str] =
    &["AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "D365_TOKEN_KEY", "IDENTITY_HEADER"];

/// A snapshot of environment variables.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    os_keyring: bool,
}

impl Environment {
    /// An empty environment (nothing set).
    pub fn empty() -> Self {
        Self::default()
    }

    /// A snapshot of the process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            os_keyring: true,
        }
    }

    /// Builder: whether the OS keyring may hold the token store key (see
    /// [`crate::store_key`]); `true` for [`Environment::from_process`], `false` for
    /// [`Environment::empty`].
    pub fn with_os_keyring(mut self, on: bool) -> Self {
        self.os_keyring = on;
        self
    }

    /// Whether the OS keyring may hold the token store key.
    pub fn os_keyring(&self) -> bool {
        self.os_keyring
    }

    /// Builder: sets `name` to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) {
        self.vars.remove(name);
    }

    /// The value of `name` when it is set and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The directory of d365's own files: `D365_CONFIG_DIR` when set, else `d365` under the
    /// per-user configuration directory (`APPDATA` on Windows, `XDG_CONFIG_HOME`,
    /// `~/Library/Application Support` on macOS, else `~/.config`).
    pub fn d365_config_dir(&self) -> Option<PathBuf> {
        if let Some(d) = self.get("D365_CONFIG_DIR") {
            return Some(PathBuf::from(d));
        }
        let base = if cfg!(windows) {
            self.get("APPDATA").map(PathBuf::from)
        } else if let Some(x) = self.get("XDG_CONFIG_HOME") {
            Some(PathBuf::from(x))
        } else if cfg!(target_os = "macos") {
            self.get("HOME").map(|h| PathBuf::from(h).join("Library").join("Application Support"))
        } else {
            self.get("HOME").map(|h| PathBuf::from(h).join(".config"))
        };
        base.map(|b| b.join("d365"))
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.vars {
            if SECRET_VARS.contains(&k.as_str())
                || k.contains("SECRET")
                || k.contains("PASSWORD")
                || k.contains("TOKEN")
            {
                m.entry(k, &"<redacted>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_unset_and_secrets_are_redacted() {
        let e = Environment::empty().with("AZURE_TENANT_ID", " ").with("AZURE_CLIENT_SECRET", "s3cr3t");
        assert_eq!(e.get("AZURE_TENANT_ID"), None);
        assert_eq!(e.get("AZURE_CLIENT_SECRET"), Some("s3cr3t"));
        assert!(!format!("{e:?}").contains("s3cr3t"));
    }

    #[test]
    fn config_dir_prefers_the_override() {
        let e = Environment::empty().with("HOME", "/home/u").with("D365_CONFIG_DIR", "/cfg");
        assert_eq!(e.d365_config_dir(), Some(PathBuf::from("/cfg")));
        let e = Environment::empty().with("HOME", "/home/u");
        if cfg!(target_os = "linux") {
            assert_eq!(e.d365_config_dir(), Some(PathBuf::from("/home/u/.config/d365")));
        }
    }
}
