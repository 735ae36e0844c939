//! A minimal W3C WebDriver client (the HTTP API chromedriver serves), enough to drive a sign-in
//! page: sessions, navigation, finding elements by CSS selector, typing, clicking, reading text.
//! Every wait is bounded polling.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often waits poll.
const POLL: Duration = Duration::from_millis(100);

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| format!("WebDriver {method} {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| format!("WebDriver {method} {url}: not JSON ({e})"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if !status.is_success() {
        let error = value.get("error").and_then(Value::as_str).unwrap_or("error");
        let message = value.get("message").and_then(Value::as_str).unwrap_or_default();
        let first = message.lines().next().unwrap_or_default();
        return Err(format!("WebDriver {method} {url}: HTTP {status} {error}: {first}"));
    }
    Ok(value)
}

/// A WebDriver server (chromedriver).
pub struct WebDriver {
    http: reqwest::Client,
    base: String,
}

impl WebDriver {
    /// The server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("an HTTP client");
        Self { http, base: base.trim_end_matches('/').to_string() }
    }

    /// Waits until the server says it is ready (at most `limit`).
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < limit {
            match call(&self.http, reqwest::Method::GET, &format!("{}/status", self.base), None).await {
                Ok(v) if v.get("ready").and_then(Value::as_bool) == Some(true) => return Ok(()),
                Ok(v) => last = v.to_string(),
                Err(e) => last = e,
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!("the WebDriver server at {} was not ready within {limit:?}: {last}", self.base))
    }

    /// Starts a browser session with these capabilities (`alwaysMatch`).
    pub async fn new_session(&self, always_match: Value) -> Result<Session, String> {
        let body = json!({ "capabilities": { "alwaysMatch": always_match } });
        let v = call(&self.http, reqwest::Method::POST, &format!("{}/session", self.base), Some(body)).await?;
        let id = v.get("sessionId").and_then(Value::as_str).ok_or_else(|| format!("no sessionId in {v}"))?;
        Ok(Session { http: self.http.clone(), url: format!("{}/session/{id}", self.base) })
    }

    /// Asks the server to quit (closing its sessions).
    pub async fn shutdown(&self) {
        let _ = self.http.get(format!("{}/shutdown", self.base)).send().await;
    }
}

/// A browser session.
pub struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        call(&self.http, method, &format!("{}{path}", self.url), body).await
    }

    /// Navigates to `url` (returns when the page has loaded).
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await.map(|_| ())
    }

    /// The current page's URL.
    pub async fn current_url(&self) -> Result<String, String> {
        let v = self.call(reqwest::Method::GET, "/url", None).await?;
        v.as_str().map(str::to_string).ok_or_else(|| format!("not a URL: {v}"))
    }

    /// The current page's title.
    pub async fn title(&self) -> Result<String, String> {
        let v = self.call(reqwest::Method::GET, "/title", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Result<Option<String>, String> {
        let v = self
            .call(reqwest::Method::POST, "/elements", Some(json!({ "using": "css selector", "value": css })))
            .await?;
        Ok(v.as_array()
            .and_then(|a| a.first())
            .and_then(|e| e.get(ELEMENT_KEY))
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Waits (at most `limit`) until one of `selectors` matches: its index and the element.
    pub async fn wait_for_any(&self, selectors: &[&str], limit: Duration) -> Result<(usize, String), String> {
        let start = Instant::now();
        loop {
            for (i, css) in selectors.iter().enumerate() {
                // a page being replaced can answer "stale element" or "no such window" briefly
                if let Ok(Some(e)) = self.find(css).await {
                    return Ok((i, e));
                }
            }
            if start.elapsed() > limit {
                return Err(format!("none of {selectors:?} appeared within {limit:?} ({})", self.describe().await));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The visible text of an element.
    pub async fn text(&self, element: &str) -> Result<String, String> {
        let v = self.call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Types `text` into an element.
    pub async fn type_text(&self, element: &str, text: &str) -> Result<(), String> {
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({ "text": text })))
            .await
            .map(|_| ())
    }

    /// Clicks an element.
    pub async fn click(&self, element: &str) -> Result<(), String> {
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await.map(|_| ())
    }

    /// The page's title and URL without its query (which may hold a code), for messages.
    pub async fn describe(&self) -> String {
        let url = self.current_url().await.unwrap_or_default();
        let url = url.split('?').next().unwrap_or_default().to_string();
        let title = self.title().await.unwrap_or_default();
        format!("page '{title}' at {url}")
    }

    /// Ends the session (the browser quits).
    pub async fn quit(self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }
}
