//! The OAuth stored procedures of the CData connector, as plain async functions returning
//! rows: the CLI calls them as `d365 proc NAME --arg k=v`, the SQL layer as `EXEC NAME k=v`.
//!
//! | procedure | arguments | columns |
//! |---|---|---|
//! | `GetOAuthAuthorizationUrl` | `CallbackURL`, `State`, `Prompt`, `Scope` (all optional) | `URL` |
//! | `GetOAuthAccessToken` | `AuthMode` (`APP` = browser on this machine, `WEB` = redeem `Verifier`), `Verifier`, `CallbackURL`, `State`, `Prompt` | `OAuthAccessToken`, `OAuthRefreshToken`, `ExpiresIn` |
//! | `RefreshOAuthAccessToken` | `OAuthRefreshToken` (default: the connection's) | `OAuthAccessToken`, `OAuthRefreshToken`, `ExpiresIn` |
//! | `GetAdminConsentURL` | `CallbackURL`, `State` | `URL` |
//!
//! Web applications: `GetOAuthAuthorizationUrl` → the user signs in and is sent to the
//! callback with `code` → `GetOAuthAccessToken` with `AuthMode=WEB` and `Verifier=<code>` →
//! later `RefreshOAuthAccessToken`. A confidential web app sets `OAuthClientSecret` in the
//! connection. When the connection names an `OAuthSettingsLocation`, obtained tokens are also
//! stored there (so `InitiateOAuth=GETANDREFRESH` connections use them). Token values appear in
//! the result rows — that is what these procedures are for — but never in `Debug` output.

use std::fmt;

use url::Url;

use crate::config::ConnectionConfig;
use crate::flows::auth_code::{self, AuthorizeRequest, random_string};
use crate::options::ProviderOptions;
use crate::properties::edit_distance;
use crate::provider::Context;
use crate::token_client::TokenResponse;
use crate::{AuthError, Secret};

/// A procedure's description, for `d365 proc --list` and `sys_procedures`.
#[derive(Debug, Clone, Copy)]
pub struct ProcedureInfo {
    /// Name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Parameters: name and meaning.
    pub parameters: &'static [(&'static str, &'static str)],
    /// Result columns.
    pub columns: &'static [&'static str],
}

/// The procedures.
pub const PROCEDURES: &[ProcedureInfo] = &[
    ProcedureInfo {
        name: "GetOAuthAuthorizationUrl",
        description: "The Entra ID sign-in URL for this connection's app: open it, sign in, and take the code from the callback",
        parameters: &[
            ("CallbackURL", "redirect URI registered on the app (default: the connection's CallbackURL)"),
            ("State", "value echoed back to the callback (default: random)"),
            ("Prompt", "select_account (default), login, consent or none"),
            ("Scope", "scopes to ask for (default: the connection's delegated scope)"),
        ],
        columns: &["URL"],
    },
    ProcedureInfo {
        name: "GetOAuthAccessToken",
        description: "Gets tokens: AuthMode=WEB redeems Verifier (the code from the callback); AuthMode=APP signs in with the browser on this machine",
        parameters: &[
            ("AuthMode", "APP (default) or WEB"),
            ("Verifier", "the authorization code (AuthMode=WEB)"),
            ("CallbackURL", "the redirect URI used to get the code (default: the connection's CallbackURL)"),
            ("State", "ignored (kept for CData compatibility)"),
            ("Prompt", "select_account (default), login, consent or none (AuthMode=APP)"),
        ],
        columns: &["OAuthAccessToken", "OAuthRefreshToken", "ExpiresIn"],
    },
    ProcedureInfo {
        name: "RefreshOAuthAccessToken",
        description: "Redeems a refresh token for new tokens (the returned refresh token replaces the old one)",
        parameters: &[("OAuthRefreshToken", "the refresh token (default: the connection's OAuthRefreshToken)")],
        columns: &["OAuthAccessToken", "OAuthRefreshToken", "ExpiresIn"],
    },
    ProcedureInfo {
        name: "GetAdminConsentURL",
        description: "The URL an administrator opens to consent to this connection's app for the whole tenant",
        parameters: &[
            ("CallbackURL", "redirect URI registered on the app (default: the connection's CallbackURL)"),
            ("State", "value echoed back to the callback"),
        ],
        columns: &["URL"],
    },
];

