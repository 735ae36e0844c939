//! Delegated flows end to end against the emulator over HTTPS: desktop browser sign-in (auth
//! code + PKCE, loopback listener), stored tokens reused, expiry with refresh-token rotation,
//! one refresh for many 401 reports, device code (auto-approved, and through the verification
//! page with pending and slow_down), REFRESH with given tokens, the web-application
//! procedures, headless options 1 (OAuthVerifier) and 2 (settings file copied with its key),
//! login / logout.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use d365_auth::procedures::call_procedure;
use d365_auth::token_store::{StoreData, TokenStore};
use d365_auth::{AuthError, Interactive, login, logout, provider_from_config};
use d365_emulator::EmulatorOptions;

fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn stored(env: &Env, path: &std::path::Path) -> StoreData {
    let key = d365_auth::store_key::StoreKey::decode(STORE_KEY, d365_auth::store_key::KeySource::Explicit).unwrap();
    let _ = env;
    TokenStore::file(path.to_path_buf(), key).load().await.unwrap()
}

fn only_rt(d: &StoreData) -> String {
    assert_eq!(d.entries.len(), 1, "{d:?}");
    d.entries.values().next().unwrap().refresh_token.clone().expect("a refresh token is stored")
}

fn short_lived() -> EmulatorOptions {
    EmulatorOptions {
        auto_approve: Some(SALES.into()),
        token_lifetime: Duration::from_secs(600),
        token_clock_skew: Duration::ZERO,
        ..Default::default()
    }
}

#[tokio::test]
async fn desktop_sign_in_then_stored_tokens_are_reused() {
    let env = start_auto(SALES).await;
    let store = env.dir.path().join("settings.bin");
    let cfg = env.config(&format!(
        "OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}",
        store.display()
    ));
    let opened = Arc::new(AtomicUsize::new(0));
    let p = provider_from_config(&cfg, &browser_options(&env, opened.clone())).unwrap();
    assert_eq!(p.flow_name(), "authorization_code");
    let t = p.token().await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert_eq!(env.whoami(t.secret()).await.unwrap(), SALES_SYSTEMUSER);
    let data = stored(&env, &store).await;
    let entry = data.entries.values().next().unwrap();
    assert_eq!(entry.username.as_deref(), Some(SALES));
    assert_eq!(entry.flow, "authorization_code");
    // the next run (a new provider) uses the stored token and opens no browser
    let p2 = provider_from_config(&cfg, &browser_options(&env, opened.clone())).unwrap();
    assert!(p2.token().await.unwrap().same_token(&t));
    assert_eq!(opened.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expiry_refreshes_with_rotation_and_no_browser() {
    let env = start_with(short_lived()).await;
    let store = env.dir.path().join("settings.bin");
    let cfg = env.config(&format!(
        "OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}",
        store.display()
    ));
    let opened = Arc::new(AtomicUsize::new(0));
    let p = provider_from_config(&cfg, &browser_options(&env, opened.clone())).unwrap();
    let first = p.token().await.unwrap();
    let rt1 = only_rt(&stored(&env, &store).await);
    env.advance(601);
    assert_eq!(env.whoami(first.secret()).await, Err(401));
    let second = p.token().await.unwrap();
    assert!(!second.same_token(&first));
    assert_eq!(env.whoami(second.secret()).await.unwrap(), SALES_SYSTEMUSER);
    assert_eq!(opened.load(Ordering::SeqCst), 1, "refreshed without a browser");
    let rt2 = only_rt(&stored(&env, &store).await);
    assert_ne!(rt1, rt2, "the rotated refresh token replaced the old one");
    // the old refresh token was revoked when used (strict rotation)
    let e = call_procedure("RefreshOAuthAccessToken", &args(&[("OAuthRefreshToken", &rt1)]), &cfg, &env.options())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("AADSTS70008") && e.contains("sign in again"), "{e}");
}

#[tokio::test]
async fn many_401_reports_refresh_once() {
    let env = start_with(short_lived()).await;
    let store = env.dir.path().join("settings.bin");
    let cfg = env.config(&format!(
        "OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}",
        store.display()
    ));
    let p = provider_from_config(&cfg, &browser_options(&env, Arc::new(AtomicUsize::new(0)))).unwrap();
    let first = p.token().await.unwrap();
    let rt1 = only_rt(&stored(&env, &store).await);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (p, f) = (p.clone(), first.clone());
            tokio::spawn(async move { p.refresh_after_rejection(&f).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert!(got.iter().all(|t| t.same_token(&got[0]) && !t.same_token(&first)));
    // strict rotation would have refused a second refresh with the same token: one refresh happened
    assert_ne!(only_rt(&stored(&env, &store).await), rt1);
    assert_eq!(env.whoami(got[0].secret()).await.unwrap(), SALES_SYSTEMUSER);
}

#[tokio::test]
async fn device_code_auto_approved() {
    let env = start_auto(SALES).await;
    let cfg = env.config(&format!("OAuthClientId={DESKTOP};OAuthSettingsLocation=memory://device-auto"));
    let (seen, sink) = prompts();
    let mut o = env.options().with_interactive(Interactive::DeviceCode);
    o.on_device_code = sink;
    let p = provider_from_config(&cfg, &o).unwrap();
    assert_eq!(p.flow_name(), "device_code");
    let t = p.token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), SALES_SYSTEMUSER);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].message.contains(&seen[0].user_code));
    assert!(seen[0].verification_uri.ends_with("/devicelogin"));
}

