//! Shared helpers of the Web API tests: start the emulator, trust its CA, mint tokens.
#![allow(dead_code, unused_imports)]

pub use d365_emulator::config::{CERTIFICATE_APP, INTEGRATION_APP};
pub use d365_emulator::store::seed_ids::service_principal_id;
pub use d365_emulator::token::{AccessClaims, sign_jwt, v1_issuer};
pub use d365_emulator::{Emulator, EmulatorOptions};
pub use reqwest::StatusCode;
pub use serde_json::{Value, json};

pub struct Env {
    pub emu: Emulator,
    pub http: reqwest::Client,
}

pub async fn start(rows: usize) -> Env {
    let emu = Emulator::start(EmulatorOptions { rows, ..Default::default() }).await.expect("emulator starts");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&emu.ready().ca_pem).unwrap()).unwrap();
    let http =
        reqwest::Client::builder().tls_certs_only([ca]).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Env { emu, http }
}

impl Env {
    pub fn token_for_oid(&self, oid: &str, app: &str) -> String {
        let s = self.emu.state();
        let now = s.clock.unix();
        let tid = s.config.tenant.id.to_string();
        sign_jwt(
            &s.signing_key,
            &AccessClaims {
                aud: s.urls.org_url.clone(),
                iss: v1_issuer(&tid),
                iat: now,
                nbf: now,
                exp: now + 3600,
                appid: app.into(),
                appidacr: "1".into(),
                oid: oid.into(),
                sub: oid.into(),
                tid,
                scp: None,
                idtyp: Some("app".into()),
                upn: None,
                name: None,
                uti: "test".into(),
                ver: "1.0".into(),
            },
        )
    }
    pub fn integration(&self) -> String {
        self.token_for_oid(&service_principal_id(INTEGRATION_APP).to_string(), &INTEGRATION_APP.to_string())
    }
    pub fn admin_app(&self) -> String {
        self.token_for_oid(&service_principal_id(CERTIFICATE_APP).to_string(), &CERTIFICATE_APP.to_string())
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.emu.ready().webapi, path)
    }
    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }
}

pub async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}
