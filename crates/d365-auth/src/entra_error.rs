//! Entra ID's error answers (reference `entra-id-oauth.md` §7.2) turned into one message a
//! person can act on: what failed, the AADSTS code, and the likely fix.

use std::fmt;

use serde::Deserialize;

/// An error answer from Entra ID (token endpoint, device-code endpoint, or a sign-in redirect
/// carrying `error=`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntraError {
    /// What d365 was doing ("client credentials (client secret) token request").
    pub action: String,
    /// HTTP status (0 for errors that came back through the browser).
    pub status: u16,
    /// OAuth `error` (`invalid_client`, `invalid_grant`, …).
    pub error: String,
    /// The AADSTS number (`error_codes[0]`, or read from the description).
    pub code: Option<u32>,
    /// The description's first line, without the `AADSTSnnn: ` prefix.
    pub description: String,
    /// `suberror` (`consent_required`, `bad_token`, …).
    pub suberror: Option<String>,
    /// `trace_id`, for Microsoft support.
    pub trace_id: Option<String>,
    /// `correlation_id`, for Microsoft support.
    pub correlation_id: Option<String>,
    /// The likely fix.
    pub hint: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    error: Option<String>,
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u32>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
    suberror: Option<String>,
}

impl EntraError {
    /// Parses an error body; `None` when it is not an OAuth error object.
    pub fn from_body(action: &str, status: u16, body: &[u8]) -> Option<Self> {
        let b: Body = serde_json::from_slice(body).ok()?;
        let error = b.error?;
        Some(Self::build(
            action,
            status,
            error,
            b.error_description.as_deref().unwrap_or_default(),
            b.error_codes.first().copied(),
            b.suberror,
            b.trace_id,
            b.correlation_id,
        ))
    }

    /// An error that came back on a redirect (`error`, `error_description` query parameters).
    pub fn from_redirect(action: &str, error: &str, description: Option<&str>) -> Self {
        Self::build(action, 0, error.to_string(), description.unwrap_or_default(), None, None, None, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        action: &str,
        status: u16,
        error: String,
        raw_description: &str,
        code: Option<u32>,
        suberror: Option<String>,
        trace_id: Option<String>,
        correlation_id: Option<String>,
    ) -> Self {
        let first = raw_description.lines().next().unwrap_or_default().trim();
        let (parsed_code, text) = split_aadsts(first);
        let find = |label: &str| {
            raw_description.lines().find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_string()))
        };
        let trace_id = trace_id.or_else(|| find("Trace ID:"));
        let correlation_id = correlation_id.or_else(|| find("Correlation ID:"));
        let code = code.or(parsed_code);
        let hint = hint(code, &error, suberror.as_deref()).map(str::to_string);
        Self {
            action: action.to_string(),
            status,
            error,
            code,
            description: text.to_string(),
            suberror,
            trace_id,
            correlation_id,
            hint,
        }
    }

    /// Replaces the likely fix.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether the grant used (refresh token, code) is no longer valid, so a new sign-in is needed.
    pub fn is_invalid_grant(&self) -> bool {
        self.error == "invalid_grant"
    }
}

fn split_aadsts(line: &str) -> (Option<u32>, &str) {
    if let Some(rest) = line.strip_prefix("AADSTS") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            let text = rest[digits.len()..].trim_start_matches(':').trim();
            return (Some(n), text);
        }
    }
    (None, line)
}

