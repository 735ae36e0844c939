//! What the caller of [`crate::provider_from_config`] decides besides the connection string:
//! the environment, the clock, and the user-interface hooks of interactive sign-in (how to
//! open a browser, where to show the sign-in URL and the device-code message, whether a browser
//! or a device code may be used at all).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::Environment;
use crate::clock::{Clock, SystemClock};
use crate::store_key::StoreKey;

/// What opening a browser returns: `Err(message)` when it could not be opened (or, for a test
/// "browser", when the sign-in page showed an error).
pub type BrowserFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Opens a URL in a browser. The sign-in waits for the loopback callback while this runs.
pub type BrowserOpener = Arc<dyn Fn(String) -> BrowserFuture + Send + Sync>;

/// Shows the sign-in URL (always called before the browser is opened).
pub type UrlSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Shows the device-code instructions.
pub type DeviceCodeSink = Arc<dyn Fn(&DeviceCodePrompt) + Send + Sync>;

/// What the user must do to finish a device-code sign-in.
#[derive(Debug, Clone)]
pub struct DeviceCodePrompt {
    /// The code to type.
    pub user_code: String,
    /// The page to type it on.
    pub verification_uri: String,
    /// Entra's message (says both).
    pub message: String,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// How a delegated connection may sign a user in when it has no usable stored token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interactive {
    /// Never: fail with [`crate::AuthError::InteractionRequired`].
    Never,
    /// Authorization code + PKCE in a browser, with a loopback listener on `CallbackURL`.
    Browser,
    /// The device-code flow (a code to type on another device).
    DeviceCode,
}

/// Options of [`crate::provider_from_config`].
#[derive(Clone)]
pub struct ProviderOptions {
    /// Environment variables (key sources, config directory, managed identity).
    pub environment: Environment,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// How to sign in when needed (default [`Interactive::Browser`]).
    pub interactive: Interactive,
    /// Opens the browser; `None` = `BrowserCommand` / `D365_BROWSER`, else the system's opener.
    pub browser: Option<BrowserOpener>,
    /// Shows the sign-in URL (default: printed to stderr).
    pub on_sign_in_url: UrlSink,
    /// Shows the device-code message (default: printed to stderr).
    pub on_device_code: DeviceCodeSink,
    /// How long to wait for the browser to come back to the loopback listener.
    pub sign_in_timeout: Duration,
    /// The token store key; `None` = [`StoreKey::resolve`] (`D365_TOKEN_KEY`, an existing key
    /// file, the OS keyring, a new key file).
    pub store_key: Option<StoreKey>,
    /// Safety margin before expiry at which tokens are renewed.
    pub refresh_margin: Duration,
}

impl fmt::Debug for ProviderOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderOptions")
            .field("environment", &self.environment)
            .field("clock", &self.clock)
            .field("interactive", &self.interactive)
            .field("browser", &self.browser.as_ref().map(|_| "<custom>"))
            .field("sign_in_timeout", &self.sign_in_timeout)
            .field("store_key", &self.store_key)
            .field("refresh_margin", &self.refresh_margin)
            .finish_non_exhaustive()
    }
}

impl ProviderOptions {
    /// Defaults with `environment`: system clock, browser sign-in allowed, messages on stderr,
    /// 5-minute sign-in timeout, 5-minute refresh margin.
    pub fn new(environment: Environment) -> Self {
        Self {
            environment,
            clock: Arc::new(SystemClock),
            interactive: Interactive::Browser,
            browser: None,
            on_sign_in_url: Arc::new(|url| {
                eprintln!("Sign in with your browser. If it does not open, open this URL:\n  {url}")
            }),
            on_device_code: Arc::new(|p| eprintln!("{}", p.message)),
            sign_in_timeout: Duration::from_secs(300),
            store_key: None,
            refresh_margin: crate::cache::DEFAULT_MARGIN,
        }
    }

    /// Builder: the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builder: how to sign in when needed.
    pub fn with_interactive(mut self, interactive: Interactive) -> Self {
        self.interactive = interactive;
        self
    }

    /// Builder: the browser opener.
    pub fn with_browser(mut self, browser: BrowserOpener) -> Self {
        self.browser = Some(browser);
        self
    }

    /// Builder: the token store key.
    pub fn with_store_key(mut self, key: StoreKey) -> Self {
        self.store_key = Some(key);
        self
    }
}

/// A browser opener running `command` with the URL: `{url}` in the command is replaced by it,
/// else it is appended as the last argument. The command is split on whitespace (quote-free).
pub fn command_opener(command: &str) -> BrowserOpener {
    let command = command.to_string();
    Arc::new(move |url: String| {
        let command = command.clone();
        Box::pin(async move {
            let mut parts: Vec<String> = command.split_whitespace().map(str::to_string).collect();
            if parts.is_empty() {
                return Err("the browser command is empty".to_string());
            }
            if parts.iter().any(|p| p.contains("{url}")) {
                for p in &mut parts {
                    *p = p.replace("{url}", &url);
                }
            } else {
                parts.push(url);
            }
            let mut child = std::process::Command::new(&parts[0])
                .args(&parts[1..])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run the browser command '{}': {e}", parts[0]))?;
            // reap it in the background so it does not linger as a zombie
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            Ok(())
        })
    })
}

/// The system's URL opener (`xdg-open`, `open`, `start`, …).
pub fn system_opener() -> BrowserOpener {
    Arc::new(|url: String| {
        Box::pin(async move { open::that_detached(&url).map_err(|e| format!("the system browser: {e}")) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn command_opener_runs_the_command_with_the_url() {
        let e = command_opener("/nonexistent/browser --new-window")("https://x".into()).await.unwrap_err();
        assert!(e.contains("/nonexistent/browser"), "{e}");
        assert!(command_opener("  ")("https://x".into()).await.is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let script = dir.path().join("browser.sh");
            std::fs::write(&script, format!("#!/bin/sh\nprintf '%s|%s' \"$1\" \"$2\" > {}\n", out.display())).unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            command_opener(&format!("{} {{url}} --flag", script.display()))("https://login/x?a=1&b=2".into())
                .await
                .unwrap();
            for _ in 0..100 {
                if std::fs::read_to_string(&out).is_ok_and(|s| !s.is_empty()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "https://login/x?a=1&b=2|--flag");
        }
    }
}
