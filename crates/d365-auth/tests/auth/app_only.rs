//! App-only flows end to end against the emulator over HTTPS: client secret (two property
//! spellings), tenant discovery, certificate (combined PEM, separate key, PFX with password,
//! RS256 + x5t), workload identity federation and managed identity (IMDS and App Service).

use crate::common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use d365_auth::{Environment, Flow, ProviderOptions, plan, provider_from_config};

fn app_user(client: &str) -> String {
    d365_emulator::store::seed_ids::application_user_id(uuid(client)).to_string()
}

fn uuid(s: &str) -> uuid::Uuid {
    s.parse().unwrap()
}

fn claims(jwt: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn client_secret_one_request_per_lifetime_and_whoami() {
    let env = start().await;
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipal;AzureTenant={};OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}",
        env.tenant()
    ));
    assert_eq!(plan(&cfg).unwrap(), Flow::ClientSecret);
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    assert_eq!(p.flow_name(), "client_credentials");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn({
                let p = p.clone();
                async move { p.token().await.unwrap() }
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap());
    }
    assert!(tokens.iter().all(|t| t.same_token(&tokens[0])), "one token request for concurrent callers");
    assert_eq!(env.whoami(tokens[0].secret()).await.unwrap(), app_user(INTEGRATION));
    assert_eq!(claims(tokens[0].secret())["aud"], env.org());
    // a 401 refreshes once; the new token differs and works
    let fresh = p.refresh_after_rejection(&tokens[0]).await.unwrap();
    assert!(!fresh.same_token(&tokens[0]));
    assert!(p.refresh_after_rejection(&tokens[0]).await.unwrap().same_token(&fresh), "second report: no new request");
    assert_eq!(env.whoami(fresh.secret()).await.unwrap(), app_user(INTEGRATION));
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_expiry() {
    let env = start_with(d365_emulator::EmulatorOptions {
        token_lifetime: std::time::Duration::from_secs(120),
        token_clock_skew: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await;
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipal;AzureTenant={};OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}",
        env.tenant()
    ));
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    let a = p.token().await.unwrap();
    env.advance(50);
    assert!(p.token().await.unwrap().same_token(&a), "still fresh");
    env.advance(15);
    let b = p.token().await.unwrap();
    assert!(!b.same_token(&a), "renewed inside the margin (half of 120 s)");
    env.advance(60);
    assert_eq!(env.whoami(a.secret()).await, Err(401), "the old one expired at the service");
    assert!(env.whoami(b.secret()).await.is_ok());
}

#[tokio::test]
async fn legacy_grant_type_client_and_tenant_discovery() {
    let env = start().await;
    // no AzureTenant: discovered from the Web API's WWW-Authenticate challenge
    let cfg = env.config(&format!(
        "AuthScheme=AzureAD;OAuthGrantType=CLIENT;OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}"
    ));
    assert_eq!(plan(&cfg).unwrap(), Flow::ClientSecret);
    let t = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap();
    assert_eq!(claims(t.secret())["tid"], env.tenant());
    let d = d365_auth::discover_tenant(&d365_auth::http::client(&cfg).unwrap(), &env.org(), "9.2").await.unwrap();
    assert_eq!(d.tenant, env.tenant());
    assert_eq!(d.authority_host.as_str(), format!("{}/", env.emu.ready().authority));
}

#[tokio::test]
async fn environment_variables_complete_the_connection() {
    let env = start().await;
    let vars = env
        .environment()
        .with("AZURE_TENANT_ID", env.tenant())
        .with("AZURE_CLIENT_ID", INTEGRATION)
        .with("AZURE_CLIENT_SECRET", SECRET)
        .with("AZURE_AUTHORITY_HOST", env.emu.ready().authority.clone())
        .with("SSL_CERT_FILE", env.emu.ready().ca_pem.to_str().unwrap());
    let cfg = d365_auth::ConnectionConfig::parse(
        &format!("OrganizationUrl={};AuthScheme=AzureServicePrincipal", env.org()),
        &vars,
    )
    .unwrap();
    let t = provider_from_config(&cfg, &ProviderOptions::new(vars)).unwrap().token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), app_user(INTEGRATION));
}

async fn cert_token(env: &Env, rest: &str) -> d365_auth::AccessToken {
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipalCert;AzureTenant={};OAuthClientId={CERTIFICATE};{rest}",
        env.tenant()
    ));
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    assert_eq!(p.flow_name(), "client_certificate");
    let t = p.token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), app_user(CERTIFICATE));
    t
}

#[tokio::test]
async fn certificate_pem_pfx_and_rs256() {
    let env = start().await;
    let files = env.emu.ready().app("certificate").unwrap().certificate.clone().unwrap();
    cert_token(&env, &format!("OAuthJWTCert={}", files.combined_pem.display())).await;
    cert_token(&env, &format!("OAuthJWTCert={};OAuthJWTKey={}", files.cert_pem.display(), files.key_pem.display()))
        .await;
    cert_token(
        &env,
        &format!(
            "OAuthJWTCert={};OAuthJWTCertType=PFXFILE;OAuthJWTCertPassword={}",
            files.pfx.display(),
            files.pfx_password
        ),
    )
    .await;
    cert_token(&env, &format!("OAuthJWTCert={};OAuthJWTAlgorithm=RS256", files.combined_pem.display())).await;
    let inline = std::fs::read_to_string(&files.combined_pem).unwrap();
    cert_token(&env, &format!("OAuthJWTCertType=PEMKEY_BLOB;OAuthJWTCert=\"{inline}\"")).await;
    let pfx64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&files.pfx).unwrap());
    cert_token(&env, &format!("OAuthJWTCertType=PFXBLOB;OAuthJWTCert={pfx64};OAuthJWTCertPassword=emulator;OAuthJWTCertSubject=certificate")).await;
}

