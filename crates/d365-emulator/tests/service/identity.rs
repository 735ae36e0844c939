//! Identity behaviour over real HTTPS with a plain HTTP client: discovery, JWKS, instance
//! discovery, every token grant and its refusals (with Entra's error shape), the sign-in and
//! consent page driven as a browser would (form posts), device code, admin consent and
//! managed identity. Time moves with the emulator clock, never with sleeps.

use aws_lc_rs::signature::{self, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use d365_emulator::config::{CERTIFICATE_APP, DESKTOP_APP, INTEGRATION_APP, UNCONSENTED_APP};
use d365_emulator::pki::CertifiedKey;
use d365_emulator::{Emulator, EmulatorOptions};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const SECRET: &str = "emu~integration~secret~0001";
const EXPIRED_SECRET: &str = "emu~integration~expired~0000";
const ADMIN: (&str, &str) = ("admin@contoso.onmicrosoft.com", "Admin#Pass1");
const SALES: (&str, &str) = ("sales@contoso.onmicrosoft.com", "Sales#Pass1");
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-emulator";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Env {
    emu: Emulator,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    fn location(&self) -> url::Url {
        let l = self.headers.get("location").unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.text));
        url::Url::parse(l.to_str().unwrap()).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or_default()
    }
    /// The hidden `flow` field of a sign-in/consent page.
    fn flow(&self) -> String {
        let i = self.text.find("name=\"flow\" value=\"").unwrap_or_else(|| panic!("no flow field: {}", self.text));
        let rest = &self.text[i + "name=\"flow\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

fn query(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

async fn start_with(options: EmulatorOptions) -> Env {
    let emu = Emulator::start(options).await.expect("emulator starts");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&emu.ready().ca_pem).unwrap()).unwrap();
    let http =
        reqwest::Client::builder().tls_certs_only([ca]).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Env { emu, http }
}

async fn start() -> Env {
    start_with(EmulatorOptions { rows: 0, ..Default::default() }).await
}

async fn start_auto(user: &str) -> Env {
    start_with(EmulatorOptions { rows: 0, auto_approve: Some(user.into()), ..Default::default() }).await
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn jwt_header(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap()
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

/// Asserts Entra's error shape (reference §7.2).
#[track_caller]
fn assert_aad(r: &Reply, status: u16, error: &str, code: u64) -> Value {
    assert_eq!(r.status.as_u16(), status, "status; body: {}", r.text);
    let b = r.json();
    assert_eq!(b["error"], error, "{b}");
    assert_eq!(b["error_codes"], json!([code]), "{b}");
    let d = b["error_description"].as_str().unwrap();
    assert!(d.starts_with(&format!("AADSTS{code}: ")), "{d}");
    let trace = b["trace_id"].as_str().unwrap();
    let corr = b["correlation_id"].as_str().unwrap();
    let ts = b["timestamp"].as_str().unwrap();
    assert!(d.ends_with(&format!("\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}")), "{d}");
    assert_eq!(ts.len(), "2025-01-01 00:00:00Z".len(), "{ts}");
    assert!(b["error_uri"].as_str().unwrap().ends_with(&format!("/error?code={code}")));
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    b
}

impl Env {
    fn tid(&self) -> String {
        self.emu.ready().tenant_id.clone()
    }
    fn authority(&self) -> String {
        self.emu.ready().authority.clone()
    }
    fn org(&self) -> String {
        self.emu.ready().org_url.clone()
    }
    fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.authority())
    }

    async fn reply(&self, rb: reqwest::RequestBuilder) -> Reply {
        let r = rb.send().await.expect("request sent");
        Reply { status: r.status(), headers: r.headers().clone(), text: r.text().await.unwrap() }
    }

    async fn get(&self, url: &str) -> Reply {
        self.reply(self.http.get(url)).await
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Reply {
        self.reply(self.http.post(url).form(form)).await
    }

    async fn token(&self, form: &[(&str, &str)]) -> Reply {
        self.post(&self.token_url(&self.tid()), form).await
    }

    async fn client_credentials_secret(&self, secret: &str) -> Reply {
        let scope = format!("{}/.default", self.org());
        self.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &INTEGRATION_APP.to_string()),
            ("client_secret", secret),
            ("scope", &scope),
        ])
        .await
    }

    fn authorize_url(&self, client: uuid::Uuid, redirect: &str, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut u = url::Url::parse(&format!("{}/{}/oauth2/v2.0/authorize", self.authority(), self.tid())).unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", &client.to_string())
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", scope)
            .extend_pairs(extra.iter().copied());
        u.to_string()
    }

    fn delegated_scope(&self) -> String {
        format!("{}/user_impersonation offline_access openid profile", self.org())
    }

    /// An authorize request with PKCE S256 for the desktop app on `http://localhost:51234`.
    fn desktop_authorize(&self, state: &str) -> String {
        self.authorize_url(
            DESKTOP_APP,
            "http://localhost:51234",
            &self.delegated_scope(),
            &[
                ("state", state),
                ("nonce", "n-0S6_WzA2Mj"),
                ("code_challenge", &challenge(VERIFIER)),
                ("code_challenge_method", "S256"),
            ],
        )
    }

    /// Signs in on the page at `url` and accepts; returns the final reply.
    async fn browser_sign_in(&self, url: &str, user: (&str, &str)) -> Reply {
        let page = self.get(url).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let login = format!("{}/{}/login", self.authority(), self.tid());
        let flow = page.flow();
        let consent = self
            .post(&login, &[("flow", &flow), ("action", "signin"), ("username", user.0), ("password", user.1)])
            .await;
        assert!(consent.text.contains("Permissions requested"), "{}", consent.text);
        self.post(&login, &[("flow", &flow), ("action", "accept")]).await
    }

    async fn redeem(&self, code: &str, redirect: &str, verifier: &str) -> Reply {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &DESKTOP_APP.to_string()),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
            ("client_info", "1"),
        ])
        .await
    }

    /// A code for the desktop app (emulator must run with auto-approve).
    async fn auto_code(&self) -> String {
        let r = self.get(&self.desktop_authorize("s")).await;
        assert_eq!(r.status, 302, "{}", r.text);
        query(&r.location(), "code").expect("code")
    }

    async fn refresh(&self, rt: &str) -> Reply {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &DESKTOP_APP.to_string()),
            ("refresh_token", rt),
            ("scope", &self.delegated_scope()),
        ])
        .await
    }

    fn app_key(&self) -> &CertifiedKey {
        &self.emu.state().app_certs[&CERTIFICATE_APP].key
    }

    /// A client assertion for the certificate app signed by `key`.
    fn assertion(&self, key: &CertifiedKey, alg: &str, claims: Value) -> String {
        let header = match alg {
            "PS256" => json!({"alg": "PS256", "typ": "JWT", "x5t#S256": key.x5t_s256()}),
            _ => json!({"alg": "RS256", "typ": "JWT", "x5t": key.x5t()}),
        };
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let pair = RsaKeyPair::from_pkcs8(key.key.pkcs8_der()).unwrap();
        let mut sig = vec![0; pair.public_modulus_len()];
        let padding: &dyn signature::RsaEncoding =
            if alg == "PS256" { &signature::RSA_PSS_SHA256 } else { &signature::RSA_PKCS1_SHA256 };
        pair.sign(padding, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn assertion_claims(&self, aud: &str) -> Value {
        let now = self.emu.state().clock.unix();
        let id = CERTIFICATE_APP.to_string();
        json!({"aud": aud, "iss": id, "sub": id, "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "iat": now, "exp": now + 600})
    }

    async fn cc_assertion(&self, assertion: &str) -> Reply {
        let scope = format!("{}/.default", self.org());
        self.token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &CERTIFICATE_APP.to_string()),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", &scope),
        ])
        .await
    }

    async fn devicecode(&self, client: uuid::Uuid) -> Value {
        let r = self
            .post(
                &format!("{}/{}/oauth2/v2.0/devicecode", self.authority(), self.tid()),
                &[("client_id", &client.to_string()), ("scope", &self.delegated_scope())],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    async fn poll(&self, client: uuid::Uuid, device_code: &str) -> Reply {
        self.token(&[("grant_type", DEVICE_GRANT), ("client_id", &client.to_string()), ("device_code", device_code)])
            .await
    }
}

// ------------------------------------------------------------------------------------------
// Discovery, JWKS, instance discovery

#[tokio::test]
async fn discovery_document_for_tenant_domain_and_multi_tenant_aliases() {
    let env = start().await;
    let (a, tid) = (env.authority(), env.tid());
    for seg in [tid.clone(), "contoso.onmicrosoft.com".into()] {
        let r = env.get(&format!("{a}/{seg}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), "max-age=86400, private");
        assert_eq!(r.header("access-control-allow-origin"), "*");
        let d = r.json();
        assert_eq!(d["issuer"], format!("{a}/{tid}/v2.0"));
        assert_eq!(d["token_endpoint"], format!("{a}/{tid}/oauth2/v2.0/token"));
        assert_eq!(d["authorization_endpoint"], format!("{a}/{tid}/oauth2/v2.0/authorize"));
        assert_eq!(d["device_authorization_endpoint"], format!("{a}/{tid}/oauth2/v2.0/devicecode"));
        assert_eq!(d["jwks_uri"], format!("{a}/{tid}/discovery/v2.0/keys"));
        assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
        assert!(d["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("private_key_jwt")));
    }
    for seg in ["common", "organizations"] {
        let d = env.get(&format!("{a}/{seg}/v2.0/.well-known/openid-configuration")).await.json();
        assert_eq!(d["issuer"], format!("{a}/{{tenantid}}/v2.0"));
        assert_eq!(d["token_endpoint"], format!("{a}/{seg}/oauth2/v2.0/token"));
        assert_eq!(d["tenant_region_scope"], Value::Null);
    }
}

#[tokio::test]
async fn unknown_tenant_is_invalid_tenant_90002_everywhere() {
    let env = start().await;
    let a = env.authority();
    let url = format!("{a}/nope.onmicrosoft.com/v2.0/.well-known/openid-configuration");
    let b = assert_aad(&env.get(&url).await, 400, "invalid_tenant", 90002);
    assert!(b["error_description"].as_str().unwrap().contains("Tenant 'nope.onmicrosoft.com' not found"), "{b}");
    let url = format!("{a}/00000000-0000-0000-0000-000000000000/discovery/v2.0/keys");
    assert_aad(&env.get(&url).await, 400, "invalid_tenant", 90002);
    let r = env
        .post(
            &env.token_url("5d1e4c0a-0000-4000-8000-000000000000"),
            &[("grant_type", "client_credentials"), ("client_id", &INTEGRATION_APP.to_string())],
        )
        .await;
    assert_aad(&r, 400, "invalid_tenant", 90002);
}

#[tokio::test]
async fn jwks_publishes_the_key_that_verifies_issued_tokens() {
    let env = start().await;
    let a = env.authority();
    let keys = env.get(&format!("{a}/{}/discovery/v2.0/keys", env.tid())).await;
    assert_eq!(keys.status, 200);
    assert_eq!(keys.header("cache-control"), "max-age=86400, private");
    let common = env.get(&format!("{a}/common/discovery/v2.0/keys")).await.json();
    let k = &keys.json()["keys"][0];
    assert_eq!(common["keys"][0]["kid"], k["kid"]);
    assert_eq!((k["kty"].as_str(), k["use"].as_str(), k["e"].as_str()), (Some("RSA"), Some("sig"), Some("AQAB")));
    assert_eq!(k["kid"], k["x5t"]);
    let der = STANDARD.decode(k["x5c"][0].as_str().unwrap()).unwrap();
    assert_eq!(d365_emulator::pki::thumbprint_sha1(&der), k["kid"].as_str().unwrap());

    let at = env.client_credentials_secret(SECRET).await.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_header(&at)["kid"], k["kid"]);
    assert_eq!(jwt_header(&at)["alg"], "RS256");
    let (input, sig) = at.rsplit_once('.').unwrap();
    let public = signature::RsaPublicKeyComponents {
        n: URL_SAFE_NO_PAD.decode(k["n"].as_str().unwrap()).unwrap(),
        e: URL_SAFE_NO_PAD.decode(k["e"].as_str().unwrap()).unwrap(),
    };
    public
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
        .expect("the access token verifies with the published JWK");
}

#[tokio::test]
async fn instance_discovery_answers_for_the_emulator_host_only() {
    let env = start().await;
    let a = env.authority();
    let host = a.trim_start_matches("https://").to_string();
    let mut u = url::Url::parse(&format!("{a}/common/discovery/instance")).unwrap();
    u.query_pairs_mut()
        .append_pair("api-version", "1.1")
        .append_pair("authorization_endpoint", &format!("{a}/{}/oauth2/v2.0/authorize", env.tid()));
    let r = env.get(u.as_str()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert_eq!(b["tenant_discovery_endpoint"], format!("{a}/{}/v2.0/.well-known/openid-configuration", env.tid()));
    assert_eq!(b["api-version"], "1.1");
    assert_eq!(b["metadata"][0]["preferred_network"], host);
    assert_eq!(b["metadata"][0]["preferred_cache"], host);
    assert!(b["metadata"][0]["aliases"].as_array().unwrap().contains(&json!(host)));
    // The advertised discovery endpoint works.
    assert_eq!(env.get(b["tenant_discovery_endpoint"].as_str().unwrap()).await.status, 200);

    let mut bad = url::Url::parse(&format!("{a}/common/discovery/instance")).unwrap();
    bad.query_pairs_mut()
        .append_pair("api-version", "1.1")
        .append_pair("authorization_endpoint", "https://login.bogus.example/common/oauth2/v2.0/authorize");
    assert_aad(&env.get(bad.as_str()).await, 400, "invalid_instance", 50049);
}

/// The instance-discovery URL asking about `authorization_endpoint`.
fn instance_url(authority: &str, authorization_endpoint: &str) -> String {
    let mut u = url::Url::parse(&format!("{authority}/common/discovery/instance")).unwrap();
    u.query_pairs_mut().append_pair("api-version", "1.1").append_pair("authorization_endpoint", authorization_endpoint);
    u.to_string()
}

#[tokio::test]
async fn instance_discovery_recognises_the_authority_host_without_its_port() {
    let env = start().await;
    let a = env.authority();
    let real = a.trim_start_matches("https://").to_string();
    let port = url::Url::parse(&a).unwrap().port().expect("the test emulator listens on a non-default port");
    for host in ["localhost", "LocalHost", "127.0.0.1"] {
        let asked = format!("https://{host}/{}/oauth2/v2.0/authorize", env.tid());
        let r = env.get(&instance_url(&a, &asked)).await;
        assert_eq!(r.status, 200, "{host}: {}", r.text);
        let b = r.json();
        let lower = host.to_ascii_lowercase();
        let reachable = format!("{lower}:{port}");
        assert_eq!(
            b["tenant_discovery_endpoint"],
            format!("https://{reachable}/{}/v2.0/.well-known/openid-configuration", env.tid())
        );
        let m = &b["metadata"][0];
        assert_eq!(m["preferred_network"], reachable, "requests must go where the emulator listens");
        assert_eq!(m["preferred_cache"], lower, "the cache keeps the host as asked");
        let aliases = m["aliases"].as_array().unwrap();
        for alias in [lower.as_str(), reachable.as_str(), real.as_str()] {
            assert!(aliases.contains(&json!(alias)), "{alias} missing from {aliases:?}");
        }
        // The advertised discovery endpoint is reachable and describes the tenant.
        let d = env.get(b["tenant_discovery_endpoint"].as_str().unwrap()).await;
        assert_eq!(d.status, 200, "{}", d.text);
        assert_eq!(d.json()["issuer"], format!("{a}/{}/v2.0", env.tid()));
    }
    // Still refused: another port, plain http (with or without the port), another host.
    for bad in [
        format!("https://localhost:{}/common/oauth2/v2.0/authorize", port.wrapping_add(1)),
        "http://localhost/common/oauth2/v2.0/authorize".to_string(),
        format!("http://localhost:{port}/common/oauth2/v2.0/authorize"),
        "https://login.bogus.example/common/oauth2/v2.0/authorize".to_string(),
        format!("https://login.bogus.example:{port}/common/oauth2/v2.0/authorize"),
        "not a url".to_string(),
    ] {
        assert_aad(&env.get(&instance_url(&a, &bad)).await, 400, "invalid_instance", 50049);
    }
}

// ------------------------------------------------------------------------------------------
// Client credentials

#[tokio::test]
async fn client_credentials_with_secret_issues_a_v1_app_only_token() {
    let env = start().await;
    let r = env.client_credentials_secret(SECRET).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), "no-store, no-cache");
    assert_eq!(r.header("content-type"), "application/json; charset=utf-8");
    let b = r.json();
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 3600);
    assert_eq!(b["ext_expires_in"], 3600);
    assert!(b.get("refresh_token").is_none() && b.get("id_token").is_none() && b.get("scope").is_none(), "{b}");
    let c = claims(b["access_token"].as_str().unwrap());
    let tid = env.tid();
    assert_eq!(c["aud"], env.org());
    assert_eq!(c["iss"], format!("https://sts.windows.net/{tid}/"));
    assert_eq!(c["tid"], tid);
    assert_eq!(c["appid"], INTEGRATION_APP.to_string());
    assert_eq!(c["appidacr"], "1");
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["ver"], "1.0");
    assert!(c.get("scp").is_none() && c.get("upn").is_none());
    assert_eq!(c["oid"], d365_emulator::store::seed_ids::service_principal_id(INTEGRATION_APP).to_string());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
    let s = env.emu.state();
    let checked = d365_emulator::token::validate_access_token(
        &s.signing_key,
        b["access_token"].as_str().unwrap(),
        &s.urls.org_aliases,
        &tid,
        s.clock.unix(),
        0,
    );
    assert!(checked.is_ok(), "{checked:?}");
}

#[tokio::test]
async fn client_credentials_with_http_basic_authentication() {
    let env = start().await;
    let scope = format!("{}/.default", env.org());
    let basic = STANDARD.encode(format!("{INTEGRATION_APP}:{}", "emu%7Eintegration%7Esecret%7E0001"));
    let r = env
        .reply(
            env.http
                .post(env.token_url("contoso.onmicrosoft.com"))
                .header("Authorization", format!("Basic {basic}"))
                .form(&[("grant_type", "client_credentials"), ("scope", &scope)]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(r.json()["access_token"].as_str().unwrap())["appidacr"], "1");
    let wrong = STANDARD.encode(format!("{INTEGRATION_APP}:nope"));
    let r = env
        .reply(
            env.http
                .post(env.token_url(&env.tid()))
                .header("Authorization", format!("Basic {wrong}"))
                .form(&[("grant_type", "client_credentials"), ("scope", &scope)]),
        )
        .await;
    assert_aad(&r, 401, "invalid_client", 7000215);
}

#[tokio::test]
async fn client_authentication_failures() {
    let env = start().await;
    assert_aad(&env.client_credentials_secret("wrong").await, 401, "invalid_client", 7000215);
    assert_aad(&env.client_credentials_secret(EXPIRED_SECRET).await, 401, "invalid_client", 7000222);
    let scope = format!("{}/.default", env.org());
    let none = env
        .token(&[("grant_type", "client_credentials"), ("client_id", &INTEGRATION_APP.to_string()), ("scope", &scope)])
        .await;
    assert_aad(&none, 401, "invalid_client", 7000218);
    let public = env
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &DESKTOP_APP.to_string()),
            ("client_secret", "x"),
            ("scope", &scope),
        ])
        .await;
    assert_aad(&public, 401, "invalid_client", 700025);
    let unknown = env
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret", SECRET),
            ("scope", &scope),
        ])
        .await;
    let b = assert_aad(&unknown, 400, "unauthorized_client", 700016);
    assert!(b["error_description"].as_str().unwrap().contains("'11111111-2222-3333-4444-555555555555'"));
    let missing = env.token(&[("grant_type", "client_credentials"), ("client_secret", SECRET)]).await;
    assert_aad(&missing, 400, "invalid_request", 900144);
}

