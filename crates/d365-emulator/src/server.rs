//! Start-up and shutdown: state directory, keys, storage, the HTTPS listener(s).

use crate::config::Config;
use crate::error::StartError;
use crate::options::EmulatorOptions;
use crate::pki::{self, Tls};
use crate::ready::{ReadyApp, ReadyInfo, ReadyUser};
use crate::state::{AppCert, AppState, Shared, Urls};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A running emulator. Dropping it does not stop the server: call [`Emulator::shutdown`].
pub struct Emulator {
    ready: ReadyInfo,
    state: AppState,
    handles: Vec<Handle<SocketAddr>>,
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("org_url", &self.ready.org_url).finish()
    }
}

impl Emulator {
    /// Starts an emulator and returns once it accepts connections.
    pub async fn start(options: EmulatorOptions) -> Result<Self, StartError> {
        let config = match &options.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        }
        .with_worker_apps(options.app_users);
        let (state_dir, temp_dir) = match (&options.state_dir, &options.data) {
            (Some(dir), _) => (dir.clone(), None),
            (None, Some(data)) => (PathBuf::from(format!("{}.d", data.display())), None),
            (None, None) => {
                let t = tempfile::Builder::new()
                    .prefix("d365-emulator-")
                    .tempdir()
                    .map_err(|e| StartError::io(&std::env::temp_dir(), e))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&state_dir).map_err(|e| StartError::io(&state_dir, e))?;

        let listener = std::net::TcpListener::bind(("127.0.0.1", options.port))
            .map_err(|source| StartError::Bind { port: options.port, source })?;
        let port = listener.local_addr().map_err(|source| StartError::Bind { port: options.port, source })?.port();
        // `localhost` may resolve to ::1 first; answer there too when the host has IPv6.
        let listener6 = std::net::TcpListener::bind(("::1", port)).ok();
        let urls = Urls::for_port(port);

        let dir = state_dir.clone();
        let cfg = config.clone();
        let (tls, signing_key, adfs_key, app_certs, unregistered_cert) = tokio::task::spawn_blocking(move || {
            let tls = Tls::load_or_create(&dir)?;
            let signing = pki::load_or_create_signing_key(&dir)?;
            let adfs = pki::load_or_create_app_cert(&dir, "adfs-token-signing", "AD FS token signing (emulated)")?.0;
            let mut certs = HashMap::new();
            for app in cfg.apps.iter().filter(|a| a.certificate) {
                let (key, files) =
                    pki::load_or_create_app_cert(&dir, &app.name, &format!("{} (emulated app)", app.name))?;
                certs.insert(app.client_id, AppCert { key, files });
            }
            let (key, files) =
                pki::load_or_create_app_cert(&dir, "unregistered", "certificate registered with no app")?;
            Ok::<_, StartError>((tls, signing, adfs, certs, AppCert { key, files }))
        })
        .await
        .map_err(|e| StartError::Crypto(format!("key generation task failed: {e}")))??;

        let (store, schema) = {
            let config = config.clone();
            let data = options.data.clone();
            let rows = options.rows;
            tokio::task::spawn_blocking(move || {
                let builtin = crate::schema::Schema::builtin();
                let store = crate::store::Store::open(data.as_deref(), Arc::new(builtin.clone()), &config, rows)?;
                // Columns created at runtime in an earlier run of this data file.
                let schema = crate::customize::restore(builtin, &store)?;
                Ok::<_, StartError>((store, schema))
            })
            .await
            .map_err(|e| StartError::Store(format!("seeding task failed: {e}")))??
        };

        let fno_store = {
            let file = options.data.as_deref().map(crate::fno::store::data_file);
            let rows = options.fno_rows.unwrap_or(options.rows);
            tokio::task::spawn_blocking(move || crate::fno::store::FnoStore::open(file.as_deref(), rows))
                .await
                .map_err(|e| StartError::Store(format!("F&O seeding task failed: {e}")))??
        };
        let registry = crate::fno::registry::Registry::from_config(&config);
        let mut ready = ready_info(&config, &urls, &tls, &app_certs, &unregistered_cert, &state_dir, &options);
        ready.fno = crate::ready::ReadyFno::new(&urls, &registry);
        let limits = crate::webapi::limits::Limits::new(options.limits);
        let faults = crate::webapi::faults::Faults::new(options.faults);
        let state: AppState = Arc::new(Shared {
            identity: crate::identity::IdentityState::default(),
            clock: crate::clock::Clock::system(),
            config,
            options,
            urls,
            signing_key,
            app_certs,
            unregistered_cert,
            store,
            definitions: crate::state::SchemaCell::new(Arc::new(schema)),
            limits,
            faults,
            fno: crate::fno::FnoState { store: fno_store, registry },
            adfs_key,
            adfs: crate::adfs::AdfsState::default(),
        });
        let app = crate::identity::routes()
            .merge(crate::webapi::routes())
            .merge(crate::fno::routes())
            .merge(crate::adfs::routes())
            .layer(axum::middleware::from_fn_with_state(state.clone(), crate::webapi::log_request))
            .with_state(state.clone());

        let rustls = RustlsConfig::from_config(Arc::new(server_tls(&tls.server_chain_pem, &tls.server_key_pem)?));
        let mut handles = Vec::new();
        for l in std::iter::once(listener).chain(listener6) {
            l.set_nonblocking(true).map_err(|source| StartError::Bind { port, source })?;
            let handle = Handle::new();
            let server = axum_server::from_tcp_rustls(l, rustls.clone())
                .map_err(|source| StartError::Bind { port, source })?
                .handle(handle.clone());
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(e) = server.serve(app.into_make_service()).await {
                    tracing::error!("emulator server stopped: {e}");
                }
            });
            handle.listening().await;
            handles.push(handle);
        }
        Ok(Self { ready, state, handles, _temp_dir: temp_dir })
    }

    /// Connection facts (URLs, tenant, apps, users, CA path).
    pub fn ready(&self) -> &ReadyInfo {
        &self.ready
    }

    /// The shared state (tests use it to move the clock or inspect storage).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// An app-only access token for the organisation, as the token endpoint issues it to the
    /// seeded app `client_id` for a client-credentials request (certificate apps get
    /// `appidacr` 2, others 1), valid for `lifetime`; `None` for an app the seed does not hold.
    /// For in-process tests and benchmarks that want a signed-in client without a sign-in.
    pub fn app_token(&self, client_id: uuid::Uuid, lifetime: std::time::Duration) -> Option<String> {
        let app = self.state.config.apps.iter().find(|a| a.client_id == client_id)?;
        let acr = if app.certificate { "2" } else { "1" };
        let life = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4).max(1);
        let (token, _, _) =
            crate::identity::issue::app_only_token_for(&self.state, app, &self.ready.org_url, acr, life);
        Some(token)
    }

    /// An app-only Entra access token for `resource` (e.g. [`ReadyFno::org_url`] or
    /// [`crate::state::HR_RESOURCE`]), as [`Emulator::app_token`] mints it for the org.
    ///
    /// [`ReadyFno::org_url`]: crate::ready::ReadyFno::org_url
    pub fn app_token_for(
        &self,
        client_id: uuid::Uuid,
        resource: &str,
        lifetime: std::time::Duration,
    ) -> Option<String> {
        let app = self.state.config.apps.iter().find(|a| a.client_id == client_id)?;
        let acr = if app.certificate { "2" } else { "1" };
        let life = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 4).max(1);
        let (token, _, _) = crate::identity::issue::app_only_token_for(&self.state, app, resource, acr, life);
        Some(token)
    }

    /// The Finance & Operations facts of the ready info.
    pub fn fno(&self) -> &crate::ready::ReadyFno {
        &self.ready.fno
    }

    /// Creates a column on an existing table, as `POST EntityDefinitions(LogicalName='<table>')/Attributes`
    /// does for a System Administrator outside any solution (so the schema name needs the default
    /// publisher's prefix, `new_`): the SQL table gets the column (existing rows null), and the
    /// requests that start afterwards see it in metadata, queries, writes and change tracking.
    pub async fn add_column(
        &self,
        table: &str,
        column: crate::schema::custom::NewColumn,
    ) -> Result<crate::customize::CreatedColumn, crate::schema::custom::AddColumnError> {
        let state = self.state.clone();
        let table = table.to_string();
        tokio::task::spawn_blocking(move || {
            state.add_column(&table, &column, crate::schema::custom::PrefixRule::DefaultPublisher)
        })
        .await
        .map_err(|e| {
            crate::schema::custom::AddColumnError::Store(format!("the task creating the column failed: {e}"))
        })?
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.ready.org_url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    /// Stops accepting connections and lets in-flight requests finish (up to 5 s).
    pub async fn shutdown(self) {
        for h in &self.handles {
            h.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
        }
        for h in &self.handles {
            while h.connection_count() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

fn ready_info(
    config: &Config,
    urls: &Urls,
    tls: &Tls,
    certs: &HashMap<uuid::Uuid, AppCert>,
    unregistered: &AppCert,
    state_dir: &std::path::Path,
    options: &EmulatorOptions,
) -> ReadyInfo {
    let now = time::OffsetDateTime::now_utc();
    let expired = |e: &Option<String>| {
        e.as_deref()
            .and_then(|e| time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok())
            .is_some_and(|t| t < now)
    };
    ReadyInfo {
        authority: urls.authority.clone(),
        tenant_id: config.tenant.id.to_string(),
        tenant_domain: config.tenant.domain.clone(),
        org_url: urls.org_url.clone(),
        webapi: urls.webapi.clone(),
        ca_pem: tls.ca_path.clone(),
        unregistered_certificate: unregistered.files.clone(),
        apps: config
            .apps
            .iter()
            .map(|a| ReadyApp {
                name: a.name.clone(),
                client_id: a.client_id.to_string(),
                kind: if a.confidential { "confidential" } else { "public" }.into(),
                client_secret: a.secrets.iter().find(|s| !expired(&s.expires)).map(|s| s.value.clone()),
                expired_client_secret: a.secrets.iter().find(|s| expired(&s.expires)).map(|s| s.value.clone()),
                certificate: certs.get(&a.client_id).map(|c| c.files.clone()),
                redirect_uris: a.redirect_uris.clone(),
                admin_consent: a.admin_consent,
                roles: a.application_user_roles.clone(),
            })
            .collect(),
        users: config
            .users
            .iter()
            .map(|u| ReadyUser {
                username: u.username.clone(),
                password: u.password.clone(),
                object_id: u.object_id.to_string(),
                systemuser_id: u.systemuser_id.to_string(),
                roles: u.roles.clone(),
            })
            .collect(),
        state_dir: state_dir.to_path_buf(),
        data: options.data.clone(),
        fno: crate::ready::ReadyFno::default(),
    }
}

/// The emulator's TLS server configuration, with aws-lc-rs named explicitly: a process may
/// hold rustls with more than one crypto provider compiled in (a dependency enabling `ring`),
/// where rustls cannot pick a default and the implicit builder panics.
fn server_tls(chain_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig, StartError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| StartError::Crypto(format!("TLS configuration failed: {e}"));
    let certs =
        CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
