//! The retry policy against a scripted local HTTP server: each connection gets the next
//! scripted reply (429 with `Retry-After`, 503, a reset, a truncated body, a 401, …) and the
//! server records what it received. Time is a [`ManualClock`], so no test waits for real.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use d365_client::{
    AccessToken, AuthError, ClientError, ClientOptions, DataverseClient, ManualClock, Query, RecordKey, RetryConfig,
    TokenProvider,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server does with one request.
#[derive(Clone)]
enum Reply {
    /// Writes these bytes, then closes the connection.
    Raw(Vec<u8>),
    /// Closes the connection without answering.
    Reset,
}

fn http(status: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.push_str(body);
    Reply::Raw(s.into_bytes())
}

fn ok_json(body: &str) -> Reply {
    http("200 OK", &[("Content-Type", "application/json; odata.metadata=minimal"), ("REQ_ID", "r-ok")], body)
}

fn dv_error(status: &str, code: &str, message: &str, extra: &[(&str, &str)]) -> Reply {
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    let mut headers = vec![("Content-Type", "application/json"), ("REQ_ID", "r-err")];
    headers.extend_from_slice(extra);
    http(status, &headers, &body)
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(script: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            let mut script = script.into_iter();
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let Some(req) = read_request(&mut sock).await else { continue };
                seen2.lock().unwrap().push(req);
                match script.next() {
                    Some(Reply::Raw(bytes)) => {
                        let _ = sock.write_all(&bytes).await;
                        let _ = sock.shutdown().await;
                    }
                    Some(Reply::Reset) | None => drop(sock),
                }
            }
        });
        Server { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Seen { method, target, headers })
}

/// Hands out `token-1`, and `token-2`, `token-3`, … on each refresh.
#[derive(Debug, Default)]
struct CountingProvider {
    refreshes: AtomicU32,
}

#[async_trait::async_trait]
impl TokenProvider for CountingProvider {
    async fn token(&self) -> Result<AccessToken, AuthError> {
        Ok(AccessToken::new(format!("token-{}", self.refreshes.load(Ordering::SeqCst) + 1), None))
    }

    async fn refresh_after_rejection(&self, _rejected: &AccessToken) -> Result<AccessToken, AuthError> {
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AccessToken::new(format!("token-{}", n + 1), None))
    }

    fn flow_name(&self) -> &'static str {
        "test"
    }
}

struct Fixture {
    server: Server,
    client: DataverseClient,
    clock: Arc<ManualClock>,
    tokens: Arc<CountingProvider>,
}

async fn fixture(script: Vec<Reply>, retry: RetryConfig) -> Fixture {
    let server = Server::start(script).await;
    let clock = Arc::new(ManualClock::new());
    let tokens = Arc::new(CountingProvider::default());
    let options = ClientOptions { retry, clock: clock.clone(), ..ClientOptions::new(server.url.clone()) };
    let client = DataverseClient::new(options, tokens.clone()).unwrap();
    Fixture { server, client, clock, tokens }
}

fn no_jitter() -> RetryConfig {
    RetryConfig {
        jitter: false,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        ..RetryConfig::default()
    }
}

const WHOAMI: &str = r#"{"UserId":"11111111-1111-1111-1111-111111111111","BusinessUnitId":"22222222-2222-2222-2222-222222222222","OrganizationId":"33333333-3333-3333-3333-333333333333"}"#;

