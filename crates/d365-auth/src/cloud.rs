//! Clouds and authorities: which Entra ID host signs a user in, and the `{host}/{tenant}`
//! authority every endpoint hangs off (reference `entra-id-oauth.md` §1).

use std::fmt;

use url::Url;

/// The `AzureEnvironment` property: which national cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureEnvironment {
    /// Public cloud (`login.microsoftonline.com`). The default.
    Global,
    /// US Government Community Cloud (GCC, moderate): uses the public directory.
    UsGov,
    /// US GCC High (`login.microsoftonline.us`).
    UsGovHigh,
    /// US Department of Defense (`login.microsoftonline.us`).
    UsGovDod,
    /// China, operated by 21Vianet (`login.partner.microsoftonline.cn`).
    China,
}

impl AzureEnvironment {
    /// Accepted spellings, as shown in errors.
    pub const ALLOWED: &'static str = "GLOBAL, USGOV, USGOVHIGH (also USGOVT), USGOVDOD (also USGOVTDOD), CHINA";

    /// Parses a value (case-insensitive).
    pub fn parse(v: &str) -> Option<Self> {
        Some(match v.trim().to_ascii_uppercase().replace([' ', '_', '-'], "").as_str() {
            "GLOBAL" | "PUBLIC" | "AZURECLOUD" => Self::Global,
            "USGOV" | "GCC" => Self::UsGov,
            "USGOVHIGH" | "USGOVT" | "GCCHIGH" => Self::UsGovHigh,
            "USGOVDOD" | "USGOVTDOD" | "DOD" => Self::UsGovDod,
            "CHINA" | "AZURECHINACLOUD" => Self::China,
            _ => return None,
        })
    }

    /// The Entra ID host of this cloud.
    pub fn authority_host(self) -> &'static str {
        match self {
            Self::Global | Self::UsGov => "https://login.microsoftonline.com",
            Self::UsGovHigh | Self::UsGovDod => "https://login.microsoftonline.us",
            Self::China => "https://login.partner.microsoftonline.cn",
        }
    }

    /// The cloud an organization URL lives in, from its host suffix.
    pub fn from_org_host(host: &str) -> Option<Self> {
        let h = host.to_ascii_lowercase();
        if h.ends_with(".crm.microsoftdynamics.us") {
            Some(Self::UsGovHigh)
        } else if h.ends_with(".crm.appsplatform.us") {
            Some(Self::UsGovDod)
        } else if h.ends_with(".crm.dynamics.cn") {
            Some(Self::China)
        } else if h.ends_with(".crm9.dynamics.com") {
            Some(Self::UsGov)
        } else if h.ends_with(".dynamics.com") {
            Some(Self::Global)
        } else {
            None
        }
    }
}

/// An Entra ID authority: the host and the tenant segment (`{host}/{tenant}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    host: Url,
    tenant: String,
}

impl Authority {
    /// An authority on `host` (scheme + host + optional port) for `tenant` (GUID, domain,
    /// `organizations` or `common`).
    pub fn new(host: Url, tenant: impl Into<String>) -> Self {
        Self { host, tenant: tenant.into() }
    }

    /// The host URL (`https://login.microsoftonline.com`).
    pub fn host(&self) -> &Url {
        &self.host
    }

    /// The tenant segment.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Whether the tenant is one of the multi-tenant aliases.
    pub fn is_multi_tenant(&self) -> bool {
        matches!(self.tenant.to_ascii_lowercase().as_str(), "common" | "organizations" | "consumers")
    }

    fn endpoint(&self, path: &str) -> Url {
        let base = self.host.as_str().trim_end_matches('/');
        let tenant: String = url::form_urlencoded::byte_serialize(self.tenant.as_bytes()).collect();
        // `base` is a valid URL and the rest is path-safe: parsing cannot fail, but never panic.
        Url::parse(&format!("{base}/{tenant}/{path}")).unwrap_or_else(|_| self.host.clone())
    }

    /// `{authority}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> Url {
        self.endpoint("oauth2/v2.0/token")
    }

    /// `{authority}/oauth2/v2.0/authorize`.
    pub fn authorize_endpoint(&self) -> Url {
        self.endpoint("oauth2/v2.0/authorize")
    }

    /// `{authority}/oauth2/v2.0/devicecode`.
    pub fn device_code_endpoint(&self) -> Url {
        self.endpoint("oauth2/v2.0/devicecode")
    }

    /// `{authority}/adminconsent` (the v1 form: grants what the app registration lists).
    pub fn admin_consent_endpoint(&self) -> Url {
        self.endpoint("adminconsent")
    }
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host.as_str().trim_end_matches('/'), self.tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_and_hosts() {
        assert_eq!(AzureEnvironment::parse("usgovt"), Some(AzureEnvironment::UsGovHigh));
        assert_eq!(
            AzureEnvironment::parse("China").unwrap().authority_host(),
            "https://login.partner.microsoftonline.cn"
        );
        assert_eq!(AzureEnvironment::parse("mars"), None);
        assert_eq!(AzureEnvironment::from_org_host("x.crm.microsoftdynamics.us"), Some(AzureEnvironment::UsGovHigh));
        assert_eq!(AzureEnvironment::from_org_host("x.crm4.dynamics.com"), Some(AzureEnvironment::Global));
        assert_eq!(AzureEnvironment::from_org_host("localhost"), None);
    }

    #[test]
    fn endpoints() {
        let a = Authority::new(Url::parse("https://localhost:8443/").unwrap(), "contoso.onmicrosoft.com");
        assert_eq!(a.token_endpoint().as_str(), "https://localhost:8443/contoso.onmicrosoft.com/oauth2/v2.0/token");
        assert_eq!(a.to_string(), "https://localhost:8443/contoso.onmicrosoft.com");
        assert!(!a.is_multi_tenant());
        assert!(Authority::new(a.host().clone(), "organizations").is_multi_tenant());
    }
}