/// The likely fix for an AADSTS code / OAuth error.
pub fn hint(code: Option<u32>, error: &str, suberror: Option<&str>) -> Option<&'static str> {
    Some(match code {
        Some(7000215) => {
            "the client secret is wrong: copy the secret's *Value* (shown once, when it was created), not its Secret ID, into OAuthClientSecret"
        }
        Some(7000222) => {
            "the client secret has expired: create a new one (app registration > Certificates & secrets) and put its value in OAuthClientSecret"
        }
        Some(7000218) => {
            "the app is a confidential client: give it a credential (OAuthClientSecret, or a certificate with AuthScheme=AzureServicePrincipalCert)"
        }
        Some(700025) => {
            "the app is registered as a public client: remove OAuthClientSecret / the certificate, or use a confidential (web) app"
        }
        Some(700016) => {
            "OAuthClientId is not an application in this tenant: check OAuthClientId and AzureTenant (and AzureEnvironment), or have an administrator add/consent the app"
        }
        Some(90002) => {
            "the tenant does not exist in this cloud: check AzureTenant (tenant GUID or verified domain such as contoso.onmicrosoft.com) and AzureEnvironment"
        }
        Some(700027) => {
            "the certificate is not registered on the app (or the signature does not match it): upload the certificate's public part (.cer/.pem) under the app registration's Certificates & secrets, and check OAuthJWTCert is that certificate"
        }
        Some(700024) => "the client assertion is outside its valid time window: check this machine's clock",
        Some(50048) | Some(700021) => {
            "the certificate assertion names another app: OAuthClientId must be the app the certificate is registered on"
        }
        Some(50011) => {
            "the redirect URI does not match the app registration: add CallbackURL exactly (scheme, host, port, path) as a redirect URI of the app, or set CallbackURL to a registered one"
        }
        Some(500113) => "the app has no redirect URI registered: add CallbackURL as a redirect URI of the app",
        Some(54005) => {
            "this authorization code was already redeemed (codes are single-use): get a new code by signing in again"
        }
        Some(70008) => {
            "the authorization code or refresh token has expired or was revoked: sign in again (`d365 login`)"
        }
        Some(700082) | Some(700084) | Some(50173) => {
            "the refresh token is no longer valid: sign in again (`d365 login`)"
        }
        Some(65001) => {
            "nobody has consented to this app in the tenant: an administrator must grant admin consent (GetAdminConsentURL gives the link)"
        }
        Some(65004) => "consent was declined in the browser: sign in again and accept",
        Some(90094) => "admin consent is required: sign in with an administrator account",
        Some(70011) | Some(1002012) | Some(700022) => {
            "the requested scope is invalid: check Scope (app-only flows need exactly one '<OrganizationUrl>/.default')"
        }
        Some(500011) => {
            "OrganizationUrl is not a Dataverse environment of this tenant: check OrganizationUrl and AzureTenant"
        }
        Some(9001023) | Some(90130) => "use a tenant-specific authority: set AzureTenant to the tenant GUID or domain",
        Some(700211) | Some(70021) => {
            "no federated identity credential on the app matches the token: its issuer, subject and audience (api://AzureADTokenExchange) must match the file's token"
        }
        Some(70019) => {
            "the device code expired before the sign-in finished: start again and finish within the time shown"
        }
        Some(50058) => "no user is signed in to the browser session: sign in interactively",
        Some(50126) => "the username or password is wrong",
        Some(501481) => "the PKCE verifier did not match: start the sign-in again",
        Some(700005) => {
            "the code was issued for another tenant: use the same AzureTenant for the URL and the code redemption"
        }
        _ => match (error, suberror) {
            (_, Some("consent_required")) | ("consent_required", _) => {
                "nobody has consented to this app in the tenant: an administrator must grant admin consent (GetAdminConsentURL gives the link)"
            }
            ("invalid_grant", _) => "the code or refresh token is not valid any more: sign in again (`d365 login`)",
            ("access_denied", _) => "the sign-in was cancelled or denied in the browser",
            ("authorization_declined", _) => "the sign-in was declined: start again and accept",
            ("expired_token", _) => "the device code expired: start again",
            ("invalid_tenant", _) => "check AzureTenant",
            ("unauthorized_client", _) => "check OAuthClientId and AzureTenant",
            ("temporarily_unavailable", _) | ("server_error", _) => "Entra ID had a problem: try again later",
            _ => return None,
        },
    })
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: ", self.action)?;
        match self.code {
            Some(c) => write!(f, "AADSTS{c} ({})", self.error)?,
            None => write!(f, "{}", self.error)?,
        }
        if !self.description.is_empty() {
            write!(f, ": {}", first_sentence(&self.description))?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  likely fix: {h}")?;
        }
        match (&self.trace_id, &self.correlation_id) {
            (Some(t), Some(c)) => write!(f, "\n  (trace ID {t}, correlation ID {c})")?,
            (Some(t), None) => write!(f, "\n  (trace ID {t})")?,
            _ => {}
        }
        Ok(())
    }
}

impl std::error::Error for EntraError {}

fn first_sentence(s: &str) -> &str {
    let limit = 300;
    let end = s.find(". ").map(|i| i + 1).unwrap_or(s.len());
    let end = if end > limit { s.char_indices().nth(limit).map(|(i, _)| i).unwrap_or(s.len()) } else { end };
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entra_body_and_gives_the_fix() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2025-01-01 00:00:00Z","error_codes":[7000215],"trace_id":"t-1","correlation_id":"c-1"}"#;
        let e = EntraError::from_body("client credentials token request", 401, body).unwrap();
        assert_eq!(e.code, Some(7000215));
        assert_eq!(e.description.split('.').next(), Some("Invalid client secret provided"));
        let shown = e.to_string();
        assert!(shown.starts_with("client credentials token request failed: AADSTS7000215 (invalid_client): Invalid client secret provided."), "{shown}");
        assert!(shown.contains("not its Secret ID"), "{shown}");
        assert!(shown.contains("trace ID t-1, correlation ID c-1"), "{shown}");
    }

    #[test]
    fn code_from_description_when_codes_are_missing() {
        let e = EntraError::from_redirect(
            "sign-in",
            "consent_required",
            Some("AADSTS65001: The user or administrator has not consented."),
        );
        assert_eq!(e.code, Some(65001));
        assert!(e.hint.unwrap().contains("admin consent"));
        assert!(EntraError::from_body("x", 400, b"not json").is_none());
        assert!(EntraError::from_body("x", 400, b"{\"access_token\":\"a\"}").is_none());
    }
}
