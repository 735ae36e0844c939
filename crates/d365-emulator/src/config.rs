//! What the emulator is seeded with: the tenant, app registrations, users and their
//! Dataverse security roles. Built-in defaults cover every sign-in flow; `--config FILE`
//! (TOML) replaces any section it names.
//!
//! ```toml
//! [tenant]
//! id = "6f1c3a52-8d47-4e0b-9a31-2c5d7e8f9a10"
//! domain = "contoso.onmicrosoft.com"
//!
//! [[apps]]
//! name = "integration"
//! client_id = "3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e01"
//! confidential = true
//! secrets = [{ value = "my-secret" }, { value = "old", expires = "2024-01-01T00:00:00Z" }]
//! redirect_uris = ["http://localhost:33333"]
//! admin_consent = true
//! application_user_roles = ["Integration"]
//! ```

use crate::error::StartError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use uuid::{Uuid, uuid};

/// The whole seed configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The one directory tenant.
    #[serde(default)]
    pub tenant: TenantConfig,
    /// App registrations.
    #[serde(default = "default_apps")]
    pub apps: Vec<AppConfig>,
    /// Interactive users.
    #[serde(default = "default_users")]
    pub users: Vec<UserConfig>,
    /// Dataverse environment settings.
    #[serde(default)]
    pub dataverse: DataverseConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tenant: TenantConfig::default(),
            apps: default_apps(),
            users: default_users(),
            dataverse: DataverseConfig::default(),
        }
    }
}

/// The directory tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant (directory) id.
    pub id: Uuid,
    /// Verified domain, accepted in place of the id in authority URLs.
    pub domain: String,
    /// Display name.
    #[serde(default = "default_tenant_name")]
    pub name: String,
}

fn default_tenant_name() -> String {
    "Contoso (emulated)".into()
}

impl Default for TenantConfig {
    fn default() -> Self {
        Self {
            id: uuid!("6f1c3a52-8d47-4e0b-9a31-2c5d7e8f9a10"),
            domain: "contoso.onmicrosoft.com".into(),
            name: default_tenant_name(),
        }
    }
}

/// A client secret of an app.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretConfig {
    /// The secret value.
    pub value: String,
    /// RFC 3339 expiry; a past date makes the secret answer AADSTS7000222.
    #[serde(default)]
    pub expires: Option<String>,
}

impl std::fmt::Debug for SecretConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretConfig").field("value", &"<redacted>").field("expires", &self.expires).finish()
    }
}

/// A federated identity credential (workload identity): assertions from `issuer` about
/// `subject` for `audience` are accepted in place of a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredentialConfig {
    /// Expected `iss` of the external token.
    pub issuer: String,
    /// Expected `sub`.
    pub subject: String,
    /// Expected `aud` (conventionally `api://AzureADTokenExchange`).
    #[serde(default = "default_fic_audience")]
    pub audience: String,
}

fn default_fic_audience() -> String {
    "api://AzureADTokenExchange".into()
}

/// An app registration (and, when `application_user_roles` is set, its Dataverse application user).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Short name, used for file names of its certificate.
    pub name: String,
    /// Application (client) id.
    pub client_id: Uuid,
    /// Confidential (web/daemon) or public (desktop/mobile) client.
    pub confidential: bool,
    /// Client secrets.
    #[serde(default)]
    pub secrets: Vec<SecretConfig>,
    /// Generate and register a certificate for this app.
    #[serde(default)]
    pub certificate: bool,
    /// Registered redirect URIs. `http://localhost` / `http://127.0.0.1` without a port accept any port.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Whether tenant-wide admin consent was granted for Dataverse delegated access.
    #[serde(default)]
    pub admin_consent: bool,
    /// Security roles of the app's Dataverse application user; empty means no application user.
    #[serde(default)]
    pub application_user_roles: Vec<String>,
    /// Federated identity credentials.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredentialConfig>,
}

/// A user of the tenant who is also a Dataverse user.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Sign-in name (UPN).
    pub username: String,
    /// Password for the sign-in page.
    pub password: String,
    /// Display name.
    pub display_name: String,
    /// Entra object id.
    pub object_id: Uuid,
    /// Dataverse systemuserid.
    pub systemuser_id: Uuid,
    /// Dataverse security roles.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("object_id", &self.object_id)
            .field("systemuser_id", &self.systemuser_id)
            .field("roles", &self.roles)
            .finish()
    }
}

