//! Helpers of the Finance & Operations tests: start an emulator, get Entra and AD FS tokens the
//! way clients do (over HTTP), and read F&O URLs.
#![allow(dead_code)]

pub use crate::common::{Env, StatusCode, Value, json};
pub use d365_emulator::EmulatorOptions;
pub use d365_emulator::token::{AccessClaims, sign_jwt, v1_issuer};

/// Starts an emulator with these options (no Dataverse rows unless asked).
pub async fn start(options: EmulatorOptions) -> Env {
    let emu = d365_emulator::Emulator::start(options).await.expect("emulator starts");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&emu.ready().ca_pem).unwrap()).unwrap();
    let http =
        reqwest::Client::builder().tls_certs_only([ca]).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Env { emu, http }
}

/// An emulator with `fno_rows` F&O customers and no Dataverse rows.
pub async fn start_fno(fno_rows: usize) -> Env {
    start(EmulatorOptions { rows: 0, fno_rows: Some(fno_rows), ..Default::default() }).await
}

/// A client-credentials token from the Entra token endpoint for `scope`, as app `name`.
pub async fn entra_token(env: &Env, name: &str, scope: &str) -> String {
    let r = env.emu.ready();
    let app = r.app(name).expect("seeded app");
    let url = format!("{}/{}/oauth2/v2.0/token", r.authority, r.tenant_id);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_deref().unwrap_or_default()),
        ("scope", scope),
    ];
    let resp = env.http.post(url).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "token for {name} / {scope}");
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// The F&O online token of the `integration` app.
pub async fn fno_token(env: &Env) -> String {
    entra_token(env, "integration", &format!("{}/.default", env.emu.ready().fno.org_url)).await
}

/// A delegated Entra token for `upn` and `aud` (signed by the emulator, as after a sign-in).
pub fn delegated_token(env: &Env, upn: &str, aud: &str) -> String {
    let s = env.emu.state();
    let now = s.clock.unix();
    let tid = s.config.tenant.id.to_string();
    let user = s.user_by_name(upn).expect("seeded user");
    sign_jwt(
        &s.signing_key,
        &AccessClaims {
            aud: aud.into(),
            iss: v1_issuer(&tid),
            iat: now,
            nbf: now,
            exp: now + 3600,
            appid: d365_emulator::config::DESKTOP_APP.to_string(),
            appidacr: "0".into(),
            oid: user.object_id.to_string(),
            sub: "sub".into(),
            tid,
            scp: Some("user_impersonation".into()),
            idtyp: None,
            upn: Some(upn.into()),
            name: Some(user.display_name.clone()),
            uti: "test".into(),
            ver: "1.0".into(),
        },
    )
}

/// `POST {adfs}/oauth2/token` with `form`: (status, body).
pub async fn adfs(env: &Env, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let url = format!("{}/oauth2/token", env.emu.ready().fno.adfs_authority);
    let resp = env.http.post(url).form(form).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An AD FS client-credentials token of the `integration` app for the on-premises environment.
pub async fn onprem_token(env: &Env) -> String {
    let r = env.emu.ready();
    let app = r.app("integration").unwrap();
    let (status, body) = adfs(
        env,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.as_deref().unwrap()),
            ("resource", &r.fno.onprem_url),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// `{fno org url}/{path}`.
pub fn fno(env: &Env, path: &str) -> String {
    format!("{}/{path}", env.emu.ready().fno.org_url)
}

/// GET with a bearer token.
pub async fn get(env: &Env, token: &str, url: &str) -> reqwest::Response {
    env.http.get(url).bearer_auth(token).send().await.unwrap()
}

/// GET and read JSON, asserting the status.
pub async fn get_json(env: &Env, token: &str, url: &str, status: StatusCode) -> Value {
    let r = get(env, token, url).await;
    assert_eq!(r.status(), status, "GET {url}");
    r.json().await.unwrap()
}

/// Asserts an F&O-shaped error body and returns its inner message.
pub fn fno_error(body: &Value) -> String {
    assert_eq!(body["error"]["code"], "", "{body}");
    assert_eq!(body["error"]["message"], "An error has occurred.", "{body}");
    assert!(body["error"]["innererror"]["type"].is_string(), "{body}");
    body["error"]["innererror"]["message"].as_str().unwrap_or_default().to_string()
}