/// Sleeps move our clock fully and, once, the emulator's three seconds less, so the emulator
/// sees one poll too soon and the client must slow down. The emulator's clock is the real time
/// plus an offset, counted in whole seconds: the real time between two polls may add a second,
/// so a lag of one second was not always seen (a flaky run: every poll 5 s apart).
#[derive(Debug, Clone)]
struct LaggingClocks {
    inner: BothClocks,
    sleeps: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl d365_auth::clock::Clock for LaggingClocks {
    fn now(&self) -> time::OffsetDateTime {
        self.inner.now()
    }
    fn sleep(&self, d: Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let first = {
            let mut s = self.sleeps.lock().unwrap();
            s.push(d.as_secs());
            s.len() == 2
        };
        self.inner.ours.advance(d);
        self.inner.emulator.advance(d.as_secs() as i64 - 3 * i64::from(first));
        Box::pin(tokio::time::sleep(Duration::from_millis(30)))
    }
}

#[tokio::test]
async fn device_code_through_the_verification_page_with_pending_and_slow_down() {
    let env = start().await;
    let cfg = env.config(&format!("OAuthClientId={DESKTOP};OAuthSettingsLocation=memory://device-page"));
    let authority = env.emu.ready().authority.clone();
    let tenant = env.tenant();
    let http = env.http.clone();
    let sink: d365_auth::options::DeviceCodeSink = Arc::new(move |p: &d365_auth::options::DeviceCodePrompt| {
        let (http, code, authority, tenant) = (http.clone(), p.user_code.clone(), authority.clone(), tenant.clone());
        tokio::spawn(async move {
            // the user is slow: let a few polls see authorization_pending first
            tokio::time::sleep(Duration::from_millis(300)).await;
            let page = http
                .post(format!("{authority}/devicelogin"))
                .form(&[("otc", code)])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let i = page.find("name=\"flow\" value=\"").unwrap() + "name=\"flow\" value=\"".len();
            let flow = page[i..i + page[i..].find('"').unwrap()].to_string();
            let login = format!("{authority}/{tenant}/login");
            http.post(&login)
                .form(&[
                    ("flow", flow.as_str()),
                    ("action", "signin"),
                    ("username", SALES),
                    ("password", "Sales#Pass1"),
                ])
                .send()
                .await
                .unwrap();
            http.post(&login).form(&[("flow", flow.as_str()), ("action", "accept")]).send().await.unwrap();
        });
    });
    let sleeps = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clock = LaggingClocks {
        inner: BothClocks { ours: env.clock.clone(), emulator: env.emu.state().clock.clone() },
        sleeps: sleeps.clone(),
    };
    let mut o = env.options().with_interactive(Interactive::DeviceCode).with_clock(Arc::new(clock));
    o.on_device_code = sink;
    let t = provider_from_config(&cfg, &o).unwrap().token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), SALES_SYSTEMUSER);
    let sleeps = sleeps.lock().unwrap();
    assert!(sleeps.len() >= 3, "polled while pending: {sleeps:?}");
    assert_eq!(sleeps[0], 5, "the interval");
    assert!(sleeps.contains(&10), "slowed down by 5 s: {sleeps:?}");
}

async fn web_tokens(env: &Env, cfg: &d365_auth::ConnectionConfig) -> (String, String, String) {
    let url = call_procedure("GetOAuthAuthorizationUrl", &[], cfg, &env.options()).await.unwrap();
    let code = auto_code(env, url.value("URL").unwrap()).await;
    let out =
        call_procedure("GetOAuthAccessToken", &args(&[("AuthMode", "WEB"), ("Verifier", &code)]), cfg, &env.options())
            .await
            .unwrap();
    (
        out.value("OAuthAccessToken").unwrap().into(),
        out.value("OAuthRefreshToken").unwrap().into(),
        out.value("ExpiresIn").unwrap().into(),
    )
}