/// Settings of the emulated Dataverse environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataverseConfig {
    /// Organization id (WhoAmI's OrganizationId).
    pub organization_id: Uuid,
    /// Root business unit id.
    pub business_unit_id: Uuid,
    /// Value of the `x-ms-dop-hint` header.
    pub dop_hint: u32,
    /// Days a change-tracking token stays valid (`organization.expirechangetrackingindays`).
    pub expire_change_tracking_days: u32,
}

impl Default for DataverseConfig {
    fn default() -> Self {
        Self {
            organization_id: uuid!("883278f5-07af-45eb-a0bc-3fea67caa544"),
            business_unit_id: uuid!("5f9c8e21-3b0a-4d6e-9c1f-7a2b3c4d5e60"),
            dop_hint: 8,
            expire_change_tracking_days: 7,
        }
    }
}

/// Client id of the seeded confidential app with a client secret.
pub const INTEGRATION_APP: Uuid = uuid!("3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e01");
/// Client id of the seeded confidential app with a certificate.
pub const CERTIFICATE_APP: Uuid = uuid!("3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e02");
/// Client id of the seeded public (desktop) client.
pub const DESKTOP_APP: Uuid = uuid!("3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e03");
/// Client id of the seeded public client that lacks admin consent.
pub const UNCONSENTED_APP: Uuid = uuid!("3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e04");
/// Client id of the seeded confidential app that Entra ID issues Finance & Operations tokens
/// to but that is not registered in F&O's "Microsoft Entra ID applications" (nor a Dataverse
/// application user): F&O refuses it.
pub const FNO_UNREGISTERED_APP: Uuid = uuid!("3c4d5e6f-1a2b-4c3d-8e9f-0a1b2c3d4e05");

fn default_apps() -> Vec<AppConfig> {
    vec![
        AppConfig {
            name: "integration".into(),
            client_id: INTEGRATION_APP,
            confidential: true,
            secrets: vec![
                SecretConfig { value: "emu~integration~secret~0001".into(), expires: None },
                SecretConfig {
                    value: "emu~integration~expired~0000".into(),
                    expires: Some("2024-01-01T00:00:00Z".into()),
                },
            ],
            certificate: false,
            redirect_uris: vec!["http://localhost:33333".into(), "https://localhost:44300/oauth/callback".into()],
            admin_consent: true,
            application_user_roles: vec!["Integration".into()],
            federated_credentials: vec![FederatedCredentialConfig {
                issuer: "https://kubernetes.default.svc.cluster.local".into(),
                subject: "system:serviceaccount:etl:d365-sync".into(),
                audience: default_fic_audience(),
            }],
        },
        AppConfig {
            name: "certificate".into(),
            client_id: CERTIFICATE_APP,
            confidential: true,
            secrets: vec![],
            certificate: true,
            redirect_uris: vec![],
            admin_consent: true,
            application_user_roles: vec!["System Administrator".into()],
            federated_credentials: vec![],
        },
        AppConfig {
            name: "desktop".into(),
            client_id: DESKTOP_APP,
            confidential: false,
            secrets: vec![],
            certificate: false,
            redirect_uris: vec![
                "http://localhost".into(),
                "http://127.0.0.1".into(),
                "http://localhost:33333".into(),
                "https://login.microsoftonline.com/common/oauth2/nativeclient".into(),
            ],
            admin_consent: true,
            application_user_roles: vec![],
            federated_credentials: vec![],
        },
        AppConfig {
            name: "unconsented".into(),
            client_id: UNCONSENTED_APP,
            confidential: false,
            secrets: vec![],
            certificate: false,
            redirect_uris: vec!["http://localhost".into(), "http://localhost:33333".into()],
            admin_consent: false,
            application_user_roles: vec![],
            federated_credentials: vec![],
        },
        AppConfig {
            name: "fno-unregistered".into(),
            client_id: FNO_UNREGISTERED_APP,
            confidential: true,
            secrets: vec![SecretConfig { value: "emu~fno-unregistered~secret~0001".into(), expires: None }],
            certificate: false,
            redirect_uris: vec![],
            admin_consent: true,
            application_user_roles: vec![],
            federated_credentials: vec![],
        },
    ]
}