#[tokio::test]
async fn client_credentials_scope_and_tenant_rules() {
    let env = start().await;
    let org = env.org();
    let id = INTEGRATION_APP.to_string();
    let cc = |scope: String| {
        let id = id.clone();
        let env = &env;
        async move {
            env.token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", SECRET),
                ("scope", &scope),
            ])
            .await
        }
    };
    assert_aad(&cc(format!("{org}/user_impersonation")).await, 400, "invalid_scope", 1002012);
    assert_aad(&cc(format!("openid {org}/.default")).await, 400, "invalid_scope", 70011);
    assert_aad(&cc("https://other.crm.dynamics.com/.default".into()).await, 400, "invalid_resource", 500011);
    assert_aad(&cc(format!("{org}/.default https://graph.microsoft.com/.default")).await, 400, "invalid_scope", 700022);
    let no_scope =
        env.token(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", SECRET)]).await;
    assert_aad(&no_scope, 400, "invalid_request", 900144);
    // Trailing slash on the resource: the audience is still the org URL without it.
    let ok = cc(format!("{org}//.default")).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(claims(ok.json()["access_token"].as_str().unwrap())["aud"], org);
    for seg in ["common", "organizations"] {
        let r = env
            .post(
                &env.token_url(seg),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", SECRET),
                    ("scope", &format!("{org}/.default")),
                ],
            )
            .await;
        assert_aad(&r, 400, "invalid_request", 9001023);
    }
}