const SECRET_COLUMNS: &[&str] = &["OAuthAccessToken", "OAuthRefreshToken"];

/// A procedure's result: columns and rows of text.
#[derive(Clone, PartialEq, Eq)]
pub struct ProcedureOutput {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<String>>,
}

impl ProcedureOutput {
    fn one_row(pairs: Vec<(&str, String)>) -> Self {
        Self {
            columns: pairs.iter().map(|(k, _)| k.to_string()).collect(),
            rows: vec![pairs.into_iter().map(|(_, v)| v).collect()],
        }
    }

    /// The value of `column` in the first row.
    pub fn value(&self, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c.eq_ignore_ascii_case(column))?;
        self.rows.first()?.get(i).map(String::as_str)
    }

    /// The first row as (name, value) pairs.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        let row = self.rows.first();
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), row.and_then(|r| r.get(i)).map(String::as_str).unwrap_or_default()))
            .collect()
    }
}

impl fmt::Debug for ProcedureOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<Vec<(&str, &str)>> = self
            .rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| {
                        (c.as_str(), if SECRET_COLUMNS.contains(&c.as_str()) { "<redacted>" } else { v.as_str() })
                    })
                    .collect()
            })
            .collect();
        f.debug_struct("ProcedureOutput").field("rows", &rows).finish()
    }
}

struct Args<'a> {
    procedure: &'static ProcedureInfo,
    pairs: &'a [(String, String)],
}

impl Args<'_> {
    fn check(&self) -> Result<(), AuthError> {
        for (k, _) in self.pairs {
            if !self.procedure.parameters.iter().any(|(p, _)| p.eq_ignore_ascii_case(k.trim())) {
                let allowed: Vec<&str> = self.procedure.parameters.iter().map(|(p, _)| *p).collect();
                return Err(AuthError::ProcedureArgument {
                    procedure: self.procedure.name,
                    message: format!("unknown argument '{k}'; arguments: {}", allowed.join(", ")),
                });
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }
}

/// The admin-consent URL of the connection's app (v1 form: grants what the registration lists).
pub(crate) fn admin_consent_url(ctx: &Context, callback: Option<&str>, state: Option<&str>) -> String {
    let tenant = match ctx.config.tenant.as_deref() {
        Some(t) if !t.eq_ignore_ascii_case("common") && !t.eq_ignore_ascii_case("consumers") => t.to_string(),
        _ => "organizations".to_string(),
    };
    let authority = crate::cloud::Authority::new(ctx.host.clone(), tenant);
    let mut u: Url = authority.admin_consent_endpoint();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("client_id", &ctx.delegated_client_id());
        q.append_pair("redirect_uri", callback.unwrap_or(&ctx.config.callback_url));
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    u.to_string()
}

fn token_rows(t: &TokenResponse) -> ProcedureOutput {
    ProcedureOutput::one_row(vec![
        ("OAuthAccessToken", t.access_token.expose().to_string()),
        ("OAuthRefreshToken", t.refresh_token.as_ref().map(|r| r.expose().to_string()).unwrap_or_default()),
        ("ExpiresIn", t.expires_in.map(|e| e.to_string()).unwrap_or_else(|| "-1".into())),
    ])
}

async fn persist(ctx: &Context, t: &TokenResponse, flow: &str) -> Result<(), AuthError> {
    if ctx.config.settings_location.is_some() {
        let at = crate::flows::delegated::store_tokens(ctx, t, flow).await?;
        tracing::info!(store = %at, "procedure tokens stored");
    }
    Ok(())
}

/// Finds a procedure by name (case-insensitive).
pub fn procedure(name: &str) -> Result<&'static ProcedureInfo, AuthError> {
    PROCEDURES.iter().find(|p| p.name.eq_ignore_ascii_case(name.trim())).ok_or_else(|| {
        let n = name.trim().to_ascii_lowercase();
        let best = PROCEDURES.iter().min_by_key(|p| edit_distance(&n, &p.name.to_ascii_lowercase()));
        let suggestion = best.filter(|p| edit_distance(&n, &p.name.to_ascii_lowercase()) <= 4).map(|p| p.name);
        AuthError::UnknownProcedure {
            name: name.to_string(),
            suggestion,
            known: PROCEDURES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        }
    })
}