#[tokio::test]
async fn refresh_mode_with_given_tokens_rotates_into_the_store() {
    let env = start_with(short_lived()).await;
    let (at, rt, expires_in) = web_tokens(&env, &env.config(&format!("OAuthClientId={DESKTOP}"))).await;
    assert_eq!(expires_in, "600");
    let now_ms = env.clock.now_ms();
    let cfg = env.config(&format!(
        "OAuthClientId={DESKTOP};InitiateOAuth=REFRESH;OAuthAccessToken={at};OAuthRefreshToken={rt};OAuthExpiresIn=600;OAuthTokenTimestamp={now_ms};OAuthSettingsLocation=memory://refresh-mode"
    ));
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    assert_eq!(p.flow_name(), "refresh_token");
    assert_eq!(p.token().await.unwrap().secret(), at, "the given token while it is fresh");
    env.advance(601);
    let t2 = p.token().await.unwrap();
    assert_ne!(t2.secret(), at);
    assert_eq!(env.whoami(t2.secret()).await.unwrap(), SALES_SYSTEMUSER);
    // a new process with the same (now revoked) given refresh token uses the rotated one
    env.advance(601);
    let p2 = provider_from_config(&cfg, &env.options()).unwrap();
    let t3 = p2.token().await.unwrap();
    assert_eq!(env.whoami(t3.secret()).await.unwrap(), SALES_SYSTEMUSER);
}

trait NowMs {
    fn now_ms(&self) -> i64;
}

