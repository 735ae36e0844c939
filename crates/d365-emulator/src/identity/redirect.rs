//! Redirect URIs: matching a request's `redirect_uri` against the registration (exact, with
//! the loopback exception) and answering the app with `response_mode` query, fragment or
//! form_post (reference §2.1, §2.2).

use super::errors::{AadError, ErrorPage, RequestCtx};
use super::html;
use crate::config::AppConfig;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// How the authorize response reaches the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// `?code=…` (default for the code flow).
    Query,
    /// `#code=…`.
    Fragment,
    /// An auto-submitting HTML form POSTing the parameters to the redirect URI.
    FormPost,
}

impl ResponseMode {
    /// Parses `response_mode` (absent means `query`).
    pub fn parse(v: Option<&str>) -> Option<Self> {
        match v {
            None | Some("query") => Some(Self::Query),
            Some("fragment") => Some(Self::Fragment),
            Some("form_post") => Some(Self::FormPost),
            Some(_) => None,
        }
    }
}

fn is_loopback_without_port(registered: &str, url: &url::Url) -> bool {
    url.scheme() == "http"
        && matches!(url.host_str(), Some("localhost") | Some("127.0.0.1"))
        && url.port().is_none()
        && {
            // `http://localhost:80` also has no port in the parsed URL; require it to be written without one.
            let after_scheme = &registered["http://".len().min(registered.len())..];
            let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
            !authority.contains(':')
        }
}

/// Whether `requested` matches the registered URI `registered`: exactly, or — for
/// `http://localhost` / `http://127.0.0.1` registered without a port — on any port with the
/// same path and query.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(r), Ok(q)) = (url::Url::parse(registered), url::Url::parse(requested)) else {
        return false;
    };
    is_loopback_without_port(registered, &r)
        && q.scheme() == "http"
        && q.host_str() == r.host_str()
        && q.path() == r.path()
        && q.query() == r.query()
        && q.fragment().is_none()
        && q.username().is_empty()
}

/// The redirect URI to use for `app`: the requested one if registered (else AADSTS50011), or
/// the first registered one when the request named none (AADSTS500113 when there is none).
pub fn resolve(app: &AppConfig, requested: Option<&str>) -> Result<String, ErrorPage> {
    match requested {
        Some(r) if app.redirect_uris.iter().any(|reg| matches(reg, r)) => Ok(r.to_string()),
        Some(r) => Err(ErrorPage(mismatch(r, &app.client_id.to_string()))),
        None => app.redirect_uris.first().cloned().ok_or_else(|| {
            ErrorPage(AadError::new("invalid_request", 500113, "No reply address is registered for the application."))
        }),
    }
}

/// AADSTS50011 for `uri` on `client_id`.
pub fn mismatch(uri: &str, client_id: &str) -> AadError {
    AadError::new(
        "invalid_request",
        50011,
        format!(
            "The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for the \
             application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your \
             application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more \
             about how to fix this."
        ),
    )
}

/// Sends `params` to `redirect_uri` in `mode`.
pub fn respond(redirect_uri: &str, mode: ResponseMode, params: &[(&str, String)]) -> Response {
    match mode {
        ResponseMode::Query | ResponseMode::Fragment => {
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            let location = if mode == ResponseMode::Query {
                match url::Url::parse(redirect_uri) {
                    Ok(mut u) => {
                        u.query_pairs_mut().extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
                        u.to_string()
                    }
                    Err(_) => {
                        let sep = if redirect_uri.contains('?') { '&' } else { '?' };
                        format!("{redirect_uri}{sep}{encoded}")
                    }
                }
            } else {
                format!("{}#{encoded}", redirect_uri.split('#').next().unwrap_or(redirect_uri))
            };
            found(&location)
        }
        ResponseMode::FormPost => {
            let fields: String = params.iter().map(|(k, v)| html::hidden(k, v)).collect();
            let body = format!(
                "<h1>Working…</h1><form method=\"post\" action=\"{}\">{fields}\
                 <noscript><p>Script is disabled. Click Continue to finish signing in.</p>\
                 <button class=\"primary\" type=\"submit\">Continue</button></noscript></form>\
                 <script>document.forms[0].submit();</script>",
                html::escape(redirect_uri)
            );
            html::page(StatusCode::OK, "Working...", &body, true)
        }
    }
}

/// A 302 to `location`.
pub fn found(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    resp
}

/// Sends an OAuth error to the app: `error`, `error_description`, `error_uri`, `state`.
pub fn error(redirect_uri: &str, mode: ResponseMode, e: &AadError, state: Option<&str>) -> Response {
    let ctx = RequestCtx::current();
    tracing::debug!(error = e.error, code = e.code, "authorization refused (redirected)");
    let mut params = vec![
        ("error", e.error.to_string()),
        ("error_description", e.description(&ctx)),
        ("error_uri", e.error_uri(&ctx)),
    ];
    if let Some(s) = state {
        params.push(("state", s.to_string()));
    }
    respond(redirect_uri, mode, &params)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn loopback_any_port_only_when_registered_without_port() {
        assert!(matches("http://localhost", "http://localhost:51234"));
        assert!(matches("http://localhost", "http://localhost:51234/"));
        assert!(matches("http://127.0.0.1", "http://127.0.0.1:9000"));
        assert!(!matches("http://localhost", "http://localhost:51234/cb"));
        assert!(!matches("http://localhost", "https://localhost:51234"));
        assert!(!matches("http://localhost", "http://127.0.0.1:51234"));
        assert!(!matches("http://localhost:33333", "http://localhost:33334"));
        assert!(matches("http://localhost:33333", "http://localhost:33333"));
        assert!(!matches("https://localhost:44300/oauth/callback", "https://localhost:44300/oauth/callback/"));
        assert!(!matches("http://localhost", "http://evil.example:80"));
    }
}
