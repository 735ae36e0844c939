//! `d365 login` and `d365 logout`: sign a user in now (browser or device code) and keep the
//! tokens in the encrypted settings file, check an application's credentials with one token
//! request, or forget a stored sign-in.

use std::time::Duration;

use d365_auth::options::command_opener;
use d365_auth::{ConnectionConfig, Environment, Flow, Interactive, ProviderOptions, login, logout, plan};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::connect::ConnectArgs;
use crate::failure::Failure;

/// Options of `d365 login`.
#[derive(clap::Args, Debug)]
#[command(after_help = "A user (AuthScheme=AzureAD) signs in in a browser on this machine: d365 listens on the \
loopback CallbackURL, opens the browser (BrowserCommand, D365_BROWSER or the system's) and prints the URL \
in case it does not open. The tokens are kept, encrypted, in OAuthSettingsLocation (default: under ~/.config/d365/tokens/; key: D365_TOKEN_KEY or \
~/.config/d365/token.key); later commands use and refresh them without a browser. Applications \
(client secret, certificate, workload identity, managed identity) keep nothing: login requests one token to \
check the credentials.

Examples:
  export D365_CONNECTION='OrganizationUrl=https://contoso.crm.dynamics.com;AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH'
  d365 login                        # browser sign-in, tokens stored
  d365 login --device-code          # no browser here: type a code on another device
  d365 login --browser-command 'firefox --private-window {url}'
  d365 login --connection @app.conn # check a service principal's secret or certificate")]
pub struct LoginArgs {
    /// Sign in with a device code (a code to type at a URL on any device) instead of a browser
    /// on this machine: for SSH sessions and servers.
    #[arg(long)]
    device_code: bool,
    /// Program that opens the sign-in URL: `{url}` in it is replaced by the URL, else the URL is
    /// added as the last argument (split on spaces, no shell). Default: the connection's
    /// BrowserCommand, D365_BROWSER, else the system's browser.
    #[arg(long, value_name = "CMD", conflicts_with = "device_code")]
    browser_command: Option<String>,
    /// How long to wait for the browser to come back to d365, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Options of `d365 logout`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Deletes the connection's stored sign-in (its OAuthSettingsLocation file), even when the \
file is damaged or was written with another key. The next command that needs a user signs in again.

Examples:
  d365 logout
  d365 logout --connection @user.conn")]
pub struct LogoutArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The connection string and environment of a command that only signs in (no Web API client).
/// `command` names it in the message that refuses `--demo`.
pub(crate) fn connection_config(args: &ConnectArgs, command: &str) -> Result<(ConnectionConfig, Environment), Failure> {
    if args.demo || args.demo_edition.is_some() {
        return Err(Failure::bad_input(format!(
            "--demo signs in inside one d365 process with the emulator's certificate app, so there is nothing to \
             `d365 {command}`: try `d365 --demo whoami`, or start `d365 emulator` and pass its connection string"
        )));
    }
    let Some(text) = &args.connection else {
        return Err(Failure::bad_input(
            "no connection given: set D365_CONNECTION or pass --connection @FILE (a file holding \
             \"OrganizationUrl=https://org.crm.dynamics.com;AuthScheme=...\")",
        ));
    };
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| Failure::bad_input(format!("cannot read the connection string file {path}: {e}")))?,
        None => text.clone(),
    };
    let env = Environment::from_process();
    let config = ConnectionConfig::parse(&text, &env).map_err(|e| Failure::bad_input(e.to_string()))?;
    Ok((config, env))
}

/// Sign-in options for a command the user runs to sign in (may open a browser or show a device
/// code, waits `timeout` for the browser).
pub(crate) fn interactive_options(
    env: Environment,
    device_code: bool,
    browser_command: Option<&str>,
    timeout: u64,
) -> ProviderOptions {
    let mut options = ProviderOptions::new(env).with_interactive(if device_code {
        Interactive::DeviceCode
    } else {
        Interactive::Browser
    });
    if let Some(cmd) = browser_command {
        options = options.with_browser(command_opener(cmd));
    }
    options.sign_in_timeout = Duration::from_secs(timeout.max(1));
    options
}