#[tokio::test]
async fn throttling_waits_exactly_retry_after_seconds() {
    let f = fixture(
        vec![
            dv_error(
                "429 Too Many Requests",
                "0x80072322",
                "Number of requests exceeded the limit",
                &[("Retry-After", "7")],
            ),
            ok_json(WHOAMI),
        ],
        no_jitter(),
    )
    .await;
    let who = f.client.whoami().await.unwrap();
    assert_eq!(who.user_id.to_string(), "11111111-1111-1111-1111-111111111111");
    assert_eq!(f.clock.sleeps(), vec![Duration::from_secs(7)]);
    let stats = f.client.request_log().stats();
    assert_eq!((stats.requests, stats.get, stats.retries, stats.throttled), (2, 2, 1, 1));
    assert_eq!(stats.throttle_wait, Duration::from_secs(7));
    // Standard headers on every attempt; the token never changes without a 401.
    for s in f.server.seen() {
        assert_eq!(s.target, "/api/data/v9.2/WhoAmI");
        assert_eq!(s.header("authorization"), Some("Bearer token-1"));
        assert_eq!(s.header("odata-version"), Some("4.0"));
        assert_eq!(s.header("odata-maxversion"), Some("4.0"));
        assert_eq!(s.header("accept"), Some("application/json"));
    }
}

#[tokio::test]
async fn retry_after_as_an_http_date_and_on_503() {
    let server_script = |date: String| {
        vec![
            http("503 Service Unavailable", &[("Retry-After", &date)], ""),
            dv_error("429 Too Many Requests", "0x80072321", "Combined execution time", &[("Retry-After", "2")]),
            ok_json(WHOAMI),
        ]
    };
    // The date is relative to the client's (manual) wall clock.
    let clock = Arc::new(ManualClock::new());
    let date = httpdate::fmt_http_date(d365_client::Clock::system_now(clock.as_ref()) + Duration::from_secs(30));
    let server = Server::start(server_script(date)).await;
    let options = ClientOptions { retry: no_jitter(), clock: clock.clone(), ..ClientOptions::new(server.url.clone()) };
    let client = DataverseClient::new(options, Arc::new(CountingProvider::default())).unwrap();
    client.whoami().await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(30), Duration::from_secs(2)]);
    assert_eq!(client.request_log().stats().throttled, 2);
}

#[tokio::test]
async fn server_errors_back_off_exponentially_on_reads() {
    let f = fixture(
        vec![
            http("503 Service Unavailable", &[], "busy"),
            http("502 Bad Gateway", &[], "gateway"),
            dv_error("500 Internal Server Error", "0x80044150", "Generic SQL error.", &[]),
            ok_json(WHOAMI),
        ],
        no_jitter(),
    )
    .await;
    f.client.whoami().await.unwrap();
    assert_eq!(
        f.clock.sleeps(),
        vec![Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(400)]
    );
    assert_eq!(f.client.request_log().stats().throttled, 0);
}

