//! The loopback listener of the desktop sign-in (RFC 8252 §7.3): listens on `CallbackURL`'s
//! host and port (loopback addresses only; no port = any free port), waits for the browser's
//! redirect carrying `code` (or `error`) and `state`, answers with a small page, and hands the
//! code back. A `state` that differs from the one sent is refused.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::{AuthError, EntraError, Secret};

const MAX_HEAD: usize = 16 * 1024;

/// A bound loopback listener.
#[derive(Debug)]
pub struct Loopback {
    listeners: Vec<TcpListener>,
    redirect_uri: String,
    path: String,
}

/// Whether `callback` may be listened on: `http://` on localhost, 127.0.0.1 or `[::1]`.
pub fn is_loopback_callback(callback: &Url) -> bool {
    callback.scheme() == "http" && crate::config::is_loopback(callback)
}

impl Loopback {
    /// Binds the listener for `callback` (the `CallbackURL` as written).
    pub async fn bind(callback: &str) -> Result<Self, AuthError> {
        let fail = |message: String| AuthError::Callback { callback: callback.to_string(), message };
        let url = Url::parse(callback).map_err(|e| fail(format!("not a URL: {e}")))?;
        if !is_loopback_callback(&url) {
            return Err(fail(
                "the desktop sign-in listens only on http:// loopback addresses (localhost, 127.0.0.1, [::1]): set CallbackURL=http://localhost:33333, or use GetOAuthAuthorizationUrl/GetOAuthAccessToken for a web application's callback".into(),
            ));
        }
        let hosts: Vec<&str> = match url.host() {
            Some(url::Host::Domain(_)) => vec!["127.0.0.1", "::1"],
            Some(url::Host::Ipv4(_)) => vec!["127.0.0.1"],
            _ => vec!["::1"],
        };
        let wanted = url.port().unwrap_or(0);
        let first = TcpListener::bind((hosts[0], wanted)).await.map_err(|e| {
            fail(format!(
                "cannot listen on {}:{wanted} ({e}); another program may be using the port: close it, or set CallbackURL to another redirect URI registered on the app (http://localhost without a port lets d365 pick a free one)",
                hosts[0]
            ))
        })?;
        let port = first.local_addr().map_err(|e| fail(e.to_string()))?.port();
        let mut listeners = vec![first];
        for h in &hosts[1..] {
            // `localhost` may resolve to ::1 first in the browser; listen there too when possible
            if let Ok(l) = TcpListener::bind((*h, port)).await {
                listeners.push(l);
            }
        }
        let redirect_uri = if url.port().is_some() {
            callback.to_string()
        } else {
            let mut u = url.clone();
            u.set_port(Some(port)).map_err(|()| fail("cannot set the port".into()))?;
            let s = u.to_string();
            // keep the path exactly as written: `http://localhost` becomes `http://localhost:PORT`
            let written_has_path = callback.trim_start_matches("http://").contains('/');
            if !written_has_path && url.path() == "/" && u.query().is_none() {
                s.trim_end_matches('/').to_string()
            } else {
                s
            }
        };
        Ok(Self { listeners, redirect_uri, path: url.path().to_string() })
    }

