//! The bad cases, each with the message a person can act on: wrong secret, expired secret,
//! unknown app, unknown tenant, certificate not registered, wrong redirect URI (at the sign-in
//! page and at redemption), state mismatch, reused code, missing consent (browser and device
//! code), missing properties, unsupported editions, a damaged settings file.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use common::*;
use d365_auth::procedures::call_procedure;
use d365_auth::{AuthError, ErrorKind, Interactive, provider_from_config};

fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn secret_error(env: &Env, rest: &str) -> AuthError {
    let cfg = env.config(&format!("AuthScheme=AzureServicePrincipal;{rest}"));
    provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap_err()
}

#[track_caller]
fn assert_entra(e: &AuthError, code: u32, words: &[&str]) {
    let entra = e.entra().unwrap_or_else(|| panic!("not an Entra error: {e}"));
    assert_eq!(entra.code, Some(code), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("AADSTS{code}")), "{msg}");
    for w in words {
        assert!(msg.contains(w), "missing {w:?} in: {msg}");
    }
    assert_eq!(e.kind(), ErrorKind::Authentication);
}

#[tokio::test]
async fn client_secret_errors() {
    let env = start().await;
    let t = env.tenant();
    let e = secret_error(&env, &format!("AzureTenant={t};OAuthClientId={INTEGRATION};OAuthClientSecret=wrong")).await;
    assert_entra(
        &e,
        7000215,
        &["client credentials token request", "the client secret is wrong", "not its Secret ID", "trace ID"],
    );
    let e =
        secret_error(&env, &format!("AzureTenant={t};OAuthClientId={INTEGRATION};OAuthClientSecret={EXPIRED_SECRET}"))
            .await;
    assert_entra(&e, 7000222, &["expired", "create a new one"]);
    let e = secret_error(
        &env,
        &format!("AzureTenant={t};OAuthClientId=00000000-0000-0000-0000-00000000beef;OAuthClientSecret=x"),
    )
    .await;
    assert_entra(&e, 700016, &["OAuthClientId", "AzureTenant"]);
    let e = secret_error(
        &env,
        &format!("AzureTenant=nosuch.onmicrosoft.com;OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}"),
    )
    .await;
    assert_entra(&e, 90002, &["Tenant 'nosuch.onmicrosoft.com' not found", "check AzureTenant"]);
}

#[tokio::test]
async fn certificate_not_registered() {
    let env = start().await;
    let unregistered = env.emu.ready().unregistered_certificate.combined_pem.clone();
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipalCert;AzureTenant={};OAuthClientId={CERTIFICATE};OAuthJWTCert={}",
        env.tenant(),
        unregistered.display()
    ));
    let e = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap_err();
    assert_entra(&e, 700027, &["token request (certificate)", "not registered", "Certificates & secrets"]);
    // a wrong PFX password is found before any request
    let files = env.emu.ready().app("certificate").unwrap().certificate.clone().unwrap();
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipalCert;AzureTenant={};OAuthClientId={CERTIFICATE};OAuthJWTCert={};OAuthJWTCertPassword=nope",
        env.tenant(),
        files.pfx.display()
    ));
    let e = provider_from_config(&cfg, &env.options()).unwrap_err();
    assert!(e.to_string().contains("wrong OAuthJWTCertPassword"), "{e}");
    assert!(!e.to_string().contains("nope"));
    assert_eq!(e.kind(), ErrorKind::BadInput);
    // a key without its certificate
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipalCert;AzureTenant={};OAuthClientId={CERTIFICATE};OAuthJWTCert={}",
        env.tenant(),
        files.key_pem.display()
    ));
    let e = provider_from_config(&cfg, &env.options()).unwrap_err().to_string();
    assert!(e.contains("cat key.pem cert.pem"), "{e}");
}

#[tokio::test]
async fn wrong_redirect_uri_at_the_sign_in_page_and_at_redemption() {
    let env = start_auto(SALES).await;
    // desktop: an unregistered CallbackURL; the sign-in page shows the error instead of redirecting
    let cfg = env.config(&format!("OAuthClientId={DESKTOP};CallbackURL=http://localhost/not-registered"));
    let e = provider_from_config(&cfg, &browser_options(&env, Arc::new(AtomicUsize::new(0))))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, AuthError::Browser { .. }), "{msg}");
    assert!(msg.contains("AADSTS50011") && msg.contains("open this URL yourself"), "{msg}");
    // web: the code was issued for one redirect URI and redeemed with another
    let a = env.config(&format!(
        "OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET};CallbackURL=https://localhost:44300/oauth/callback"
    ));
    let url = call_procedure("GetOAuthAuthorizationUrl", &[], &a, &env.options()).await.unwrap();
    let code = auto_code(&env, url.value("URL").unwrap()).await;
    let b = env
        .config(&format!("OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET};CallbackURL=http://localhost:33333"));
    let e =
        call_procedure("GetOAuthAccessToken", &args(&[("AuthMode", "WEB"), ("Verifier", &code)]), &b, &env.options())
            .await
            .unwrap_err();
    assert_entra(&e, 50011, &["authorization code redemption", "redirect URI", "CallbackURL"]);
}