#[tokio::test]
async fn every_assertion_is_fresh() {
    let env = start().await;
    let files = env.emu.ready().app("certificate").unwrap().certificate.clone().unwrap();
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipalCert;AzureTenant={};OAuthClientId={CERTIFICATE};OAuthJWTCert={}",
        env.tenant(),
        files.combined_pem.display()
    ));
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    let a = p.token().await.unwrap();
    // the emulator refuses a replayed jti: a second request must sign a new assertion
    let b = p.refresh_after_rejection(&a).await.unwrap();
    assert!(!a.same_token(&b));
}

fn unsigned_jwt(claims: serde_json::Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{h}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

#[tokio::test]
async fn workload_identity_reads_the_token_file_every_time() {
    let env = start().await;
    let file = env.dir.path().join("federated-token");
    let now = env.emu.state().clock.unix();
    let token = |sub: &str| {
        unsigned_jwt(serde_json::json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": sub,
            "aud": "api://AzureADTokenExchange",
            "iat": now, "nbf": now, "exp": now + 3600,
        }))
    };
    std::fs::write(&file, token("system:serviceaccount:etl:d365-sync")).unwrap();
    let vars = env
        .environment()
        .with("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap())
        .with("AZURE_CLIENT_ID", INTEGRATION)
        .with("AZURE_TENANT_ID", env.tenant());
    let cfg =
        d365_auth::ConnectionConfig::parse(&format!("{}AuthScheme=AzureServicePrincipal", env.base()), &vars).unwrap();
    assert_eq!(plan(&cfg).unwrap(), Flow::WorkloadIdentity);
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    assert_eq!(p.flow_name(), "workload_identity");
    let t = p.token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), app_user(INTEGRATION));
    // the platform rotates the file: the next request reads the new content
    std::fs::write(&file, token("system:serviceaccount:other:intruder")).unwrap();
    let e = p.refresh_after_rejection(&t).await.unwrap_err().to_string();
    assert!(e.contains("AADSTS70021") && e.contains("federated identity credential"), "{e}");
}

#[tokio::test]
async fn managed_identity_imds_and_app_service() {
    let env = start().await;
    let authority = env.emu.ready().authority.clone();
    let cfg = env.config(&format!("AuthScheme=AzureMSI;AzureMSIEndpoint={authority}"));
    assert_eq!(plan(&cfg).unwrap(), Flow::ManagedIdentity);
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    assert_eq!(p.flow_name(), "managed_identity");
    let t = p.token().await.unwrap();
    assert!(t.expires_at().is_some());
    assert_eq!(env.whoami(t.secret()).await.unwrap(), app_user(INTEGRATION));

    let vars = env
        .environment()
        .with("IDENTITY_ENDPOINT", format!("{authority}/metadata/identity/oauth2/token"))
        .with("IDENTITY_HEADER", d365_emulator::identity::IDENTITY_HEADER);
    let cfg = d365_auth::ConnectionConfig::parse(
        &format!("{}AuthScheme=AzureMSI;OAuthClientId={INTEGRATION}", env.base()),
        &vars,
    )
    .unwrap();
    let opts = ProviderOptions::new(vars).with_clock(Arc::new(env.clock.clone()));
    let t = provider_from_config(&cfg, &opts).unwrap().token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), app_user(INTEGRATION));

    // a user-assigned identity that is not there
    let cfg = env.config(&format!("AuthScheme=AzureMSI;AzureMSIEndpoint={authority};OAuthClientId={DESKTOP}"));
    let e = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap_err().to_string();
    assert!(e.contains("Identity not found") && e.contains("assign a managed identity"), "{e}");
}

#[tokio::test]
async fn given_token_off() {
    let env = start().await;
    let cfg = env.config(&format!(
        "AuthScheme=AzureServicePrincipal;AzureTenant={};OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}",
        env.tenant()
    ));
    let at = provider_from_config(&cfg, &env.options()).unwrap().token().await.unwrap();
    let cfg = env.config(&format!("InitiateOAuth=OFF;OAuthAccessToken={}", at.secret()));
    assert_eq!(plan(&cfg).unwrap(), Flow::GivenToken);
    let p = provider_from_config(&cfg, &env.options()).unwrap();
    let t = p.token().await.unwrap();
    assert_eq!(env.whoami(t.secret()).await.unwrap(), app_user(INTEGRATION));
    let e = p.refresh_after_rejection(&t).await.unwrap_err().to_string();
    assert!(e.contains("InitiateOAuth=OFF"), "{e}");
    let e = plan(&env.config("InitiateOAuth=OFF")).unwrap_err().to_string();
    assert_eq!(e, "InitiateOAuth=OFF needs OAuthAccessToken");
    let _ = Environment::empty();
}