#[tokio::test]
async fn token_endpoint_protocol_errors_and_correlation_id() {
    let env = start().await;
    let url = env.token_url(&env.tid());
    assert_aad(&env.get(&url).await, 400, "invalid_request", 900561);
    let r = env.token(&[("grant_type", "password"), ("client_id", &DESKTOP_APP.to_string())]).await;
    assert_aad(&r, 400, "unsupported_grant_type", 70003);
    assert_aad(&env.token(&[("client_id", &DESKTOP_APP.to_string())]).await, 400, "invalid_request", 900144);
    let corr = "0b1e4ad5-7c1f-4bb5-9a0f-3c3b4f0e9d11";
    let r = env.reply(env.http.post(&url).header("client-request-id", corr).form(&[("grant_type", "x")])).await;
    let b = assert_aad(&r, 400, "unsupported_grant_type", 70003);
    assert_eq!(b["correlation_id"], corr);
    assert_eq!(r.header("client-request-id"), corr);
    assert_eq!(r.header("x-ms-request-id"), b["trace_id"].as_str().unwrap());
    let lookup = env.get(b["error_uri"].as_str().unwrap()).await;
    assert_eq!(lookup.status, 200);
    assert!(lookup.text.contains("AADSTS70003"));
}

// ------------------------------------------------------------------------------------------
// Certificate and federated assertions