#[tokio::test]
async fn resets_and_truncated_or_garbled_bodies_are_retried_on_reads() {
    let truncated = {
        let mut s = String::from(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n",
        );
        s.push_str(r#"{"value":[{"name":"a"},{"na"#);
        Reply::Raw(s.into_bytes())
    };
    let f = fixture(
        vec![
            Reply::Reset,
            truncated,
            ok_json(r#"{"value":[{"name":"a"},{"na"#), // complete HTTP message, broken JSON
            ok_json(r#"{"value":[{"name":"a"},{"name":"b"}]}"#),
        ],
        no_jitter(),
    )
    .await;
    let rows = f.client.page_stream(&Query::new("accounts")).unwrap().collect_rows().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(f.server.seen().len(), 4);
    assert_eq!(f.clock.sleeps().len(), 3);
}

#[tokio::test]
async fn a_create_is_never_repeated_after_an_unknown_outcome() {
    for reply in [Reply::Reset, http("502 Bad Gateway", &[], ""), http("504 Gateway Timeout", &[], "")] {
        let f = fixture(vec![reply, http("204 No Content", &[], "")], no_jitter()).await;
        let err = f.client.create("contacts", &json!({"lastname": "x"})).await.unwrap_err();
        assert!(matches!(err, ClientError::WriteOutcomeUnknown { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("POST /api/data/v9.2/contacts: the outcome of this write is unknown"), "{text}");
        assert_eq!(f.server.seen().len(), 1, "the POST was sent once");
        assert!(f.clock.sleeps().is_empty());
    }
}

#[tokio::test]
async fn a_throttled_create_is_retried_because_it_was_not_executed() {
    let id = "7eb682f1-ca75-e511-80d4-00155d2a68d1";
    let entity = format!("http://x/api/data/v9.2/contacts({id})");
    let f = fixture(
        vec![
            dv_error(
                "429 Too Many Requests",
                "0x80072326",
                "Number of concurrent requests exceeded",
                &[("Retry-After", "1")],
            ),
            http("204 No Content", &[("OData-EntityId", &entity)], ""),
        ],
        no_jitter(),
    )
    .await;
    let created = f.client.create("contacts", &json!({"lastname": "x"})).await.unwrap();
    assert_eq!(created.to_string(), id);
    let seen = f.server.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.method == "POST" && s.header("content-type") == Some("application/json")));
}

#[tokio::test]
async fn a_dataverse_500_answer_to_a_write_is_final() {
    let f = fixture(
        vec![dv_error(
            "500 Internal Server Error",
            "0x80040333",
            "A record was not created or updated because a duplicate of the current record already exists.",
            &[],
        )],
        no_jitter(),
    )
    .await;
    let err = f.client.create("accounts", &json!({"name": "dup"})).await.unwrap_err();
    assert_eq!(err.dataverse_code(), Some("0x80040333"));
    assert_eq!(err.status(), Some(500));
    assert_eq!(f.server.seen().len(), 1);
}

#[tokio::test]
async fn unauthorized_refreshes_the_token_once() {
    let f =
        fixture(vec![dv_error("401 Unauthorized", "0x80040220", "expired", &[]), ok_json(WHOAMI)], no_jitter()).await;
    f.client.whoami().await.unwrap();
    assert_eq!(f.tokens.refreshes.load(Ordering::SeqCst), 1);
    let seen = f.server.seen();
    assert_eq!(seen[0].header("authorization"), Some("Bearer token-1"));
    assert_eq!(seen[1].header("authorization"), Some("Bearer token-2"));
    assert!(f.clock.sleeps().is_empty(), "no backoff before the refreshed attempt");

    // A second 401 is final.
    let f = fixture(
        vec![http("401 Unauthorized", &[("WWW-Authenticate", "Bearer authorization_uri=x")], ""); 3],
        no_jitter(),
    )
    .await;
    let err = f.client.whoami().await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err:?}");
    assert!(err.is_auth());
    assert_eq!(f.tokens.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(f.server.seen().len(), 2);
    assert!(!err.to_string().contains("token-"), "no token in the message: {err}");
}

#[tokio::test]
async fn the_budget_is_bounded_and_the_final_error_lists_attempts() {
    let retry = RetryConfig { max_retries: 3, ..no_jitter() };
    let f = fixture(vec![http("503 Service Unavailable", &[("REQ_ID", "r-503")], "busy"); 10], retry).await;
    let err = f.client.whoami().await.unwrap_err();
    let ClientError::RetriesExhausted { attempts, .. } = &err else { panic!("{err:?}") };
    assert_eq!(attempts.len(), 4);
    assert_eq!(f.server.seen().len(), 4);
    let text = err.to_string();
    assert!(text.contains("gave up after 4 attempts over 0.7 s (HTTP 503 ×4)"), "{text}");
    assert!(text.contains("[request id r-503]"), "{text}");

    // A Retry-After beyond the time budget ends the request at once, without sleeping.
    let retry = RetryConfig { max_elapsed: Duration::from_secs(60), ..no_jitter() };
    let f = fixture(
        vec![dv_error(
            "429 Too Many Requests",
            "0x80072322",
            "Number of requests exceeded the limit",
            &[("Retry-After", "300")],
        )],
        retry,
    )
    .await;
    let err = f.client.whoami().await.unwrap_err();
    assert!(matches!(err, ClientError::Throttled { .. }), "{err:?}");
    assert!(err.to_string().contains("asked to wait 300 s"), "{err}");
    assert_eq!(err.dataverse_code(), Some("0x80072322"));
    assert!(f.clock.sleeps().is_empty());
}

#[tokio::test]
async fn connection_failures_are_retried_even_for_writes_because_nothing_was_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let clock = Arc::new(ManualClock::new());
    let options = ClientOptions {
        retry: RetryConfig { max_retries: 2, ..no_jitter() },
        clock: clock.clone(),
        ..ClientOptions::new(url)
    };
    let client = DataverseClient::new(options, Arc::new(CountingProvider::default())).unwrap();
    let err = client.create("contacts", &json!({})).await.unwrap_err();
    let ClientError::RetriesExhausted { attempts, last, .. } = &err else { panic!("{err:?}") };
    assert_eq!(attempts.len(), 3);
    assert!(matches!(**last, ClientError::Transport { .. }));
    assert!(err.to_string().contains("connection failed ×3"), "{err}");
    assert_eq!(client.request_log().stats().post, 3);
}

#[tokio::test]
async fn a_retried_delete_that_finds_the_record_gone_succeeds() {
    let id = uuid::Uuid::new_v4();
    let f = fixture(
        vec![Reply::Reset, dv_error("404 Not Found", "0x80040217", "contact With Id = x Does Not Exist", &[])],
        no_jitter(),
    )
    .await;
    f.client.delete("contacts", &RecordKey::Id(id), None).await.unwrap();
    assert_eq!(f.server.seen().len(), 2);
    // Without a lost attempt, a 404 is an error.
    let f = fixture(vec![dv_error("404 Not Found", "0x80040217", "missing", &[])], no_jitter()).await;
    let err = f.client.delete("contacts", &RecordKey::Id(id), None).await.unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn hints_and_request_ids_are_kept() {
    let f = fixture(
        vec![
            http(
                "200 OK",
                &[
                    ("Content-Type", "application/json"),
                    ("x-ms-dop-hint", "8"),
                    ("x-ms-ratelimit-burst-remaining-xrm-requests", "5999"),
                ],
                WHOAMI,
            ),
            dv_error("403 Forbidden", "0x80040220", "Principal user (Id=1, type=8), is missing prvReadnew_widget privilege (Id=2) on OTC=10010 for entity 'new_widget'.", &[]),
        ],
        no_jitter(),
    )
    .await;
    f.client.whoami().await.unwrap();
    let hints = f.client.server_hints();
    assert_eq!(hints.dop_hint, Some(8));
    assert_eq!(hints.burst_remaining, Some(5999));
    let err = f.client.get_json("new_widgets").await.unwrap_err();
    assert!(err.is_forbidden());
    let text = err.to_string();
    assert!(text.contains("lacks privilege prvReadnew_widget on table 'new_widget'"), "{text}");
    assert!(text.contains("[request id r-err]"), "{text}");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_long_wait_for_the_service_is_told_to_the_user() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let throttled = |after: &str| {
        dv_error(
            "429 Too Many Requests",
            "0x80072322",
            "Number of requests exceeded the limit",
            &[("Retry-After", after)],
        )
    };
    let f = fixture(
        vec![throttled("2"), throttled("30"), throttled("30"), ok_json(WHOAMI), throttled("45"), ok_json(WHOAMI)],
        no_jitter(),
    )
    .await;
    f.client.whoami().await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // A 2-second wait is not worth a line; each wait of 10 s or more is told (at most one line
    // every ten seconds per client, so a throttled parallel read does not print one per request).
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("waiting")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("WARN")
            && lines[0].contains("waiting 30 s before retrying GET /api/data/v9.2/WhoAmI (attempt 2)"),
        "{text}"
    );
    f.client.whoami().await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("waiting 45 s"), "{text}");
    assert_eq!(f.clock.sleeps(), vec![2, 30, 30, 45].into_iter().map(Duration::from_secs).collect::<Vec<_>>());
}