/// What a flow name means, for people.
pub(crate) fn describe_flow(flow: &str) -> &'static str {
    match flow {
        "authorization_code" => "a user, signed in with the browser (authorization code + PKCE)",
        "device_code" => "a user, signed in with a device code",
        "oauth_verifier" => "a user: the OAuthVerifier code, redeemed once",
        "refresh_token" => "a user: stored or given refresh token",
        "given_access_token" => "the access token given in OAuthAccessToken (never refreshed)",
        "client_credentials" => "the application, with its client secret",
        "client_certificate" => "the application, with its certificate",
        "workload_identity" => "the application, with a federated token (workload identity)",
        "managed_identity" => "the Azure managed identity",
        _ => "",
    }
}

/// An expiry as RFC 3339 with the time left ("2026-01-02T03:04:05Z (in 59 min)").
pub(crate) fn expiry_text(at: Option<OffsetDateTime>) -> String {
    let Some(at) = at else {
        return "unknown".to_string();
    };
    let at = at.replace_nanosecond(0).unwrap_or(at);
    let stamp = at.format(&Rfc3339).unwrap_or_else(|_| at.to_string());
    let left = (at - OffsetDateTime::now_utc()).whole_seconds();
    let rel = if left <= 0 {
        "expired".to_string()
    } else if left < 120 {
        format!("in {left} s")
    } else if left < 2 * 3600 {
        format!("in {} min", left / 60)
    } else {
        format!("in {} h", left / 3600)
    };
    format!("{stamp} ({rel})")
}

/// Runs `d365 login`.
pub async fn run_login(connect_args: &ConnectArgs, args: LoginArgs) -> Result<(), Failure> {
    let (config, env) = connection_config(connect_args, "login")?;
    let flow = plan(&config).map_err(|e| Failure::bad_input(e.to_string()))?;
    if (args.device_code || args.browser_command.is_some()) && flow != Flow::Delegated {
        note!(
            "note: {} has no effect: this connection does not sign a user in interactively",
            if args.device_code { "--device-code" } else { "--browser-command" }
        );
    }
    let options = interactive_options(env, args.device_code, args.browser_command.as_deref(), args.timeout);
    let outcome = login(&config, &options).await.map_err(Failure::from_auth)?;
    let expires = outcome.token.expires_at();
    if args.json {
        let v = serde_json::json!({
            "flow": outcome.flow,
            "organization_url": config.organization_url.as_str(),
            "tokens_stored": outcome.store,
            "token_expires": expires.and_then(|t| t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).ok()),
        });
        say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let what = describe_flow(outcome.flow);
    say!("signed in      {}{}", outcome.flow, if what.is_empty() { String::new() } else { format!("  ({what})") });
    say!("organization   {}", config.organization_url);
    match &outcome.store {
        Some(at) => say!("tokens stored  {at}"),
        None if flow == Flow::GivenToken => say!("tokens stored  no (the connection carries its token)"),
        None => say!("tokens stored  no (an application gets a new token when it needs one)"),
    }
    say!("token expires  {}", expiry_text(expires));
    Ok(())
}

/// Runs `d365 logout`.
pub async fn run_logout(connect_args: &ConnectArgs, args: LogoutArgs) -> Result<(), Failure> {
    let (config, env) = connection_config(connect_args, "logout")?;
    let flow = plan(&config).map_err(|e| Failure::bad_input(e.to_string()))?;
    if flow.is_app_only() || flow == Flow::GivenToken {
        let text = "nothing to sign out of: this connection keeps no stored sign-in (it signs in as an \
                    application, or carries its own token)";
        if args.json {
            let v = serde_json::json!({ "store": null, "deleted": false, "message": text });
            say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            say!("{text}");
        }
        return Ok(());
    }
    let options = ProviderOptions::new(env).with_interactive(Interactive::Never);
    let (location, had) = logout(&config, &options).await.map_err(Failure::from_auth)?;
    if args.json {
        let v = serde_json::json!({ "store": location, "deleted": had });
        say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if had {
        say!("signed out: deleted the stored sign-in {location}");
    } else {
        say!("no stored sign-in at {location}: already signed out");
    }
    Ok(())
}
