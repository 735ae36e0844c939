//! The state every request handler shares.

use crate::clock::Clock;
use crate::config::{AppConfig, Config, UserConfig};
use crate::options::EmulatorOptions;
use crate::pki::{CertFiles, CertifiedKey};
use crate::schema::Schema;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use uuid::Uuid;

/// Shared, cheaply cloneable handle to the emulator state.
pub type AppState = Arc<Shared>;

/// The base URLs the emulator answers on.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `https://localhost:{port}`: the Entra authority host.
    pub authority: String,
    /// `https://localhost:{port}`: the Dataverse organization URL (token audience).
    pub org_url: String,
    /// Other spellings of the org URL accepted as token audience (`https://127.0.0.1:{port}`).
    pub org_aliases: Vec<String>,
    /// `{org_url}/api/data/v9.2`.
    pub webapi: String,
    /// `{org_url}/fno`: the Finance & Operations online environment (its Entra resource).
    pub fno_url: String,
    /// Every spelling of [`Urls::fno_url`] accepted as token audience.
    pub fno_aliases: Vec<String>,
    /// `{org_url}/fno-onprem`: the on-premises environment (its AD FS relying party).
    pub fno_onprem_url: String,
    /// Every spelling of [`Urls::fno_onprem_url`] accepted as token audience.
    pub fno_onprem_aliases: Vec<String>,
    /// `{org_url}/adfs`: the AD FS authority (and token issuer).
    pub adfs: String,
    /// `{org_url}/namespaces/{guid}`: the Human Resources legacy environment.
    pub hr_legacy_url: String,
}

/// The Entra resource of the Human Resources legacy (Talent) endpoint.
pub const HR_RESOURCE: &str = "http://hr.talent.dynamics.com";

/// The namespace id of the emulated Human Resources legacy environment.
pub const HR_NAMESPACE: Uuid = uuid::uuid!("7d3f1c2a-5b4e-4f60-9a81-c2d3e4f5a6b7");

impl Urls {
    /// URLs for a server on `port`.
    pub fn for_port(port: u16) -> Self {
        let org_url = format!("https://localhost:{port}");
        let spellings = |path: &str| vec![format!("{org_url}{path}"), format!("https://127.0.0.1:{port}{path}")];
        Self {
            authority: org_url.clone(),
            webapi: format!("{org_url}/api/data/v9.2"),
            org_aliases: spellings(""),
            fno_url: format!("{org_url}/fno"),
            fno_aliases: spellings("/fno"),
            fno_onprem_url: format!("{org_url}/fno-onprem"),
            fno_onprem_aliases: spellings("/fno-onprem"),
            adfs: format!("{org_url}/adfs"),
            hr_legacy_url: format!("{org_url}/namespaces/{HR_NAMESPACE}"),
            org_url,
        }
    }

    /// Whether `resource` names the Finance & Operations online environment.
    pub fn is_fno(&self, resource: &str) -> bool {
        let r = resource.trim_end_matches('/');
        self.fno_aliases.iter().any(|a| a.eq_ignore_ascii_case(r))
    }

    /// Whether `resource` is the Human Resources legacy resource `http://hr.talent.dynamics.com`.
    pub fn is_hr(&self, resource: &str) -> bool {
        resource.trim_end_matches('/').eq_ignore_ascii_case(HR_RESOURCE)
    }

    /// Whether Entra ID can issue tokens for `resource`: the Dataverse environment, the F&O
    /// online environment or the Human Resources legacy resource.
    pub fn is_entra_resource(&self, resource: &str) -> bool {
        self.is_org(resource) || self.is_fno(resource) || self.is_hr(resource)
    }

    /// Whether `resource` (a scope's resource part, or a token audience) names this environment.
    pub fn is_org(&self, resource: &str) -> bool {
        let r = resource.trim_end_matches('/');
        self.org_aliases.iter().any(|a| a.eq_ignore_ascii_case(r))
    }
}

/// A registered app certificate.
#[derive(Debug)]
pub struct AppCert {
    /// Key and certificate.
    pub key: CertifiedKey,
    /// Where its files are.
    pub files: CertFiles,
}

/// Everything handlers share.
pub struct Shared {
    /// Seed configuration.
    pub config: Config,
    /// Start-up options.
    pub options: EmulatorOptions,
    /// Injectable time.
    pub clock: Clock,
    /// Base URLs.
    pub urls: Urls,
    /// Key that signs tokens (published in the JWKS).
    pub signing_key: CertifiedKey,
    /// Certificates registered for apps, by client id.
    pub app_certs: HashMap<Uuid, AppCert>,
    /// A certificate registered with no app (for negative tests).
    pub unregistered_cert: AppCert,
    /// Identity-side mutable state (codes, refresh tokens, device codes, consents, replay cache).
    pub identity: crate::identity::IdentityState,
    /// Dataverse storage.
    pub store: crate::store::Store,
    /// Table definitions, replaced when a column is created (read them with [`Shared::schema`]).
    pub definitions: SchemaCell,
    /// Service-protection accounting.
    pub limits: crate::webapi::limits::Limits,
    /// Fault injection.
    pub faults: crate::webapi::faults::Faults,
    /// Finance & Operations: its data store and Entra-applications registry.
    pub fno: crate::fno::FnoState,
    /// The AD FS token-signing key (published at `/adfs/discovery/keys`).
    pub adfs_key: CertifiedKey,
    /// AD FS mutable state (refresh tokens).
    pub adfs: crate::adfs::AdfsState,
}

/// The current table definitions. A column created at runtime swaps in a new [`Schema`];
/// readers take a snapshot ([`SchemaCell::get`]) and keep it for the rest of their request.
#[derive(Debug)]
pub struct SchemaCell {
    current: RwLock<Arc<Schema>>,
    /// One change at a time: a change reads the current schema, alters the store, then swaps.
    changes: Mutex<()>,
}

impl SchemaCell {
    /// A cell holding `schema`.
    pub fn new(schema: Arc<Schema>) -> Self {
        Self { current: RwLock::new(schema), changes: Mutex::new(()) }
    }

    /// A snapshot of the current definitions.
    pub fn get(&self) -> Arc<Schema> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Holds off other changes until the guard drops (blocking: call from `spawn_blocking`).
    pub(crate) fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `schema` the current definitions.
    pub(crate) fn replace(&self, schema: Arc<Schema>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = schema;
    }
}

impl Shared {
    /// A snapshot of the current table definitions.
    pub fn schema(&self) -> Arc<Schema> {
        self.definitions.get()
    }

    /// The app registration with this client id.
    pub fn app(&self, client_id: &str) -> Option<&AppConfig> {
        let id = Uuid::parse_str(client_id).ok()?;
        self.config.apps.iter().find(|a| a.client_id == id)
    }

    /// The user with this sign-in name (case-insensitive).
    pub fn user_by_name(&self, username: &str) -> Option<&UserConfig> {
        self.config.users.iter().find(|u| u.username.eq_ignore_ascii_case(username.trim()))
    }

    /// Resolves an authority path segment (tenant GUID or verified domain) to the tenant id.
    pub fn resolve_tenant(&self, segment: &str) -> Option<Uuid> {
        let t = &self.config.tenant;
        if segment.eq_ignore_ascii_case(&t.domain) {
            return Some(t.id);
        }
        Uuid::parse_str(segment).ok().filter(|id| *id == t.id)
    }
}
