//! What the identity side remembers between requests: authorization codes, refresh tokens,
//! device codes, sign-in flows in progress, tenant-wide consents and the client-assertion
//! replay cache. Everything lives in memory behind one mutex (never held across an await);
//! expired entries are dropped as new ones are added.

use super::scopes::ScopeSet;
use super::tenant::TenantPath;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// Authorization codes live 10 minutes.
pub const CODE_LIFETIME_SECS: i64 = 600;
/// Refresh tokens expire after 90 days without use.
pub const REFRESH_INACTIVITY_SECS: i64 = 90 * 24 * 3600;
/// Device codes live 15 minutes.
pub const DEVICE_CODE_LIFETIME_SECS: i64 = 900;
/// Polling interval announced for device codes.
pub const DEVICE_POLL_INTERVAL_SECS: i64 = 5;
/// Sign-in pages must be completed within an hour.
pub const FLOW_LIFETIME_SECS: i64 = 3600;

/// A random opaque value: `prefix` + base64url of `n` random bytes.
pub fn random_token(prefix: &str, n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(bytes.as_mut_slice());
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// PKCE challenge recorded at /authorize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    /// `code_challenge`.
    pub challenge: String,
    /// `S256` or `plain`.
    pub method: String,
}

/// An issued authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    /// Client it was issued to.
    pub client_id: Uuid,
    /// Signed-in user (object id).
    pub user: Uuid,
    /// redirect_uri the code was sent to.
    pub redirect_uri: String,
    /// The authorize request named the redirect_uri (so the redemption must repeat it).
    pub redirect_uri_sent: bool,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// PKCE challenge, if one was sent.
    pub pkce: Option<Pkce>,
    /// `nonce` of the authorize request.
    pub nonce: Option<String>,
    /// Tenant path of the authorize request.
    pub tenant: TenantPath,
    /// When the user authenticated.
    pub auth_time: i64,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
    /// Already redeemed (kept to answer AADSTS54005 on re-use).
    pub redeemed: bool,
}

/// An issued refresh token.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    /// Client it was issued to.
    pub client_id: Uuid,
    /// User (object id).
    pub user: Uuid,
    /// Scopes of the original grant.
    pub scopes: ScopeSet,
    /// When the user authenticated.
    pub auth_time: i64,
    /// When it was issued.
    pub issued_at: i64,
    /// Last redemption (or issue) time; inactivity is measured from here.
    pub last_used: i64,
    /// Revoked (redeemed under strict rotation).
    pub revoked: bool,
}

/// Where a device code stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    /// The user has not finished signing in.
    Pending,
    /// The user signed in and accepted.
    Approved {
        /// User object id.
        user: Uuid,
        /// Sign-in time.
        auth_time: i64,
    },
    /// The user cancelled.
    Declined,
    /// The user signed in but the app lacks consent.
    ConsentRequired,
}

/// An issued device code.
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    /// The code the user types.
    pub user_code: String,
    /// Client that asked.
    pub client_id: Uuid,
    /// Requested scopes.
    pub scopes: ScopeSet,
    /// Tenant path of the request.
    pub tenant: TenantPath,
    /// Expiry.
    pub expires_at: i64,
    /// Last poll time.
    pub last_poll: Option<i64>,
    /// State.
    pub status: DeviceStatus,
}

/// What a sign-in page is completing.
#[derive(Debug, Clone)]
pub enum FlowKind {
    /// An /authorize request.
    Authorize(super::authorize::AuthRequest),
    /// A device code (by device_code).
    Device(String),
    /// An admin-consent request.
    AdminConsent(super::admin_consent::ConsentRequest),
}

/// A sign-in page in progress.
#[derive(Debug, Clone)]
pub struct Flow {
    /// What it completes.
    pub kind: FlowKind,
    /// The user, once the password was accepted.
    pub user: Option<Uuid>,
    /// When the user signed in.
    pub auth_time: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// The mutable store.
#[derive(Debug, Default)]
pub struct Grants {
    /// Authorization codes by code.
    pub codes: HashMap<String, AuthCode>,
    /// Refresh tokens by token.
    pub refresh: HashMap<String, RefreshGrant>,
    /// Device codes by device_code.
    pub devices: HashMap<String, DeviceGrant>,
    /// Sign-in flows by flow id.
    pub flows: HashMap<String, Flow>,
    /// Client ids with tenant-wide admin consent granted at run time.
    pub consents: HashSet<Uuid>,
    /// Client-assertion `jti`s seen, by (client id, jti), with their expiry.
    pub assertion_ids: HashMap<(Uuid, String), i64>,
}

impl Grants {
    /// Drops entries that can no longer be used.
    pub fn purge(&mut self, now: i64) {
        self.codes.retain(|_, c| c.expires_at + CODE_LIFETIME_SECS > now);
        self.refresh.retain(|_, r| r.last_used + REFRESH_INACTIVITY_SECS + 86_400 > now);
        self.devices.retain(|_, d| d.expires_at + DEVICE_CODE_LIFETIME_SECS > now);
        self.flows.retain(|_, f| f.expires_at > now);
        self.assertion_ids.retain(|_, exp| *exp > now);
    }

    /// Stores a new authorization code and returns it.
    pub fn add_code(&mut self, code: AuthCode, now: i64) -> String {
        self.purge(now);
        let id = random_token("1.AQ", 48);
        self.codes.insert(id.clone(), code);
        id
    }

    /// Stores a new refresh token and returns it.
    pub fn add_refresh(&mut self, grant: RefreshGrant) -> String {
        let id = random_token("1.AR", 64);
        self.refresh.insert(id.clone(), grant);
        id
    }

    /// Stores a sign-in flow and returns its id.
    pub fn add_flow(&mut self, flow: Flow, now: i64) -> String {
        self.purge(now);
        let id = random_token("", 24);
        self.flows.insert(id.clone(), flow);
        id
    }

    /// The device code whose user code is `user_code` (case- and separator-insensitive).
    pub fn device_by_user_code(&self, user_code: &str) -> Option<String> {
        let norm: String = user_code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>();
        self.devices.iter().find(|(_, d)| d.user_code.eq_ignore_ascii_case(&norm)).map(|(k, _)| k.clone())
    }
}

/// Identity-side state shared by all requests.
#[derive(Debug, Default)]
pub struct IdentityState {
    inner: Mutex<Grants>,
}

impl IdentityState {
    /// Locks the store. Never hold the guard across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Grants> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether tenant-wide consent was granted for `client_id` at run time (admin-consent endpoint).
    pub fn has_runtime_consent(&self, client_id: Uuid) -> bool {
        self.lock().consents.contains(&client_id)
    }
}