#[tokio::test]
async fn certificate_assertion_ps256_with_x5t_s256() {
    let env = start().await;
    let a = env.assertion(env.app_key(), "PS256", env.assertion_claims(&env.token_url(&env.tid())));
    let r = env.cc_assertion(&a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(c["appid"], CERTIFICATE_APP.to_string());
    assert_eq!(c["appidacr"], "2");
}

#[tokio::test]
async fn certificate_assertion_rs256_with_x5t_and_domain_audience() {
    let env = start().await;
    let aud = format!("{}/contoso.onmicrosoft.com/oauth2/v2.0/token", env.authority());
    // MSAL Python sends fractional NumericDates (RFC 7519 allows them).
    let mut c = env.assertion_claims(&aud);
    let now = env.emu.state().clock.unix() as f64 + 0.25;
    c["iat"] = json!(now);
    c["exp"] = json!(now + 600.0);
    c.as_object_mut().unwrap().remove("nbf");
    let a = env.assertion(env.app_key(), "RS256", c);
    let r = env.cc_assertion(&a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(r.json()["access_token"].as_str().unwrap())["appidacr"], "2");
}

#[tokio::test]
async fn certificate_assertion_replayed_jti_is_refused() {
    let env = start().await;
    let a = env.assertion(env.app_key(), "PS256", env.assertion_claims(&env.token_url(&env.tid())));
    assert_eq!(env.cc_assertion(&a).await.status, 200);
    assert_aad(&env.cc_assertion(&a).await, 401, "invalid_client", 700027);
}

#[tokio::test]
async fn certificate_assertion_failures() {
    let env = start().await;
    let aud = env.token_url(&env.tid());
    let unregistered = &env.emu.state().unregistered_cert.key;
    let r = env.cc_assertion(&env.assertion(unregistered, "PS256", env.assertion_claims(&aud))).await;
    let b = assert_aad(&r, 401, "invalid_client", 700027);
    assert!(b["error_description"].as_str().unwrap().contains("key was not found"), "{b}");

    let good = env.assertion(env.app_key(), "RS256", env.assertion_claims(&aud));
    let (input, _) = good.rsplit_once('.').unwrap();
    let other_sig = env.assertion(env.app_key(), "RS256", env.assertion_claims(&aud));
    let forged = format!("{input}.{}", other_sig.rsplit_once('.').unwrap().1);
    assert_aad(&env.cc_assertion(&forged).await, 401, "invalid_client", 700027);

    let mut c = env.assertion_claims(&aud);
    c["sub"] = json!("someone-else");
    assert_aad(&env.cc_assertion(&env.assertion(env.app_key(), "PS256", c)).await, 401, "invalid_client", 50048);

    let wrong_aud = env.assertion_claims(&format!("{}/{}/v2.0", env.authority(), env.tid()));
    assert_aad(
        &env.cc_assertion(&env.assertion(env.app_key(), "PS256", wrong_aud)).await,
        401,
        "invalid_client",
        700027,
    );

    let now = env.emu.state().clock.unix();
    let mut old = env.assertion_claims(&aud);
    old["nbf"] = json!(now - 1000);
    old["exp"] = json!(now - 301);
    assert_aad(&env.cc_assertion(&env.assertion(env.app_key(), "PS256", old)).await, 401, "invalid_client", 700024);

    // Valid now, presented after the 600 s lifetime plus the 5 minute skew.
    let later = env.assertion(env.app_key(), "PS256", env.assertion_claims(&aud));
    env.emu.state().clock.advance(600 + 301);
    assert_aad(&env.cc_assertion(&later).await, 401, "invalid_client", 700024);
}

fn unsigned_jwt(claims: Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn federated_credential_assertion_matches_issuer_subject_and_audience() {
    let env = start().await;
    let now = env.emu.state().clock.unix();
    let k8s = |sub: &str, iss: &str| {
        unsigned_jwt(
            json!({"iss": iss, "sub": sub, "aud": ["api://AzureADTokenExchange"], "iat": now, "exp": now + 3600}),
        )
    };
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let scope = format!("{}/.default", env.org());
    let send = |a: String| {
        let scope = scope.clone();
        let env = &env;
        async move {
            env.token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &INTEGRATION_APP.to_string()),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
                ("scope", &scope),
            ])
            .await
        }
    };
    let ok = send(k8s("system:serviceaccount:etl:d365-sync", issuer)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(claims(ok.json()["access_token"].as_str().unwrap())["appidacr"], "2");
    // The same projected token may be presented again (no jti replay check for federated tokens).
    assert_eq!(send(k8s("system:serviceaccount:etl:d365-sync", issuer)).await.status, 200);
    assert_aad(&send(k8s("system:serviceaccount:etl:other", issuer)).await, 401, "invalid_client", 70021);
    assert_aad(
        &send(k8s("system:serviceaccount:etl:d365-sync", "https://evil.example")).await,
        401,
        "invalid_client",
        700211,
    );
}