/// Runs procedure `name` with `args` (name/value pairs, names case-insensitive) for the
/// connection `config`.
pub async fn call_procedure(
    name: &str,
    args: &[(String, String)],
    config: &ConnectionConfig,
    options: &ProviderOptions,
) -> Result<ProcedureOutput, AuthError> {
    let info = procedure(name)?;
    let args = Args { procedure: info, pairs: args };
    args.check()?;
    let ctx = Context::new(config, options)?;
    let callback = args.get("CallbackURL").map(str::to_string).unwrap_or_else(|| ctx.config.callback_url.clone());
    match info.name {
        "GetOAuthAuthorizationUrl" => {
            let state = args.get("State").map(str::to_string).unwrap_or_else(|| random_string(16));
            let scope = args.get("Scope").map(str::to_string).unwrap_or_else(|| ctx.config.delegated_scope());
            let client_id = ctx.delegated_client_id();
            let url = auth_code::authorize_url(&AuthorizeRequest {
                authority: &ctx.delegated_authority(),
                client_id: &client_id,
                redirect_uri: &callback,
                scope: &scope,
                state: &state,
                prompt: args.get("Prompt").or(ctx.config.prompt.as_deref()),
                code_challenge: None,
            });
            Ok(ProcedureOutput::one_row(vec![("URL", url.to_string())]))
        }
        "GetOAuthAccessToken" => {
            let mode = args.get("AuthMode").unwrap_or("APP").trim().to_ascii_uppercase();
            let scope = ctx.config.delegated_scope();
            let client = ctx.delegated_client();
            let t = match mode.as_str() {
                "WEB" => {
                    let verifier = args
                        .get("Verifier")
                        .map(Secret::from)
                        .or_else(|| ctx.config.verifier.clone())
                        .ok_or_else(|| AuthError::ProcedureArgument {
                            procedure: info.name,
                            message: "AuthMode=WEB needs Verifier (the code parameter the callback received)".into(),
                        })?;
                    client.authorization_code(&verifier, &callback, None, &scope).await?
                }
                "APP" => {
                    let browser = match (&options.browser, &ctx.config.browser_command) {
                        (Some(b), _) => b.clone(),
                        (None, Some(cmd)) => crate::options::command_opener(cmd),
                        (None, None) => crate::options::system_opener(),
                    };
                    auth_code::sign_in(
                        &client,
                        auth_code::Desktop {
                            callback: &callback,
                            scope: &scope,
                            prompt: args.get("Prompt").or(ctx.config.prompt.as_deref()),
                            browser,
                            show_url: options.on_sign_in_url.as_ref(),
                            timeout: options.sign_in_timeout,
                        },
                    )
                    .await?
                }
                other => {
                    return Err(AuthError::ProcedureArgument {
                        procedure: info.name,
                        message: format!("AuthMode={other} is not valid: expected APP or WEB"),
                    });
                }
            };
            persist(&ctx, &t, "authorization_code").await?;
            Ok(token_rows(&t))
        }
        "RefreshOAuthAccessToken" => {
            let rt = args
                .get("OAuthRefreshToken")
                .map(Secret::from)
                .or_else(|| ctx.config.refresh_token.clone())
                .ok_or_else(|| AuthError::ProcedureArgument {
                    procedure: info.name,
                    message: "needs OAuthRefreshToken (as an argument or in the connection)".into(),
                })?;
            let t = ctx.delegated_client().refresh_token(&rt, &ctx.config.delegated_scope()).await?;
            persist(&ctx, &t, "refresh_token").await?;
            Ok(token_rows(&t))
        }
        _ => Ok(ProcedureOutput::one_row(vec![("URL", admin_consent_url(&ctx, Some(&callback), args.get("State")))])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_suggests() {
        assert_eq!(procedure("getoauthauthorizationurl").unwrap().name, "GetOAuthAuthorizationUrl");
        let e = procedure("GetOAuthAcessToken").unwrap_err().to_string();
        assert!(e.contains("did you mean 'GetOAuthAccessToken'"), "{e}");
    }

    #[test]
    fn debug_redacts_tokens() {
        let o = ProcedureOutput::one_row(vec![("OAuthAccessToken", "at-secret".into()), ("ExpiresIn", "3600".into())]);
        assert!(!format!("{o:?}").contains("at-secret"));
        assert_eq!(o.value("expiresin"), Some("3600"));
    }
}
