//! Who may call F&O: its users (each with a default company) and the "Microsoft Entra ID
//! applications" registry (System administration > Setup), which maps an app's client id to
//! the F&O user the app acts as. An app-only token from an app that is not registered there is
//! refused even though Entra ID issued it.

use crate::config::Config;
use uuid::Uuid;

/// An F&O user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FnoUser {
    /// User ID in F&O.
    pub id: &'static str,
    /// The sign-in alias: the part of the UPN before `@` (or after `DOMAIN\` in AD FS).
    pub alias: &'static str,
    /// The user's default company (what reads see without `cross-company=true`).
    pub default_company: &'static str,
}

/// The F&O users: `Admin` (alias `admin`, company usmf) and `sales` (alias `sales`, usrt).
pub const USERS: [FnoUser; 2] = [
    FnoUser { id: "Admin", alias: "admin", default_company: "usmf" },
    FnoUser { id: "sales", alias: "sales", default_company: "usrt" },
];

/// The user `id`.
pub fn user(id: &str) -> Option<&'static FnoUser> {
    USERS.iter().find(|u| u.id == id)
}

/// The F&O user of a sign-in name: `admin@contoso.onmicrosoft.com` or the down-level
/// `CONTOSO\admin` (case-insensitive).
pub fn user_for_sign_in(name: &str) -> Option<&'static FnoUser> {
    let n = name.trim();
    let alias = match n.split_once('@') {
        Some((a, _)) => a,
        None => n.rsplit_once('\\').map_or(n, |(_, a)| a),
    };
    USERS.iter().find(|u| u.alias.eq_ignore_ascii_case(alias))
}

/// One registration of the Entra-applications page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRegistration {
    /// Client id.
    pub client_id: Uuid,
    /// Name of the app registration (the page's "Name").
    pub name: String,
    /// The F&O user the app acts as.
    pub user: &'static FnoUser,
}

/// The Entra-applications registry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    apps: Vec<AppRegistration>,
}

/// Whether the seeded app `name` is registered in F&O: `integration`, `certificate` and every
/// `worker-N`.
fn registered(name: &str) -> bool {
    name == "integration"
        || name == "certificate"
        || name.strip_prefix("worker-").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Registry {
    /// The registrations of the configured apps (all acting as `Admin`).
    pub fn from_config(config: &Config) -> Self {
        let admin = &USERS[0];
        let apps = config
            .apps
            .iter()
            .filter(|a| registered(&a.name))
            .map(|a| AppRegistration { client_id: a.client_id, name: a.name.clone(), user: admin })
            .collect();
        Self { apps }
    }

    /// The registration of `client_id`.
    pub fn app(&self, client_id: &str) -> Option<&AppRegistration> {
        let id = Uuid::parse_str(client_id).ok()?;
        self.apps.iter().find(|a| a.client_id == id)
    }

    /// Every registration.
    pub fn apps(&self) -> &[AppRegistration] {
        &self.apps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_sign_in_names() {
        let r = Registry::from_config(&Config::default().with_worker_apps(2));
        let names: Vec<&str> = r.apps().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["integration", "certificate", "worker-1", "worker-2"]);
        assert!(r.app(&crate::config::FNO_UNREGISTERED_APP.to_string()).is_none());
        assert_eq!(r.app(&crate::config::INTEGRATION_APP.to_string()).map(|a| a.user.id), Some("Admin"));
        assert_eq!(user_for_sign_in("Admin@contoso.onmicrosoft.com").map(|u| u.id), Some("Admin"));
        assert_eq!(user_for_sign_in("CONTOSO\\sales").map(|u| u.default_company), Some("usrt"));
        assert!(user_for_sign_in("nobody@contoso.onmicrosoft.com").is_none());
    }
}