    /// The `redirect_uri` to send (the callback with the actual port).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Waits for the browser's redirect and returns the authorization code.
    pub async fn wait(&self, expected_state: &str, timeout: Duration) -> Result<Secret, AuthError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let accept = async {
                let futs = self.listeners.iter().map(|l| Box::pin(l.accept()));
                futures_select_ok(futs.collect()).await
            };
            let stream = match tokio::time::timeout_at(deadline, accept).await {
                Err(_) => {
                    return Err(AuthError::TimedOut(format!(
                        "no sign-in answer reached {} within {} s: finish the sign-in in the browser; if it shows an error such as AADSTS50011, CallbackURL is not a redirect URI of the app",
                        self.redirect_uri,
                        timeout.as_secs()
                    )));
                }
                Ok(Err(e)) => {
                    return Err(AuthError::Callback { callback: self.redirect_uri.clone(), message: e.to_string() });
                }
                Ok(Ok(s)) => s,
            };
            if let Some(outcome) = self.handle(stream, expected_state).await {
                return outcome;
            }
        }
    }

    /// Serves one connection; `Some` when it carried the sign-in answer.
    async fn handle(&self, mut stream: TcpStream, expected_state: &str) -> Option<Result<Secret, AuthError>> {
        let head = match tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream)).await {
            Ok(Some(h)) => h,
            _ => return None,
        };
        let target = head.lines().next().and_then(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some("GET")).then(|| parts.next()).flatten()
        });
        let Some(target) = target else {
            respond(&mut stream, 405, "Method not allowed", "This address only receives the sign-in answer.").await;
            return None;
        };
        let Ok(url) = Url::parse(&format!("http://localhost{target}")) else {
            respond(&mut stream, 400, "Bad request", "This address only receives the sign-in answer.").await;
            return None;
        };
        let q = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        if url.path() != self.path || (q("code").is_none() && q("error").is_none()) {
            respond(&mut stream, 404, "Not found", "This address only receives the sign-in answer.").await;
            return None;
        }
        if q("state").as_deref() != Some(expected_state) {
            tracing::warn!("sign-in answer with a different state refused");
            respond(
                &mut stream,
                400,
                "Sign-in refused",
                "This answer does not belong to the sign-in d365 started (the state differs). Start the sign-in again.",
            )
            .await;
            return Some(Err(AuthError::StateMismatch { callback: self.redirect_uri.clone() }));
        }
        if let Some(error) = q("error") {
            let desc = q("error_description");
            let e = EntraError::from_redirect("sign-in in the browser", &error, desc.as_deref());
            let text = format!(
                "Signing in did not succeed: {}{}. You can close this window and return to d365.",
                e.code.map(|c| format!("AADSTS{c} ")).unwrap_or_default(),
                e.error
            );
            respond(&mut stream, 200, "Sign-in failed", &text).await;
            return Some(Err(AuthError::Entra(Box::new(e))));
        }
        respond(
            &mut stream,
            200,
            "Signed in",
            "You are signed in to d365. You can close this window and return to the terminal.",
        )
        .await;
        q("code").map(|c| Ok(Secret::from(c)))
    }
}

/// Accepts on whichever listener gets a connection first.
async fn futures_select_ok<F>(mut futs: Vec<std::pin::Pin<Box<F>>>) -> std::io::Result<TcpStream>
where
    F: std::future::Future<Output = std::io::Result<(TcpStream, std::net::SocketAddr)>>,
{
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(r) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(r.map(|(s, _)| s));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8(buf[..end].to_vec()).ok();
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn respond(stream: &mut TcpStream, status: u16, title: &str, text: &str) {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>d365: {t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}\
         h1{{font-weight:600}}</style></head><body><h1>{t}</h1><p id=\"message\">{m}</p></body></html>",
        t = escape(title),
        m = escape(text)
    );
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_non_loopback_and_picks_a_port() {
        let e = Loopback::bind("https://app.example.com/callback").await.unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
        let l = Loopback::bind("http://localhost").await.unwrap();
        assert!(l.redirect_uri().starts_with("http://localhost:"));
        assert!(!l.redirect_uri().ends_with('/'), "{}", l.redirect_uri());
        let l = Loopback::bind("http://127.0.0.1/cb").await.unwrap();
        assert!(l.redirect_uri().ends_with("/cb"), "{}", l.redirect_uri());
    }

    #[tokio::test]
    async fn answers_code_state_mismatch_and_error() {
        let l = Loopback::bind("http://127.0.0.1").await.unwrap();
        let uri = l.redirect_uri().to_string();
        let get = |q: &'static str| {
            let uri = uri.clone();
            tokio::spawn(async move {
                let addr = uri.trim_start_matches("http://").to_string();
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(format!("GET /?{q} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            })
        };
        let page = get("code=abc&state=s1");
        let code = l.wait("s1", Duration::from_secs(5)).await.unwrap();
        assert_eq!(code.expose(), "abc");
        assert!(page.await.unwrap().contains("close this window"));

        drop(get("code=abc&state=other"));
        assert!(matches!(l.wait("s1", Duration::from_secs(5)).await, Err(AuthError::StateMismatch { .. })));

        drop(get("error=access_denied&error_description=AADSTS65004%3A+declined&state=s1"));
        let e = l.wait("s1", Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(e.entra().unwrap().code, Some(65004));

        let e = l.wait("s1", Duration::from_millis(50)).await.unwrap_err().to_string();
        assert!(e.contains("AADSTS50011"), "{e}");
    }
}
