//! Service protection (429 with Retry-After and the documented codes) and fault injection,
//! over real HTTPS. Time is the emulator's clock: the tests advance it instead of sleeping.

use crate::common;

use common::*;
use d365_emulator::webapi::faults::FaultSettings;
use d365_emulator::webapi::limits::LimitSettings;

async fn start_with(options: EmulatorOptions) -> Env {
    let emu = Emulator::start(options).await.expect("emulator starts");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&emu.ready().ca_pem).unwrap()).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    Env { emu, http }
}

#[tokio::test]
async fn request_limit_answers_429_until_the_window_slides() {
    let limits = LimitSettings { requests: 5, window_secs: 60, ..Default::default() };
    let env = start_with(EmulatorOptions { rows: 5, limits, dop_hint: Some(3), ..Default::default() }).await;
    let t = env.integration();
    for i in 0..5 {
        let r = env.get(&t, "WhoAmI").await;
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
        assert_eq!(r.headers()["x-ms-ratelimit-burst-remaining-xrm-requests"], (4 - i).to_string().as_str());
        assert_eq!(r.headers()["x-ms-dop-hint"], "3");
    }
    let r = env.get(&t, "WhoAmI").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = json_of(r).await;
    assert_eq!(body["error"]["code"], "0x80072322");
    assert_eq!(body["error"]["message"], "Number of requests exceeded the limit of 5 over time window of 60 seconds.");
    // Another user has its own budget.
    assert_eq!(env.get(&env.admin_app(), "WhoAmI").await.status(), StatusCode::OK);
    env.emu.state().clock.advance(retry);
    assert_eq!(env.get(&t, "WhoAmI").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_count_when_they_arrive_so_many_at_once_cannot_pass_the_limit() {
    // Each request takes 300 ms: all 12 are running before any has ended.
    let limits = LimitSettings { requests: 5, window_secs: 60, ..Default::default() };
    let latency = std::time::Duration::from_millis(300);
    let env = start_with(EmulatorOptions { rows: 5, limits, latency, ..Default::default() }).await;
    let t = env.integration();
    let results = futures::future::join_all((0..12).map(|_| env.get(&t, "WhoAmI"))).await;
    let ok = results.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(ok, 5, "12 requests at once against a limit of 5 per window");
    let refused = results.iter().find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).unwrap();
    let retry: i64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[tokio::test]
async fn concurrency_limit_answers_429_at_once() {
    let limits = LimitSettings { concurrent: 2, ..Default::default() };
    let env = start_with(EmulatorOptions {
        rows: 5,
        limits,
        latency: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let t = env.integration();
    let calls = (0..6).map(|_| env.get(&t, "WhoAmI"));
    let results = futures::future::join_all(calls).await;
    let throttled: Vec<&reqwest::Response> =
        results.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    let ok = results.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert!(ok >= 2, "{ok} succeeded");
    assert!(!throttled.is_empty(), "6 concurrent requests against a limit of 2 all passed");
    assert_eq!(throttled[0].headers()["retry-after"], "1");
}

#[tokio::test]
async fn execution_time_limit_counts_server_time() {
    let limits = LimitSettings { exec_millis: 250, ..Default::default() };
    let env = start_with(EmulatorOptions {
        rows: 5,
        limits,
        latency: std::time::Duration::from_millis(150),
        ..Default::default()
    })
    .await;
    let t = env.integration();
    assert_eq!(env.get(&t, "WhoAmI").await.status(), StatusCode::OK);
    assert_eq!(env.get(&t, "WhoAmI").await.status(), StatusCode::OK);
    let r = env.get(&t, "WhoAmI").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = json_of(r).await;
    assert_eq!(body["error"]["code"], "0x80072321");
}

#[tokio::test]
async fn injected_faults_are_seeded_and_shaped() {
    let faults = FaultSettings::parse("429=0.2,503=0.2,reset=0.2,truncate=0.2", 42).unwrap();
    let env = start_with(EmulatorOptions { rows: 50, faults, ..Default::default() }).await;
    let t = env.admin_app();
    let (mut ok, mut throttled, mut unavailable, mut reset, mut truncated) = (0, 0, 0, 0, 0);
    for _ in 0..100 {
        let r = match env.http.get(env.url("accounts?$select=name")).bearer_auth(&t).send().await {
            Ok(r) => r,
            Err(_) => {
                reset += 1;
                continue;
            }
        };
        match r.status() {
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"));
                throttled += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => unavailable += 1,
            StatusCode::OK => match r.bytes().await {
                Err(_) => reset += 1,
                Ok(b) => match serde_json::from_slice::<Value>(&b) {
                    Ok(v) => {
                        assert_eq!(v["value"].as_array().unwrap().len(), 50);
                        ok += 1
                    }
                    Err(_) => truncated += 1,
                },
            },
            s => panic!("unexpected {s}"),
        }
    }
    let injected = env.emu.state().faults.injected();
    assert_eq!(injected[0], throttled);
    assert_eq!(injected[1], unavailable);
    assert_eq!(injected[3], reset);
    assert_eq!(injected[4], truncated);
    assert_eq!(ok + throttled + unavailable + reset + truncated, 100);
    for n in [ok, throttled, unavailable, reset, truncated] {
        assert!(n > 5, "ok {ok} 429 {throttled} 503 {unavailable} reset {reset} truncated {truncated}");
    }
}