fn default_users() -> Vec<UserConfig> {
    vec![
        UserConfig {
            username: "admin@contoso.onmicrosoft.com".into(),
            password: "Admin#Pass1".into(),
            display_name: "Avery Admin".into(),
            object_id: uuid!("a1b2c3d4-0000-4000-8000-00000000a001"),
            systemuser_id: uuid!("4026be43-6b69-4111-8f65-78e7d1620f01"),
            roles: vec!["System Administrator".into()],
        },
        UserConfig {
            username: "sales@contoso.onmicrosoft.com".into(),
            password: "Sales#Pass1".into(),
            display_name: "Sam Sales".into(),
            object_id: uuid!("a1b2c3d4-0000-4000-8000-00000000a002"),
            systemuser_id: uuid!("4026be43-6b69-4111-8f65-78e7d1620f02"),
            roles: vec!["Salesperson".into()],
        },
    ]
}

/// The client id of the extra application user `worker-i` (see [`Config::with_worker_apps`]).
pub fn worker_app_id(i: usize) -> Uuid {
    Uuid::new_v5(&INTEGRATION_APP, format!("worker-{i}").as_bytes())
}

/// The client secret of the extra application user `worker-i`.
pub fn worker_app_secret(i: usize) -> String {
    format!("emu~worker-{i}~secret~0001")
}

impl Config {
    /// The configuration with `n` more app registrations `worker-1` … `worker-n`: confidential,
    /// one client secret ([`worker_app_secret`]), client ids from [`worker_app_id`], each with an
    /// application user of the Integration role. Dataverse counts its service-protection limits
    /// per user, so each has its own budget: the setting of a scaled-out export.
    pub fn with_worker_apps(mut self, n: usize) -> Self {
        for i in 1..=n {
            let name = format!("worker-{i}");
            if self.apps.iter().any(|a| a.name == name) {
                continue;
            }
            self.apps.push(AppConfig {
                name,
                client_id: worker_app_id(i),
                confidential: true,
                secrets: vec![SecretConfig { value: worker_app_secret(i), expires: None }],
                certificate: false,
                redirect_uris: vec![],
                admin_consent: true,
                application_user_roles: vec!["Integration".into()],
                federated_credentials: vec![],
            });
        }
        self
    }

    /// Reads a TOML config file; sections it leaves out keep their defaults.
    pub fn load(path: &Path) -> Result<Self, StartError> {
        let text = std::fs::read_to_string(path).map_err(|e| StartError::io(path, e))?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| StartError::Config { path: path.to_path_buf(), message: e.to_string() })?;
        config.validate().map_err(|message| StartError::Config { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// Checks references and uniqueness.
    pub fn validate(&self) -> Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        for app in &self.apps {
            if !ids.insert(app.client_id) {
                return Err(format!("app client_id {} is used twice", app.client_id));
            }
            if !app.confidential && (!app.secrets.is_empty() || app.certificate) {
                return Err(format!("app '{}' is a public client and cannot have secrets or certificates", app.name));
            }
            for s in &app.secrets {
                if let Some(e) = &s.expires {
                    time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| format!("app '{}': secret expiry '{e}' is not an RFC 3339 date-time", app.name))?;
                }
            }
            for role in &app.application_user_roles {
                crate::security::Role::by_name(role).ok_or_else(|| unknown_role(role))?;
            }
        }
        for user in &self.users {
            for role in &user.roles {
                crate::security::Role::by_name(role).ok_or_else(|| unknown_role(role))?;
            }
        }
        Ok(())
    }
}

fn unknown_role(role: &str) -> String {
    format!("unknown security role '{role}'; known roles: {}", crate::security::Role::names().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secrets_are_redacted() {
        let c = Config::default();
        c.validate().unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("emu~integration~secret"));
        assert!(!dbg.contains("Admin#Pass1"));
    }

    #[test]
    fn partial_file_keeps_other_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[dataverse]\norganization_id='883278f5-07af-45eb-a0bc-3fea67caa544'\nbusiness_unit_id='5f9c8e21-3b0a-4d6e-9c1f-7a2b3c4d5e60'\ndop_hint=3\nexpire_change_tracking_days=7\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.dataverse.dop_hint, 3);
        assert_eq!(c.apps.len(), 5);
        let w = Config::default().with_worker_apps(3);
        assert_eq!(w.apps.len(), 8);
        let ids: std::collections::HashSet<_> = w.apps.iter().map(|a| a.client_id).collect();
        assert_eq!(ids.len(), 8, "every worker app has its own client id");
        assert_eq!(w.apps[7].name, "worker-3");
        assert_eq!(w.apps[7].application_user_roles, ["Integration"]);
        std::fs::write(&p, "[tenant]\nid='6f1c3a52-8d47-4e0b-9a31-2c5d7e8f9a10'\ndomian='x'\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("domian"), "{e}");
    }
}