#[tokio::test]
async fn state_mismatch_is_refused() {
    let env = start_auto(SALES).await;
    let cfg = env.config(&format!("OAuthClientId={DESKTOP};CallbackURL=http://localhost"));
    let mut o = browser_options(&env, Arc::new(AtomicUsize::new(0)));
    o.browser = Some(env.browser(Arc::new(AtomicUsize::new(0)), |u| {
        let mut url = url::Url::parse(&u).unwrap();
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.to_string(), if k == "state" { "forged".to_string() } else { v.into_owned() }))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        url.to_string()
    }));
    let e = provider_from_config(&cfg, &o).unwrap().token().await.unwrap_err();
    assert!(matches!(e, AuthError::StateMismatch { .. }), "{e}");
    assert!(e.to_string().contains("different 'state'"), "{e}");
}

#[tokio::test]
async fn reused_code() {
    let env = start_auto(SALES).await;
    let cfg = env.config(&format!("OAuthClientId={DESKTOP};CallbackURL=http://localhost:33333"));
    let url = call_procedure("GetOAuthAuthorizationUrl", &[], &cfg, &env.options()).await.unwrap();
    let code = auto_code(&env, url.value("URL").unwrap()).await;
    let a = args(&[("AuthMode", "WEB"), ("Verifier", &code)]);
    call_procedure("GetOAuthAccessToken", &a, &cfg, &env.options()).await.unwrap();
    let e = call_procedure("GetOAuthAccessToken", &a, &cfg, &env.options()).await.unwrap_err();
    assert_entra(&e, 54005, &["already redeemed", "single-use"]);
}

#[tokio::test]
async fn missing_consent_points_at_the_admin_consent_url() {
    let env = start_auto(SALES).await;
    let cfg = env.config(&format!("OAuthClientId={UNCONSENTED};CallbackURL=http://localhost"));
    let e = provider_from_config(&cfg, &browser_options(&env, Arc::new(AtomicUsize::new(0))))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_entra(
        &e,
        65001,
        &[
            "sign-in in the browser",
            "administrator",
            "/organizations/adminconsent?client_id=3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e04",
        ],
    );
    let (_, sink) = prompts();
    let mut o = env.options().with_interactive(Interactive::DeviceCode);
    o.on_device_code = sink;
    let e = provider_from_config(&cfg, &o).unwrap().token().await.unwrap_err();
    assert_entra(&e, 65001, &["device code sign-in", "adminconsent"]);
}

#[tokio::test]
async fn configuration_errors_name_the_key_and_the_flow() {
    let env = start().await;
    let e = provider_from_config(
        &env.config(&format!("AuthScheme=AzureServicePrincipal;OAuthClientId={INTEGRATION}")),
        &env.options(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    let msg = e.to_string();
    assert!(msg.starts_with("AuthScheme=AzureServicePrincipal (client secret) needs OAuthClientSecret"), "{msg}");
    assert!(msg.contains("AZURE_CLIENT_SECRET"), "{msg}");
    let e = provider_from_config(&env.config("AuthScheme=AzureServicePrincipalCert;OAuthClientId=x"), &env.options())
        .unwrap_err();
    assert!(e.to_string().contains("needs OAuthJWTCert"), "{e}");
    let e = provider_from_config(&env.config("AuthScheme=AzureServicePrincipal"), &env.options()).unwrap_err();
    assert!(e.to_string().contains("needs OAuthClientId"), "{e}");
    let e =
        provider_from_config(&env.config("Edition=FinOpsOnPremise;AuthScheme=AzureAD"), &env.options()).unwrap_err();
    assert!(e.to_string().contains("signs in through AD FS"), "{e}");
    let e = provider_from_config(
        &env.config("CallbackURL=https://app.example.com/cb"),
        &env.options().with_interactive(Interactive::Browser),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
}

#[tokio::test]
async fn damaged_settings_file_is_reported_and_kept() {
    let env = start().await;
    let path = env.dir.path().join("damaged.bin");
    std::fs::write(&path, b"D365TOK\x01\x01garbage-garbage-garbage-garbage-garbage").unwrap();
    let cfg = env.config(&format!("OAuthClientId={DESKTOP};OAuthSettingsLocation={}", path.display()));
    let e = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("d365 logout"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), b"D365TOK\x01\x01garbage-garbage-garbage-garbage-garbage");
}
