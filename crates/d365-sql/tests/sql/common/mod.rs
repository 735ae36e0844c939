//! Shared helpers of the SQL tests: start the emulator, connect a client over HTTPS with a
//! minted token, record the requests it sends, and turn batches into comparable rows.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use d365_auth::{AccessToken, StaticTokenProvider};
use d365_client::{ApiRequest, ClientOptions, DataverseClient, RequestEvent};
use d365_emulator::config::CERTIFICATE_APP;
use d365_emulator::{Emulator, EmulatorOptions};
use d365_sql::datafusion::arrow::array::RecordBatch;
use d365_sql::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use d365_sql::{EngineOptions, SqlEngine};

/// A running emulator and a token of the System Administrator app.
pub struct Env {
    pub emu: Emulator,
    pub token: String,
}

pub async fn start(rows: usize) -> Env {
    let emu = Emulator::start(EmulatorOptions { rows, ..Default::default() }).await.expect("emulator starts");
    let token = emu.app_token(CERTIFICATE_APP, std::time::Duration::from_secs(24 * 3600)).expect("seeded app");
    Env { emu, token }
}

impl Env {
    /// A new client (own request counters) with `page_size` rows per page.
    pub fn client(&self, page_size: Option<u32>) -> DataverseClient {
        let ready = self.emu.ready();
        let mut o = ClientOptions::new(ready.org_url.clone());
        o.extra_ca_pem = Some(std::fs::read(&ready.ca_pem).expect("CA file"));
        o.max_page_size = page_size;
        let tokens = Arc::new(StaticTokenProvider::new(AccessToken::new(self.token.clone(), None)));
        DataverseClient::new(o, tokens).expect("client")
    }

    /// An engine whose whole-table scans follow one nextLink chain (request counts exact).
    pub async fn engine(&self, pushdown: bool, page_size: Option<u32>) -> SqlEngine {
        self.engine_with(EngineOptions { pushdown, page_size, parallel_scan: false, ..Default::default() }).await
    }

    pub async fn engine_with(&self, options: EngineOptions) -> SqlEngine {
        SqlEngine::new(self.client(options.page_size), options).await.expect("engine")
    }

    /// POSTs a record to `entity_set`.
    pub async fn create(&self, client: &DataverseClient, entity_set: &str, body: serde_json::Value) {
        let req = ApiRequest::new(reqwest::Method::POST, client.url(entity_set).unwrap()).json(&body).unwrap();
        client.send(&req).await.unwrap_or_else(|e| panic!("create in {entity_set}: {e}"));
    }
}

/// Records the path and query of every request a client sends.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<RequestEvent>>>);

impl Recorder {
    pub fn attach(client: &DataverseClient) -> Self {
        let r = Recorder::default();
        let inner = r.0.clone();
        client.request_log().set_hook(Some(Arc::new(move |e: &RequestEvent| {
            inner.lock().unwrap().push(e.clone());
        })));
        r
    }
    /// The data requests recorded since the last call (metadata requests are dropped).
    pub fn take(&self) -> Vec<RequestEvent> {
        let all = std::mem::take(&mut *self.0.lock().unwrap());
        all.into_iter().filter(|e| !e.path.contains("EntityDefinitions")).collect()
    }
}

/// Every row of `batches` as text cells (null as `NULL`).
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()).collect();
        for i in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    out
}
