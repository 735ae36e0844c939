//! Starting the emulator, getting real tokens from its token endpoint, and building clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use d365_client::{AccessToken, AuthError, ClientOptions, DataverseClient, TokenProvider};
use d365_emulator::{Emulator, EmulatorOptions};

pub const INTEGRATION: &str = "integration";

pub struct Env {
    pub emu: Emulator,
    pub ca_pem: Vec<u8>,
    pub http: reqwest::Client,
}

pub async fn start(rows: usize) -> Env {
    let emu = Emulator::start(EmulatorOptions { rows, ..Default::default() }).await.expect("emulator starts");
    let ca_pem = std::fs::read(&emu.ready().ca_pem).expect("CA file");
    let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
    Env { emu, ca_pem, http }
}

impl Env {
    /// A token for the seeded app `name`, by client credentials with its secret.
    pub async fn mint(&self, app: &str) -> String {
        let ready = self.emu.ready();
        let a = ready.app(app).expect("seeded app");
        let url = format!("{}/{}/oauth2/v2.0/token", ready.authority, ready.tenant_id);
        let scope = format!("{}/.default", ready.org_url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", a.client_id.as_str()),
            ("client_secret", a.client_secret.as_deref().expect("app has a secret")),
            ("scope", scope.as_str()),
        ];
        let r = self.http.post(url).form(&form).send().await.unwrap();
        assert!(r.status().is_success(), "token endpoint: {}", r.status());
        let body: serde_json::Value = r.json().await.unwrap();
        body["access_token"].as_str().expect("access_token").to_string()
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            extra_ca_pem: Some(self.ca_pem.clone()),
            ..ClientOptions::new(self.emu.ready().org_url.clone())
        }
    }

    /// A client of the integration app with a fixed (valid) token.
    pub async fn client(&self) -> DataverseClient {
        self.client_with(self.options()).await
    }

    pub async fn client_with(&self, options: ClientOptions) -> DataverseClient {
        let token = AccessToken::new(self.mint(INTEGRATION).await, None);
        DataverseClient::new(options, Arc::new(d365_auth::StaticTokenProvider::new(token))).unwrap()
    }
}

/// Starts with a token the service rejects; mints a real one (client credentials) on refresh.
#[derive(Debug)]
pub struct MintOnRefresh {
    pub http: reqwest::Client,
    pub token_url: String,
    pub form: Vec<(String, String)>,
    pub refreshes: AtomicU32,
}

impl MintOnRefresh {
    pub fn new(env: &Env) -> Self {
        let ready = env.emu.ready();
        let a = ready.app(INTEGRATION).unwrap();
        Self {
            http: env.http.clone(),
            token_url: format!("{}/{}/oauth2/v2.0/token", ready.authority, ready.tenant_id),
            form: vec![
                ("grant_type".into(), "client_credentials".into()),
                ("client_id".into(), a.client_id.clone()),
                ("client_secret".into(), a.client_secret.clone().unwrap()),
                ("scope".into(), format!("{}/.default", ready.org_url)),
            ],
            refreshes: AtomicU32::new(0),
        }
    }
}

#[async_trait::async_trait]
impl TokenProvider for MintOnRefresh {
    async fn token(&self) -> Result<AccessToken, AuthError> {
        Ok(AccessToken::new("eyJhbGciOiJub25lIn0.e30.rejected", None))
    }

    async fn refresh_after_rejection(&self, _rejected: &AccessToken) -> Result<AccessToken, AuthError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let r =
            self.http.post(&self.token_url).form(&self.form).send().await.map_err(|_| AuthError::GivenTokenRejected)?;
        let body: serde_json::Value = r.json().await.map_err(|_| AuthError::GivenTokenRejected)?;
        let secret = body["access_token"].as_str().ok_or(AuthError::GivenTokenRejected)?;
        Ok(AccessToken::new(secret.to_string(), None))
    }

    fn flow_name(&self) -> &'static str {
        "test_mint_on_refresh"
    }
}

/// A client of the certificate app (System Administrator) with the token the emulator's
/// token endpoint would issue it.
pub fn admin_client(env: &Env, options: ClientOptions) -> DataverseClient {
    let token = env
        .emu
        .app_token(d365_emulator::config::CERTIFICATE_APP, std::time::Duration::from_secs(3600))
        .expect("the certificate app is seeded");
    DataverseClient::new(options, Arc::new(d365_auth::StaticTokenProvider::new(AccessToken::new(token, None)))).unwrap()
}