// ------------------------------------------------------------------------------------------
// Authorization code flow through the sign-in page

#[tokio::test]
async fn authorization_code_flow_through_the_sign_in_page() {
    let env = start().await;
    let url = env.desktop_authorize("xyz<&>");
    let page = env.get(&url).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.text.contains("<form method=\"post\""));
    let flow = page.flow();
    let login = format!("{}/{}/login", env.authority(), env.tid());

    let wrong =
        env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", SALES.0), ("password", "nope")]).await;
    assert_eq!(wrong.status, 200);
    assert!(wrong.text.contains("AADSTS50126"), "{}", wrong.text);
    assert!(wrong.text.contains("name=\"password\""));
    assert_eq!(wrong.flow(), flow);

    let consent =
        env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", SALES.0), ("password", SALES.1)]).await;
    assert!(consent.text.contains("Permissions requested"), "{}", consent.text);
    assert!(consent.text.contains(&format!("{}/user_impersonation", env.org())));
    assert!(consent.text.contains("value=\"accept\"") && consent.text.contains("value=\"cancel\""));

    let done = env.post(&login, &[("flow", &flow), ("action", "accept")]).await;
    assert_eq!(done.status, 302, "{}", done.text);
    let loc = done.location();
    assert_eq!((loc.host_str(), loc.port()), (Some("localhost"), Some(51234)));
    assert_eq!(query(&loc, "state").as_deref(), Some("xyz<&>"));
    assert!(query(&loc, "session_state").is_some());
    let code = query(&loc, "code").unwrap();

    let r = env.redeem(&code, "http://localhost:51234", VERIFIER).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert_eq!(b["scope"], format!("{}/user_impersonation openid profile", env.org()));
    assert!(b["refresh_token"].as_str().is_some());
    let at = claims(b["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], env.org());
    assert_eq!(at["scp"], "user_impersonation");
    assert_eq!(at["upn"], SALES.0);
    assert_eq!(at["name"], "Sam Sales");
    assert_eq!(at["oid"], "a1b2c3d4-0000-4000-8000-00000000a002");
    assert_eq!(at["appid"], DESKTOP_APP.to_string());
    assert_eq!(at["appidacr"], "0");
    assert!(at.get("idtyp").is_none());
    let id = claims(b["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["aud"], DESKTOP_APP.to_string());
    assert_eq!(id["iss"], format!("{}/{}/v2.0", env.authority(), env.tid()));
    assert_eq!(id["preferred_username"], SALES.0);
    assert_eq!(id["tid"], env.tid());
    assert_eq!(id["ver"], "2.0");
    assert!(id["sub"].as_str().unwrap().len() >= 43);
    let info: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(b["client_info"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(info, json!({"uid": "a1b2c3d4-0000-4000-8000-00000000a002", "utid": env.tid()}));
}

#[tokio::test]
async fn authorization_code_redemption_errors() {
    let env = start_auto(SALES.0).await;
    let redirect = "http://localhost:51234";
    let code = env.auto_code().await;
    assert_eq!(env.redeem(&code, redirect, VERIFIER).await.status, 200);
    assert_aad(&env.redeem(&code, redirect, VERIFIER).await, 400, "invalid_grant", 54005);

    let code = env.auto_code().await;
    assert_aad(&env.redeem(&code, redirect, &format!("{VERIFIER}x")).await, 400, "invalid_grant", 501481);
    assert_aad(&env.redeem(&code, "http://localhost:51235", VERIFIER).await, 401, "invalid_client", 50011);
    let other = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &UNCONSENTED_APP.to_string()),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_aad(&other, 400, "invalid_grant", 70000);
    env.emu.state().clock.advance(601);
    assert_aad(&env.redeem(&code, redirect, VERIFIER).await, 400, "invalid_grant", 70008);
    assert_aad(&env.redeem("not-a-code", redirect, VERIFIER).await, 400, "invalid_grant", 70008);
}

#[tokio::test]
async fn auto_approve_redirects_at_once_and_plain_pkce_works() {
    let env = start_auto(ADMIN.0).await;
    let plain = "plain-verifier-plain-verifier-plain-verifier-0123";
    let url = env.authorize_url(
        DESKTOP_APP,
        "http://127.0.0.1:40001",
        &format!("{}/.default offline_access", env.org()),
        &[("code_challenge", plain), ("state", "s1")],
    );
    let r = env.get(&url).await;
    assert_eq!(r.status, 302, "{}", r.text);
    let loc = r.location();
    assert_eq!(loc.origin().ascii_serialization(), "http://127.0.0.1:40001");
    let code = query(&loc, "code").unwrap();
    let t = env.redeem(&code, "http://127.0.0.1:40001", plain).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let b = t.json();
    assert!(b.get("id_token").is_none(), "no openid, no ID token");
    assert!(b["refresh_token"].is_string());
    assert_eq!(claims(b["access_token"].as_str().unwrap())["upn"], ADMIN.0);
}

#[tokio::test]
async fn authorize_shows_errors_instead_of_redirecting_for_bad_client_or_redirect_uri() {
    let env = start().await;
    let scope = env.delegated_scope();
    let unknown = env.get(&env.authorize_url(uuid::Uuid::nil(), "http://localhost:33333", &scope, &[])).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.headers.get("location").is_none());
    assert!(unknown.text.contains("AADSTS700016"), "{}", unknown.text);
    let bad = env.get(&env.authorize_url(DESKTOP_APP, "https://evil.example/cb", &scope, &[])).await;
    assert_eq!(bad.status, 400);
    assert!(bad.headers.get("location").is_none());
    assert!(bad.text.contains("AADSTS50011"), "{}", bad.text);
    let port = env.get(&env.authorize_url(INTEGRATION_APP, "http://localhost:33334", &scope, &[])).await;
    assert_eq!(port.status, 400, "a registered port does not accept other ports");
    let tenant = env
        .get(&format!(
            "{}/nope.example/oauth2/v2.0/authorize?client_id={DESKTOP_APP}&response_type=code",
            env.authority()
        ))
        .await;
    assert_eq!(tenant.status, 400);
    assert!(tenant.text.contains("AADSTS90002"));
    // After the redirect URI is known, problems go back to the app.
    let mut u =
        url::Url::parse(&env.authorize_url(DESKTOP_APP, "http://localhost:33333", "", &[("state", "st")])).unwrap();
    let pairs: Vec<(String, String)> =
        u.query_pairs().filter(|(k, _)| k != "scope").map(|(k, v)| (k.into(), v.into())).collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    let r = env.get(u.as_str()).await;
    assert_eq!(r.status, 302);
    let loc = r.location();
    assert_eq!(query(&loc, "error").as_deref(), Some("invalid_request"));
    assert!(query(&loc, "error_description").unwrap().starts_with("AADSTS900144: "));
    assert_eq!(query(&loc, "state").as_deref(), Some("st"));
    let scope_err =
        env.get(&env.authorize_url(DESKTOP_APP, "http://localhost:33333", &format!("{}/bogus", env.org()), &[])).await;
    assert_eq!(query(&scope_err.location(), "error").as_deref(), Some("invalid_scope"));
}

#[tokio::test]
async fn authorize_cancel_prompt_none_and_escaping() {
    let env = start().await;
    let url = env.desktop_authorize("st-1");
    let page = env.get(&url).await;
    let flow = page.flow();
    let login = format!("{}/{}/login", env.authority(), env.tid());
    env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", ADMIN.0), ("password", ADMIN.1)]).await;
    let r = env.post(&login, &[("flow", &flow), ("action", "cancel")]).await;
    assert_eq!(r.status, 302);
    let loc = r.location();
    assert_eq!(query(&loc, "error").as_deref(), Some("access_denied"));
    assert!(query(&loc, "error_description").unwrap().starts_with("AADSTS65004: "));
    assert_eq!(query(&loc, "state").as_deref(), Some("st-1"));
    // The flow is single-use.
    let again = env.post(&login, &[("flow", &flow), ("action", "accept")]).await;
    assert_eq!(again.status, 400);
    assert!(again.text.contains("AADSTS50089"));

    let silent = env
        .get(&env.authorize_url(
            DESKTOP_APP,
            "http://localhost:33333",
            &env.delegated_scope(),
            &[("prompt", "none"), ("state", "q")],
        ))
        .await;
    assert_eq!(silent.status, 302);
    let loc = silent.location();
    assert_eq!(query(&loc, "error").as_deref(), Some("login_required"));
    assert_eq!(query(&loc, "state").as_deref(), Some("q"));

    let evil = "\"><script>alert(1)</script>";
    let p = env
        .get(&env.authorize_url(DESKTOP_APP, "http://localhost:33333", &env.delegated_scope(), &[("login_hint", evil)]))
        .await;
    assert_eq!(p.status, 200);
    assert!(!p.text.contains("<script>alert(1)"));
    assert!(p.text.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(p.header("content-security-policy").contains("default-src 'none'"));
}

#[tokio::test]
async fn authorize_form_post_response_mode() {
    let env = start_auto(SALES.0).await;
    let url = env.authorize_url(
        DESKTOP_APP,
        "http://localhost:33333",
        &env.delegated_scope(),
        &[("response_mode", "form_post"), ("state", "fp")],
    );
    let r = env.get(&url).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<form method=\"post\" action=\"http://localhost:33333\">"), "{}", r.text);
    assert!(r.text.contains("name=\"code\" value=\""));
    assert!(r.text.contains("name=\"state\" value=\"fp\""));
    assert!(r.text.contains("type=\"submit\""), "works without JavaScript");
}

#[tokio::test]
async fn confidential_web_app_code_flow_requires_its_secret() {
    let env = start_auto(SALES.0).await;
    let redirect = "https://localhost:44300/oauth/callback";
    let r = env.get(&env.authorize_url(INTEGRATION_APP, redirect, &env.delegated_scope(), &[])).await;
    let code = query(&r.location(), "code").unwrap();
    let id = INTEGRATION_APP.to_string();
    let base = [
        ("grant_type", "authorization_code"),
        ("client_id", id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
    ];
    assert_aad(&env.token(&base).await, 401, "invalid_client", 7000218);
    let mut with_secret = base.to_vec();
    with_secret.push(("client_secret", SECRET));
    let ok = env.token(&with_secret).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(claims(ok.json()["access_token"].as_str().unwrap())["appidacr"], "1");
}

// ------------------------------------------------------------------------------------------
// Refresh tokens

#[tokio::test]
async fn refresh_token_rotation_revokes_the_used_token() {
    let env = start_auto(SALES.0).await;
    let code = env.auto_code().await;
    let rt1 = env.redeem(&code, "http://localhost:51234", VERIFIER).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env.refresh(&rt1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    let rt2 = b["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "a new refresh token every time");
    assert!(b["id_token"].is_string());
    assert_eq!(claims(b["access_token"].as_str().unwrap())["upn"], SALES.0);
    assert_aad(&env.refresh(&rt1).await, 400, "invalid_grant", 70008);
    let rt3 = env.refresh(&rt2).await.json()["refresh_token"].as_str().unwrap().to_string();
    assert_aad(&env.refresh("garbage").await, 400, "invalid_grant", 70008);
    env.emu.state().clock.advance(91 * 24 * 3600);
    let b = assert_aad(&env.refresh(&rt3).await, 400, "invalid_grant", 700082);
    assert_eq!(b["suberror"], "bad_token");
}

#[tokio::test]
async fn refresh_tokens_stay_valid_without_strict_rotation() {
    let env = start_with(EmulatorOptions {
        rows: 0,
        auto_approve: Some(SALES.0.into()),
        revoke_used_refresh_tokens: false,
        token_lifetime: std::time::Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let code = env.auto_code().await;
    let first = env.redeem(&code, "http://localhost:51234", VERIFIER).await.json();
    assert_eq!(first["expires_in"], 5);
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let rt2 = env.refresh(&rt1).await.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_eq!(env.refresh(&rt1).await.status, 200, "the old token stays valid (Microsoft behaviour)");
    // Use keeps it alive: 60 days, use, 60 days, use.
    env.emu.state().clock.advance(60 * 24 * 3600);
    assert_eq!(env.refresh(&rt1).await.status, 200);
    env.emu.state().clock.advance(60 * 24 * 3600);
    assert_eq!(env.refresh(&rt1).await.status, 200);
}

// ------------------------------------------------------------------------------------------
// Consent

#[tokio::test]
async fn unconsented_app_needs_admin_consent_before_delegated_access() {
    let env = start().await;
    let redirect = "http://localhost:33333";
    let url = env.authorize_url(UNCONSENTED_APP, redirect, &env.delegated_scope(), &[("state", "c1")]);
    let r = env.browser_sign_in(&url, SALES).await;
    assert_eq!(r.status, 302);
    let loc = r.location();
    assert_eq!(query(&loc, "error").as_deref(), Some("consent_required"));
    assert!(query(&loc, "error_description").unwrap().starts_with("AADSTS65001: "));
    assert_eq!(query(&loc, "state").as_deref(), Some("c1"));

    // Device flow for the same app: consent_required at the token endpoint.
    let dc = env.devicecode(UNCONSENTED_APP).await;
    let page =
        env.post(&format!("{}/devicelogin", env.authority()), &[("otc", dc["user_code"].as_str().unwrap())]).await;
    let login = format!("{}/{}/login", env.authority(), env.tid());
    let flow = page.flow();
    env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", SALES.0), ("password", SALES.1)]).await;
    env.post(&login, &[("flow", &flow), ("action", "accept")]).await;
    let b =
        assert_aad(&env.poll(UNCONSENTED_APP, dc["device_code"].as_str().unwrap()).await, 400, "invalid_grant", 65001);
    assert_eq!(b["suberror"], "consent_required");

    // Admin consent (v2): a non-admin cannot grant it; the admin can.
    let scope = format!("{}/.default", env.org());
    let mut u = url::Url::parse(&format!("{}/{}/v2.0/adminconsent", env.authority(), env.tid())).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", &UNCONSENTED_APP.to_string())
        .append_pair("scope", &scope)
        .append_pair("redirect_uri", redirect)
        .append_pair("state", "ac");
    let page = env.get(u.as_str()).await;
    let flow = page.flow();
    let refused =
        env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", SALES.0), ("password", SALES.1)]).await;
    assert!(refused.text.contains("AADSTS90094"), "{}", refused.text);
    let consent =
        env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", ADMIN.0), ("password", ADMIN.1)]).await;
    assert!(consent.text.contains("Permissions requested"));
    let granted = env.post(&login, &[("flow", &flow), ("action", "accept")]).await;
    assert_eq!(granted.status, 302);
    let loc = granted.location();
    assert_eq!(query(&loc, "admin_consent").as_deref(), Some("True"));
    assert_eq!(query(&loc, "tenant"), Some(env.tid()));
    assert_eq!(query(&loc, "scope"), Some(scope));
    assert_eq!(query(&loc, "state").as_deref(), Some("ac"));

    // Now the user's sign-in succeeds.
    let r = env.browser_sign_in(&url, SALES).await;
    assert!(query(&r.location(), "code").is_some(), "{}", r.location());
}

#[tokio::test]
async fn admin_consent_v1_common_refusal_cancel_and_admin_checkbox() {
    let env = start_auto(ADMIN.0).await;
    let a = env.authority();
    let r = env
        .get(&format!(
            "{a}/{}/adminconsent?client_id={UNCONSENTED_APP}&state=v1&redirect_uri=http%3A%2F%2Flocalhost%3A33333",
            env.tid()
        ))
        .await;
    assert_eq!(r.status, 302, "{}", r.text);
    let loc = r.location();
    assert_eq!(query(&loc, "admin_consent").as_deref(), Some("True"));
    assert_eq!(query(&loc, "state").as_deref(), Some("v1"));
    assert!(query(&loc, "scope").is_none());
    assert!(env.emu.state().identity.has_runtime_consent(UNCONSENTED_APP));
    let common = env.get(&format!("{a}/common/v2.0/adminconsent?client_id={UNCONSENTED_APP}&scope=x")).await;
    assert_eq!(common.status, 400);
    assert!(common.text.contains("AADSTS90130"));

    // Without auto-approve: cancel, and the admin's "on behalf of the organization" box.
    let env = start().await;
    let login = format!("{}/{}/login", env.authority(), env.tid());
    let u = format!(
        "{}/{}/v2.0/adminconsent?client_id={UNCONSENTED_APP}&scope={}%2F.default&state=z",
        env.authority(),
        env.tid(),
        env.org()
    );
    let flow = env.get(&u).await.flow();
    env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", ADMIN.0), ("password", ADMIN.1)]).await;
    let r = env.post(&login, &[("flow", &flow), ("action", "cancel")]).await;
    let loc = r.location();
    assert_eq!(query(&loc, "error").as_deref(), Some("consent_required"));
    assert!(query(&loc, "error_description").unwrap().starts_with("AADSTS65004: "));

    let url = env.authorize_url(UNCONSENTED_APP, "http://localhost:33333", &env.delegated_scope(), &[]);
    let flow = env.get(&url).await.flow();
    let page =
        env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", ADMIN.0), ("password", ADMIN.1)]).await;
    assert!(page.text.contains("name=\"consent_org\""), "{}", page.text);
    let r = env.post(&login, &[("flow", &flow), ("action", "accept"), ("consent_org", "true")]).await;
    assert!(query(&r.location(), "code").is_some());
    assert!(env.emu.state().identity.has_runtime_consent(UNCONSENTED_APP));
}

// ------------------------------------------------------------------------------------------
// Device code

#[tokio::test]
async fn device_code_flow_through_the_verification_page() {
    let env = start().await;
    let dc = env.devicecode(DESKTOP_APP).await;
    let uri = format!("{}/devicelogin", env.authority());
    assert_eq!(dc["verification_uri"], uri);
    assert_eq!(dc["expires_in"], 900);
    assert_eq!(dc["interval"], 5);
    let user_code = dc["user_code"].as_str().unwrap().to_string();
    assert!(dc["message"].as_str().unwrap().contains(&user_code));
    assert!(dc.get("verification_uri_complete").is_none());
    let device_code = dc["device_code"].as_str().unwrap().to_string();

    assert_aad(&env.poll(DESKTOP_APP, &device_code).await, 400, "authorization_pending", 70016);
    assert_aad(&env.poll(DESKTOP_APP, &device_code).await, 400, "slow_down", 70016);
    env.emu.state().clock.advance(5);
    assert_aad(&env.poll(DESKTOP_APP, &device_code).await, 400, "authorization_pending", 70016);

    let page = env.get(&uri).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("name=\"otc\""));
    let wrong = env.post(&uri, &[("otc", "ZZZZZZZZZ")]).await;
    assert!(wrong.text.contains("AADSTS70018"));
    let typed = format!("{}-{}", user_code[..4].to_lowercase(), &user_code[4..]);
    let signin = env.post(&uri, &[("otc", &typed)]).await;
    let flow = signin.flow();
    let login = format!("{}/{}/login", env.authority(), env.tid());
    env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", SALES.0), ("password", SALES.1)]).await;
    let done = env.post(&login, &[("flow", &flow), ("action", "accept")]).await;
    assert!(done.text.contains("You have signed in"), "{}", done.text);

    env.emu.state().clock.advance(5);
    let t = env.poll(DESKTOP_APP, &device_code).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let b = t.json();
    assert!(b["refresh_token"].is_string() && b["id_token"].is_string());
    assert_eq!(claims(b["access_token"].as_str().unwrap())["upn"], SALES.0);
    env.emu.state().clock.advance(5);
    assert_aad(&env.poll(DESKTOP_APP, &device_code).await, 400, "bad_verification_code", 70018);
}

#[tokio::test]
async fn device_code_declined_expired_and_confidential_client() {
    let env = start().await;
    let dc = env.devicecode(DESKTOP_APP).await;
    let uri = format!("{}/devicelogin", env.authority());
    let flow = env.post(&uri, &[("otc", dc["user_code"].as_str().unwrap())]).await.flow();
    let login = format!("{}/{}/login", env.authority(), env.tid());
    env.post(&login, &[("flow", &flow), ("action", "signin"), ("username", ADMIN.0), ("password", ADMIN.1)]).await;
    let r = env.post(&login, &[("flow", &flow), ("action", "cancel")]).await;
    assert!(r.text.contains("cancelled"));
    assert_aad(&env.poll(DESKTOP_APP, dc["device_code"].as_str().unwrap()).await, 400, "authorization_declined", 65004);

    let dc = env.devicecode(DESKTOP_APP).await;
    env.emu.state().clock.advance(901);
    assert_aad(&env.poll(DESKTOP_APP, dc["device_code"].as_str().unwrap()).await, 400, "expired_token", 70019);

    let dc = env.devicecode(INTEGRATION_APP).await;
    assert_aad(&env.poll(INTEGRATION_APP, dc["device_code"].as_str().unwrap()).await, 401, "invalid_client", 7000218);
    let missing = env
        .post(
            &format!("{}/{}/oauth2/v2.0/devicecode", env.authority(), env.tid()),
            &[("client_id", &DESKTOP_APP.to_string())],
        )
        .await;
    assert_aad(&missing, 400, "invalid_request", 900144);
}

#[tokio::test]
async fn device_code_auto_approve_completes_on_first_poll() {
    let env = start_auto(SALES.0).await;
    let dc = env.devicecode(DESKTOP_APP).await;
    let t = env.poll(DESKTOP_APP, dc["device_code"].as_str().unwrap()).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(claims(t.json()["access_token"].as_str().unwrap())["upn"], SALES.0);
    let dc = env.devicecode(UNCONSENTED_APP).await;
    let b =
        assert_aad(&env.poll(UNCONSENTED_APP, dc["device_code"].as_str().unwrap()).await, 400, "invalid_grant", 65001);
    assert_eq!(b["suberror"], "consent_required");
}

// ------------------------------------------------------------------------------------------
// Managed identity

#[tokio::test]
async fn managed_identity_imds_and_app_service_forms() {
    let env = start().await;
    let base = format!("{}/metadata/identity/oauth2/token", env.authority());
    let org = env.org();
    let imds = format!(
        "{base}?api-version=2018-02-01&resource={}",
        url::form_urlencoded::byte_serialize(org.as_bytes()).collect::<String>()
    );
    let refused = env.get(&imds).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"], "invalid_request");
    let r = env.reply(env.http.get(&imds).header("Metadata", "true")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    for f in ["access_token", "expires_in", "expires_on", "not_before", "resource", "token_type", "client_id"] {
        assert!(b[f].is_string(), "{f} is a string: {b}");
    }
    assert_eq!(b["resource"], org);
    let c = claims(b["access_token"].as_str().unwrap());
    assert_eq!(c["appid"], INTEGRATION_APP.to_string());
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["aud"], org);
    let other = env
        .reply(
            env.http
                .get(format!("{base}?api-version=2018-02-01&resource=https://vault.azure.net"))
                .header("Metadata", "true"),
        )
        .await;
    assert_eq!(other.json()["error"], "invalid_resource");
    let wrong_id = env.reply(env.http.get(format!("{imds}&client_id={DESKTOP_APP}")).header("Metadata", "true")).await;
    assert_eq!(wrong_id.status, 400);

    let app_service = format!("{base}?api-version=2019-08-01&resource={org}");
    assert_eq!(env.get(&app_service).await.status, 401);
    let r = env
        .reply(env.http.get(&app_service).header("X-IDENTITY-HEADER", d365_emulator::identity::IDENTITY_HEADER))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert!(b["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(b["client_id"], INTEGRATION_APP.to_string());
    assert_eq!(b["token_type"], "Bearer");
}

#[tokio::test]
async fn organizations_authority_and_omitted_redirect_uri() {
    let env = start_auto(SALES.0).await;
    let mut u = url::Url::parse(&format!("{}/organizations/oauth2/v2.0/authorize", env.authority())).unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", &DESKTOP_APP.to_string())
        .append_pair("response_type", "code")
        .append_pair("scope", &env.delegated_scope());
    let r = env.get(u.as_str()).await;
    assert_eq!(r.status, 302, "{}", r.text);
    let loc = r.location();
    assert_eq!(loc.origin().ascii_serialization(), "http://localhost", "first registered redirect URI");
    let code = query(&loc, "code").unwrap();
    let form = [("grant_type", "authorization_code"), ("client_id", &DESKTOP_APP.to_string()), ("code", &code)];
    let t = env.post(&env.token_url("organizations"), &form).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(claims(t.json()["id_token"].as_str().unwrap())["tid"], env.tid());
    // A code whose authorize request named the redirect URI must be redeemed with it.
    let code = env.auto_code().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", &DESKTOP_APP.to_string()),
        ("code", &code),
        ("code_verifier", VERIFIER),
    ];
    assert_aad(&env.token(&form).await, 401, "invalid_client", 50011);
}

#[tokio::test]
async fn tokens_from_every_grant_are_accepted_by_the_web_api() {
    use d365_emulator::store::seed_ids::application_user_id;
    let env = start_auto(SALES.0).await;
    let whoami = |token: String| {
        let env = &env;
        async move {
            let r = env.reply(env.http.get(format!("{}/WhoAmI", env.emu.ready().webapi)).bearer_auth(token)).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json()["UserId"].as_str().unwrap().to_string()
        }
    };
    let at = |r: Reply| r.json()["access_token"].as_str().unwrap().to_string();
    let secret = env.client_credentials_secret(SECRET).await;
    assert_eq!(whoami(at(secret)).await, application_user_id(INTEGRATION_APP).to_string());
    let cert = env
        .cc_assertion(&env.assertion(env.app_key(), "PS256", env.assertion_claims(&env.token_url(&env.tid()))))
        .await;
    assert_eq!(whoami(at(cert)).await, application_user_id(CERTIFICATE_APP).to_string());
    let code = env.auto_code().await;
    let user = env.redeem(&code, "http://localhost:51234", VERIFIER).await;
    assert_eq!(whoami(at(user)).await, "4026be43-6b69-4111-8f65-78e7d1620f02");
    let mi = env
        .reply(
            env.http
                .get(format!(
                    "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={}",
                    env.authority(),
                    env.org()
                ))
                .header("Metadata", "true"),
        )
        .await;
    assert_eq!(whoami(at(mi)).await, application_user_id(INTEGRATION_APP).to_string());
}