impl NowMs for d365_auth::clock::ManualClock {
    fn now_ms(&self) -> i64 {
        use d365_auth::clock::Clock;
        (self.now().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

#[tokio::test]
async fn web_application_procedures_and_admin_consent() {
    let env = start_auto(ADMIN).await;
    let cb = "https://localhost:44300/oauth/callback";
    let cfg = env.config(&format!("OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET};CallbackURL={cb}"));
    let url = call_procedure("GetOAuthAuthorizationUrl", &args(&[("State", "app-state-1")]), &cfg, &env.options())
        .await
        .unwrap();
    let loc = env.location(url.value("url").unwrap()).await;
    assert!(loc.as_str().starts_with(cb), "{loc}");
    let q = |n: &str| loc.query_pairs().find(|(k, _)| k == n).map(|(_, v)| v.into_owned()).unwrap();
    assert_eq!(q("state"), "app-state-1");
    let out = call_procedure(
        "GetOAuthAccessToken",
        &args(&[("AuthMode", "WEB"), ("Verifier", &q("code"))]),
        &cfg,
        &env.options(),
    )
    .await
    .unwrap();
    assert_eq!(out.columns, ["OAuthAccessToken", "OAuthRefreshToken", "ExpiresIn"]);
    let admin = env.whoami(out.value("OAuthAccessToken").unwrap()).await.unwrap();
    let rt = out.value("OAuthRefreshToken").unwrap().to_string();
    let again = call_procedure("RefreshOAuthAccessToken", &args(&[("OAuthRefreshToken", &rt)]), &cfg, &env.options())
        .await
        .unwrap();
    assert_ne!(again.value("OAuthRefreshToken").unwrap(), rt);
    assert_eq!(env.whoami(again.value("OAuthAccessToken").unwrap()).await.unwrap(), admin);

    // admin consent for the app that has none yet
    let cfg = env.config(&format!(
        "OAuthClientId={UNCONSENTED};AzureTenant={};CallbackURL=http://localhost:33333",
        env.tenant()
    ));
    let url = call_procedure("GetAdminConsentURL", &args(&[("State", "c1")]), &cfg, &env.options()).await.unwrap();
    assert!(url.value("URL").unwrap().contains("/adminconsent?client_id="), "{url:?}");
    let loc = env.location(url.value("URL").unwrap()).await;
    assert!(loc.query_pairs().any(|(k, v)| k == "admin_consent" && v == "True"), "{loc}");
    // the app now works for delegated sign-in
    let (at, _, _) = web_tokens(&env, &cfg).await;
    assert_eq!(env.whoami(&at).await.unwrap(), admin);
}

#[tokio::test]
async fn headless_verifier_is_redeemed_once_and_persisted() {
    let env = start_with(short_lived()).await;
    let store = env.dir.path().join("headless.bin");
    // on a machine with a browser: the URL, then the code from the callback
    let elsewhere = env.config(&format!("OAuthClientId={DESKTOP};CallbackURL=http://localhost:33333"));
    let url = call_procedure("GetOAuthAuthorizationUrl", &[], &elsewhere, &env.options()).await.unwrap();
    let code = auto_code(&env, url.value("URL").unwrap()).await;
    // on the headless machine
    let cfg = env.config(&format!(
        "OAuthClientId={DESKTOP};CallbackURL=http://localhost:33333;OAuthVerifier={code};InitiateOAuth=GETANDREFRESH;OAuthSettingsLocation={}",
        store.display()
    ));
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    assert_eq!(p.flow_name(), "oauth_verifier");
    let t = p.token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), SALES_SYSTEMUSER);
    // later runs with the same connection string do not redeem the (single-use) code again
    env.advance(601);
    let t2 = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap();
    assert_ne!(t2.secret(), t.secret());
    assert_eq!(env.whoami(t2.secret()).await.unwrap(), SALES_SYSTEMUSER);
}

#[tokio::test]
async fn settings_file_copied_to_another_machine_needs_its_key() {
    let env = start_auto(SALES).await;
    let store = env.dir.path().join("a.bin");
    let cfg = env.config(&format!(
        "OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}",
        store.display()
    ));
    let t = provider_from_config(&cfg, &browser_options(&env, Arc::new(AtomicUsize::new(0))))
        .unwrap()
        .token()
        .await
        .unwrap();
    // "another machine": another config directory, the file copied, the same D365_TOKEN_KEY
    let other = tempfile::tempdir().unwrap();
    let copied = other.path().join("copied.bin");
    std::fs::copy(&store, &copied).unwrap();
    let vars = d365_auth::Environment::empty()
        .with("D365_CONFIG_DIR", other.path().to_str().unwrap())
        .with("D365_TOKEN_KEY", STORE_KEY);
    let s = format!(
        "{}OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}",
        env.base(),
        copied.display()
    );
    let cfg2 = d365_auth::ConnectionConfig::parse(&s, &vars).unwrap();
    let opts = d365_auth::ProviderOptions::new(vars).with_interactive(Interactive::Never);
    let t2 = provider_from_config(&cfg2, &opts).unwrap().token().await.unwrap();
    assert!(t2.same_token(&t));
    // without the key (a fresh key file is created there): a clear error, and the file is kept
    let vars = d365_auth::Environment::empty().with("D365_CONFIG_DIR", other.path().to_str().unwrap());
    let cfg3 = d365_auth::ConnectionConfig::parse(&s, &vars).unwrap();
    let opts = d365_auth::ProviderOptions::new(vars).with_interactive(Interactive::Never);
    let e = provider_from_config(&cfg3, &opts).unwrap().token().await.unwrap_err();
    assert!(matches!(e, AuthError::Store(d365_auth::StoreError::WrongKey { .. })), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&copied.display().to_string()) && msg.contains("D365_TOKEN_KEY") && msg.contains("d365 logout"),
        "{msg}"
    );
    assert!(copied.exists());
}

#[tokio::test]
async fn login_and_logout() {
    let env = start_auto(SALES).await;
    let cfg = env.config(&format!("OAuthClientId={DESKTOP};CallbackURL=http://localhost"));
    let opened = Arc::new(AtomicUsize::new(0));
    let out = login(&cfg, &browser_options(&env, opened.clone())).await.unwrap();
    assert_eq!(out.flow, "authorization_code");
    let location = out.store.clone().unwrap();
    assert!(location.starts_with(env.dir.path().join("config/tokens").to_str().unwrap()), "{location}");
    assert!(std::path::Path::new(&location).exists());
    // login again signs in again even with stored tokens
    login(&cfg, &browser_options(&env, opened.clone())).await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    let t = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), SALES_SYSTEMUSER);
    assert_eq!(logout(&cfg, &env.options()).await.unwrap(), (location.clone(), true));
    assert!(!std::path::Path::new(&location).exists());
    let e = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap_err();
    assert!(matches!(e, AuthError::InteractionRequired { .. }), "{e}");
    assert!(e.to_string().contains("d365 login"), "{e}");
    // app-only login just checks the credentials
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipal;AzureTenant={};OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}",
        env.tenant()
    ));
    let out = login(&cfg, &env.options()).await.unwrap();
    assert_eq!(out.flow, "client_credentials");
    assert!(out.store.is_none());
}
