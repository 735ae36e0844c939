//! No secret — client secret, access token, refresh token, certificate password, authorization
//! code — appears in any log line (captured at TRACE, `log` records included), in error text,
//! or in `Debug` output, across every flow and its failures.

use crate::common;

use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use common::*;
use d365_auth::procedures::call_procedure;
use d365_auth::token_store::TokenStore;
use d365_auth::{ConnectionConfig, Environment, provider_from_config};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PFX_PASSWORD: &str = "pfx-Pa55word-7d1e";
const WRONG_SECRET: &str = "wrong-secret-value-93c1";

/// A PFX of the certificate app with a distinctive password.
fn pfx(env: &Env) -> std::path::PathBuf {
    let files = env.emu.ready().app("certificate").unwrap().certificate.clone().unwrap();
    let key = pem::parse(std::fs::read(&files.key_pem).unwrap()).unwrap();
    let cert = pem::parse(std::fs::read(&files.cert_pem).unwrap()).unwrap();
    let chain = p12_keystore::PrivateKeyChain::new(
        "k1",
        p12_keystore::PrivateKey::from_der(key.contents()).unwrap(),
        [p12_keystore::Certificate::from_der(cert.contents()).unwrap()],
    );
    let mut ks = p12_keystore::KeyStore::new();
    ks.add_entry("app", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    let path = env.dir.path().join("app.pfx");
    std::fs::write(&path, ks.writer(PFX_PASSWORD).write().unwrap()).unwrap();
    path
}

#[tokio::test]
async fn no_secret_in_logs_errors_or_debug() {
    let captured = Captured::default();
    let w = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .try_init()
        .unwrap();

    let env = start_with(d365_emulator::EmulatorOptions {
        auto_approve: Some(SALES.into()),
        token_lifetime: std::time::Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    let t = env.tenant();
    let mut secrets: Vec<String> = vec![SECRET.into(), WRONG_SECRET.into(), PFX_PASSWORD.into()];
    let mut shown: Vec<String> = Vec::new();
    macro_rules! show {
        ($($e:expr),*) => { $( shown.push(format!("{:?}", $e)); )* };
    }
    macro_rules! show_err {
        ($e:expr) => {{
            let e = $e;
            shown.push(format!("{e} {e:?}"));
        }};
    }

    // client secret: success and failure
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipal;AzureTenant={t};OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}"
    ));
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    let at = p.token().await.unwrap();
    secrets.push(at.secret().into());
    show!(cfg, p, at, env.options());
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipal;AzureTenant={t};OAuthClientId={INTEGRATION};OAuthClientSecret={WRONG_SECRET}"
    ));
    show_err!(provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap_err());

    // certificate with a password: success, then a wrong password
    let pfx = pfx(&env);
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipalCert;AzureTenant={t};OAuthClientId={CERTIFICATE};OAuthJWTCert={};OAuthJWTCertPassword={PFX_PASSWORD}",
        pfx.display()
    ));
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    let at = p.token().await.unwrap();
    secrets.push(at.secret().into());
    show!(cfg, p);
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipalCert;AzureTenant={t};OAuthClientId={CERTIFICATE};OAuthJWTCert={};OAuthJWTCertPassword={PFX_PASSWORD}x",
        pfx.display()
    ));
    show_err!(provider_from_config(&cfg, &env.options()).unwrap_err());

    // desktop sign-in, expiry, refresh with rotation
    let store_path = env.dir.path().join("s.bin");
    let cfg = env.config(&format!(
        "OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}",
        store_path.display()
    ));
    let p = provider_from_config(&cfg, &browser_options(&env, Arc::new(AtomicUsize::new(0)))).unwrap();
    let a1 = p.token().await.unwrap();
    let key = d365_auth::store_key::StoreKey::decode(STORE_KEY, d365_auth::store_key::KeySource::Explicit).unwrap();
    let store = TokenStore::file(store_path.clone(), key.clone());
    let rt1 = store.load().await.unwrap().entries.values().next().unwrap().refresh_token.clone().unwrap();
    env.advance(601);
    let a2 = p.token().await.unwrap();
    let data = store.load().await.unwrap();
    let rt2 = data.entries.values().next().unwrap().refresh_token.clone().unwrap();
    secrets.extend([a1.secret().to_string(), a2.secret().to_string(), rt1.clone(), rt2.clone()]);
    show!(p, data, store, key);

    // web procedures: code, tokens, a revoked refresh token
    let url = call_procedure("GetOAuthAuthorizationUrl", &[], &cfg, &env.options()).await.unwrap();
    let code = auto_code(&env, url.value("URL").unwrap()).await;
    secrets.push(code.clone());
    let a = vec![("AuthMode".to_string(), "WEB".to_string()), ("Verifier".to_string(), code.clone())];
    let out = call_procedure("GetOAuthAccessToken", &a, &cfg, &env.options()).await.unwrap();
    secrets.push(out.value("OAuthAccessToken").unwrap().into());
    secrets.push(out.value("OAuthRefreshToken").unwrap().into());
    show!(out);
    show_err!(call_procedure("GetOAuthAccessToken", &a, &cfg, &env.options()).await.unwrap_err());
    let r = vec![("OAuthRefreshToken".to_string(), rt1.clone())];
    show_err!(call_procedure("RefreshOAuthAccessToken", &r, &cfg, &env.options()).await.unwrap_err());

    // REFRESH with given tokens, the verifier, and OFF with a given token
    let refresh = env.config(&format!(
        "OAuthClientId={DESKTOP};InitiateOAuth=REFRESH;OAuthAccessToken={};OAuthRefreshToken={};OAuthSettingsLocation=memory://redaction",
        out.value("OAuthAccessToken").unwrap(),
        out.value("OAuthRefreshToken").unwrap()
    ));
    let p = provider_from_config(&refresh, &env.options()).unwrap();
    let a3 = p.token().await.unwrap();
    secrets.push(a3.secret().into());
    show!(refresh, p, a3);
    let given = env.config(&format!("InitiateOAuth=OFF;OAuthAccessToken={}", a2.secret()));
    let p = provider_from_config(&given, &env.options()).unwrap();
    show!(given, p);
    show_err!(p.refresh_after_rejection(&a2).await.unwrap_err());
    let verifier =
        env.config(&format!("OAuthClientId={DESKTOP};OAuthVerifier={code};OAuthSettingsLocation=memory://redaction-v"));
    show!(verifier);
    show_err!(provider_from_config(&verifier, &env.options()).unwrap().token().await.unwrap_err());

    // connection-string errors around secrets
    let env0 = Environment::empty();
    show_err!(
        ConnectionConfig::parse(
            &format!("OrganizationUrl=https://x.crm.dynamics.com;OAuthClientSecret=\"{SECRET}"),
            &env0
        )
        .unwrap_err()
    );
    show_err!(
        ConnectionConfig::parse(
            &format!("OrganizationUrl=https://x.crm.dynamics.com;OAuthClientSecret={SECRET};Bogus=1"),
            &env0
        )
        .unwrap_err()
    );
    show_err!(
        ConnectionConfig::parse(
            &format!("OrganizationUrl=https://x.crm.dynamics.com;OAuthRefreshToken='{rt2}' junk"),
            &env0
        )
        .unwrap_err()
    );
    let cs = d365_auth::connection_string::ConnectionString::parse(&format!(
        "OAuthClientSecret={SECRET};OAuthJWTCertPassword={PFX_PASSWORD}"
    ))
    .unwrap();
    show!(cs);
    shown.push(cs.to_string());

    drop(env);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    if std::env::var_os("D365_AUTH_SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "logs were captured");
    assert!(logs.contains("identity request"), "our request logs are there");
    for s in &secrets {
        assert!(s.len() >= 8, "a meaningful secret: {s}");
        assert!(!logs.contains(s.as_str()), "a secret appears in the logs: {}", &s[..8]);
        for (i, text) in shown.iter().enumerate() {
            assert!(!text.contains(s.as_str()), "a secret appears in shown text #{i}: {text}");
        }
    }
    assert!(shown.iter().any(|s| s.contains("<redacted>")));
}
