//! The facts a client needs to talk to a running emulator, printed as the ready block and
//! written as JSON by `--ready-file`.

use serde::Serialize;
use std::path::PathBuf;

/// One seeded app.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyApp {
    /// Short name.
    pub name: String,
    /// Client id.
    pub client_id: String,
    /// `confidential` or `public`.
    pub kind: String,
    /// Valid client secret, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// An expired client secret, if any (for negative tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_client_secret: Option<String>,
    /// Certificate files, if the app has a certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<crate::pki::CertFiles>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Whether admin consent was granted.
    pub admin_consent: bool,
    /// Dataverse roles of its application user.
    pub roles: Vec<String>,
}

/// One seeded user.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyUser {
    /// Sign-in name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Entra object id.
    pub object_id: String,
    /// Dataverse systemuserid.
    pub systemuser_id: String,
    /// Dataverse roles.
    pub roles: Vec<String>,
}

/// Everything a client needs to connect.
#[derive(Debug, Clone, Serialize)]
pub struct ReadyInfo {
    /// Identity authority host (use in place of `https://login.microsoftonline.com`).
    pub authority: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Tenant domain.
    pub tenant_domain: String,
    /// Dataverse organization URL.
    pub org_url: String,
    /// Web API root.
    pub webapi: String,
    /// Path of the CA certificate to trust.
    pub ca_pem: PathBuf,
    /// A certificate registered with no app.
    pub unregistered_certificate: crate::pki::CertFiles,
    /// Seeded apps.
    pub apps: Vec<ReadyApp>,
    /// Seeded users.
    pub users: Vec<ReadyUser>,
    /// Directory holding the CA, keys and certificates.
    pub state_dir: PathBuf,
    /// SQLite data file, if persistent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// The Finance & Operations environments.
    pub fno: ReadyFno,
}

/// The Finance & Operations environments, AD FS and the Human Resources legacy endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadyFno {
    /// The online environment URL (its Entra resource; `{org_url}/.default` is the scope).
    pub org_url: String,
    /// The OData service root (`{org_url}/data`).
    pub data: String,
    /// The on-premises environment URL (its AD FS resource).
    pub onprem_url: String,
    /// The AD FS authority (`{adfs_authority}/oauth2/token`).
    pub adfs_authority: String,
    /// The Human Resources legacy environment (`…/namespaces/{guid}`; `/data` below it).
    pub hr_legacy_url: String,
    /// The Entra resource of the HR legacy endpoint.
    pub hr_resource: String,
    /// The companies (legal entities).
    pub companies: Vec<String>,
    /// The default company of the apps and of `admin`.
    pub default_company: String,
    /// Names of the apps registered in F&O's Microsoft Entra ID applications.
    pub registered_apps: Vec<String>,
    /// The app Entra ID issues F&O tokens to but F&O does not know.
    pub unregistered_app: String,
}

impl ReadyFno {
    /// The facts for these URLs and registrations.
    pub fn new(urls: &crate::state::Urls, registry: &crate::fno::registry::Registry) -> Self {
        Self {
            org_url: urls.fno_url.clone(),
            data: format!("{}/data", urls.fno_url),
            onprem_url: urls.fno_onprem_url.clone(),
            adfs_authority: urls.adfs.clone(),
            hr_legacy_url: urls.hr_legacy_url.clone(),
            hr_resource: crate::state::HR_RESOURCE.to_string(),
            companies: crate::fno::seed::COMPANIES.iter().map(|c| c.id.to_string()).collect(),
            default_company: crate::fno::registry::USERS[0].default_company.to_string(),
            registered_apps: registry.apps().iter().map(|a| a.name.clone()).collect(),
            unregistered_app: "fno-unregistered".into(),
        }
    }
}

impl ReadyInfo {
    /// The app with this name.
    pub fn app(&self, name: &str) -> Option<&ReadyApp> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// The human-readable ready block.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "d365 emulator ready");
        let _ = writeln!(s, "  authority   {}   (instead of https://login.microsoftonline.com)", self.authority);
        let _ = writeln!(s, "  tenant      {}   ({})", self.tenant_id, self.tenant_domain);
        let _ = writeln!(s, "  org url     {}", self.org_url);
        let _ = writeln!(s, "  web api     {}", self.webapi);
        let _ = writeln!(s, "  F&O         {}   (data {})", self.fno.org_url, self.fno.data);
        let _ = writeln!(s, "  F&O on-prem {}   (AD FS {})", self.fno.onprem_url, self.fno.adfs_authority);
        let _ = writeln!(s, "  HR legacy   {}   (resource {})", self.fno.hr_legacy_url, self.fno.hr_resource);
        let _ = writeln!(
            s,
            "  trust CA    {}   (SSL_CERT_FILE / REQUESTS_CA_BUNDLE / SSLServerCert)",
            self.ca_pem.display()
        );
        let _ = writeln!(s, "  apps");
        for a in &self.apps {
            let _ = writeln!(s, "    {:<12} {}  {}", a.name, a.client_id, a.kind);
            if let Some(sec) = &a.client_secret {
                let _ = writeln!(s, "      secret        {sec}");
            }
            if let Some(sec) = &a.expired_client_secret {
                let _ = writeln!(s, "      expired secret {sec}");
            }
            if let Some(c) = &a.certificate {
                let _ = writeln!(
                    s,
                    "      certificate   {} (PFX {} password '{}')",
                    c.combined_pem.display(),
                    c.pfx.display(),
                    c.pfx_password
                );
            }
            if !a.redirect_uris.is_empty() {
                let _ = writeln!(s, "      redirect URIs {}", a.redirect_uris.join(", "));
            }
            let consent = if a.admin_consent { "admin consent granted" } else { "NO admin consent" };
            let roles = if a.roles.is_empty() {
                "no application user".to_string()
            } else {
                format!("application user roles: {}", a.roles.join(", "))
            };
            let _ = writeln!(s, "      {consent}; {roles}");
        }
        let _ = writeln!(s, "  users");
        for u in &self.users {
            let _ = writeln!(s, "    {:<32} password {:<14} roles: {}", u.username, u.password, u.roles.join(", "));
        }
        let _ = writeln!(s, "  state dir   {}", self.state_dir.display());
        match &self.data {
            Some(d) => {
                let _ = writeln!(s, "  data        {}", d.display());
            }
            None => {
                let _ = writeln!(s, "  data        in memory (lost at exit; use --data FILE to keep it)");
            }
        }
        s
    }
}
