//! The enumerated values of connection properties and their parsing (case-insensitive; a bad
//! value lists the allowed ones).

use crate::ConfigError;

fn norm(v: &str) -> String {
    v.trim().to_ascii_uppercase().replace([' ', '_', '-'], "")
}

fn invalid(key: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError::InvalidValue { key, value: value.to_string(), expected: expected.to_string() }
}

/// The `Edition` property: which Dynamics 365 application family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edition {
    /// Dynamics 365 Sales (Dataverse). The default.
    Sales,
    /// Customer Service (Dataverse).
    CustomerService,
    /// Field Service (Dataverse).
    FieldService,
    /// Marketing / Customer Insights – Journeys (Dataverse).
    Marketing,
    /// Project Operations (Dataverse).
    ProjectOperations,
    /// Human Resources (built on Finance & Operations).
    HumanResources,
    /// Finance & Operations / Supply Chain, online.
    FinOpsOnline,
    /// Finance & Operations, on premises.
    FinOpsOnPremise,
}

impl Edition {
    /// The allowed values.
    pub const ALLOWED: &'static str = "Sales, CustomerService, FieldService, Marketing, ProjectOperations, HumanResources, FinOpsOnline, FinOpsOnPremise";

    /// Parses the property value.
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        Ok(match norm(v).as_str() {
            "SALES" => Self::Sales,
            "CUSTOMERSERVICE" => Self::CustomerService,
            "FIELDSERVICE" => Self::FieldService,
            "MARKETING" => Self::Marketing,
            "PROJECTOPERATIONS" => Self::ProjectOperations,
            "HUMANRESOURCES" => Self::HumanResources,
            "FINOPSONLINE" | "FINANCEANDOPERATIONS" | "SUPPLYCHAIN" => Self::FinOpsOnline,
            "FINOPSONPREMISE" | "FINOPSONPREMISES" => Self::FinOpsOnPremise,
            _ => return Err(invalid("Edition", v, Self::ALLOWED)),
        })
    }

    /// Whether this edition is served by the Dataverse Web API (the others use the Finance &
    /// Operations OData service at `{url}/data/`).
    pub fn is_dataverse(self) -> bool {
        !matches!(self, Self::HumanResources | Self::FinOpsOnline | Self::FinOpsOnPremise)
    }

    /// The CData spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sales => "Sales",
            Self::CustomerService => "CustomerService",
            Self::FieldService => "FieldService",
            Self::Marketing => "Marketing",
            Self::ProjectOperations => "ProjectOperations",
            Self::HumanResources => "HumanResources",
            Self::FinOpsOnline => "FinOpsOnline",
            Self::FinOpsOnPremise => "FinOpsOnPremise",
        }
    }
}

/// The `AuthScheme` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// Delegated sign-in of a user through Entra ID (the default); with `OAuthGrantType=CLIENT`,
    /// the older way to ask for client credentials.
    AzureAd,
    /// Client credentials with a client secret (or a federated token file).
    AzureServicePrincipal,
    /// Client credentials with a certificate (signed JWT assertion).
    AzureServicePrincipalCert,
    /// Managed identity (Azure VM IMDS or App Service).
    AzureMsi,
    /// A bearer token given in `OAuthAccessToken` (refreshed with `OAuthRefreshToken` when
    /// `InitiateOAuth=REFRESH`).
    OAuth,
    /// User name + password through Entra ID (not supported: ROPC is deprecated).
    AzurePassword,
    /// On-premises ADFS (not supported).
    Adfs,
}

impl AuthScheme {
    /// The allowed values.
    pub const ALLOWED: &'static str = "AzureAD, AzureServicePrincipal, AzureServicePrincipalCert, AzureMSI, OAuth";

    /// Parses the property value.
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        Ok(match norm(v).as_str() {
            "AZUREAD" | "AZUREOAUTH" | "ENTRAID" => Self::AzureAd,
            "AZURESERVICEPRINCIPAL" => Self::AzureServicePrincipal,
            "AZURESERVICEPRINCIPALCERT" => Self::AzureServicePrincipalCert,
            "AZUREMSI" | "MANAGEDIDENTITY" => Self::AzureMsi,
            "OAUTH" | "TOKEN" => Self::OAuth,
            "AZUREPASSWORD" => Self::AzurePassword,
            "ADFS" => Self::Adfs,
            _ => return Err(invalid("AuthScheme", v, Self::ALLOWED)),
        })
    }

    /// The CData spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::AzureAd => "AzureAD",
            Self::AzureServicePrincipal => "AzureServicePrincipal",
            Self::AzureServicePrincipalCert => "AzureServicePrincipalCert",
            Self::AzureMsi => "AzureMSI",
            Self::OAuth => "OAuth",
            Self::AzurePassword => "AzurePassword",
            Self::Adfs => "ADFS",
        }
    }
}

/// The `InitiateOAuth` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiateOAuth {
    /// Use `OAuthAccessToken` as given; never get or refresh a token.
    Off,
    /// Use stored tokens, refresh them, and sign in interactively when needed.
    GetAndRefresh,
    /// Start from the given `OAuthAccessToken`/`OAuthRefreshToken` and refresh; never sign in.
    Refresh,
}

impl InitiateOAuth {
    /// The allowed values.
    pub const ALLOWED: &'static str = "OFF, GETANDREFRESH, REFRESH";

    /// Parses the property value.
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        Ok(match norm(v).as_str() {
            "OFF" | "FALSE" => Self::Off,
            "GETANDREFRESH" | "TRUE" => Self::GetAndRefresh,
            "REFRESH" => Self::Refresh,
            _ => return Err(invalid("InitiateOAuth", v, Self::ALLOWED)),
        })
    }
}

/// The `OAuthGrantType` property (CData builds ≤ 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// Authorization code (delegated). The default.
    Code,
    /// Client credentials (app-only).
    Client,
    /// Resource-owner password (not supported).
    Password,
}

impl GrantType {
    /// The allowed values.
    pub const ALLOWED: &'static str = "CODE, CLIENT";

    /// Parses the property value.
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        Ok(match norm(v).as_str() {
            "CODE" | "AUTHORIZATIONCODE" => Self::Code,
            "CLIENT" | "CLIENTCREDENTIALS" => Self::Client,
            "PASSWORD" => Self::Password,
            _ => return Err(invalid("OAuthGrantType", v, Self::ALLOWED)),
        })
    }
}

/// The `OAuthJWTCertType` property: where the certificate and key are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertType {
    /// A PEM file with the private key and the certificate (or the key, with `OAuthJWTKey`).
    PemKeyFile,
    /// The PEM text itself in `OAuthJWTCert`.
    PemKeyBlob,
    /// A PKCS#12 (.pfx/.p12) file, with `OAuthJWTCertPassword`.
    PfxFile,
    /// A base64-encoded PKCS#12 in `OAuthJWTCert`.
    PfxBlob,
    /// A store type CData knows that d365 does not read (Windows stores, JKS, PPK, …).
    Other(&'static str),
}

impl CertType {
    /// The supported values.
    pub const ALLOWED: &'static str = "PEMKEY_FILE, PEMKEY_BLOB, PFXFILE, PFXBLOB";

    const OTHERS: &'static [&'static str] = &[
        "USER",
        "MACHINE",
        "JKSFILE",
        "JKSBLOB",
        "PUBLIC_KEY_FILE",
        "PUBLIC_KEY_BLOB",
        "SSHPUBLIC_KEY_FILE",
        "SSHPUBLIC_KEY_BLOB",
        "P7BFILE",
        "PPKFILE",
        "XMLFILE",
        "XMLBLOB",
        "BCFKSFILE",
        "BCFKSBLOB",
    ];

    /// Parses the property value.
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        let n = norm(v);
        Ok(match n.as_str() {
            "PEMKEYFILE" | "PEMFILE" => Self::PemKeyFile,
            "PEMKEYBLOB" | "PEMBLOB" => Self::PemKeyBlob,
            "PFXFILE" | "PKCS12FILE" | "P12FILE" => Self::PfxFile,
            "PFXBLOB" | "PKCS12BLOB" => Self::PfxBlob,
            _ => match Self::OTHERS.iter().find(|o| norm(o) == n) {
                Some(o) => Self::Other(o),
                None => return Err(invalid("OAuthJWTCertType", v, Self::ALLOWED)),
            },
        })
    }

    /// The type a certificate value implies when `OAuthJWTCertType` is not set.
    pub fn infer(cert: &str) -> Self {
        let t = cert.trim();
        let lower = t.to_ascii_lowercase();
        if t.starts_with("-----BEGIN") {
            Self::PemKeyBlob
        } else if lower.ends_with(".pfx") || lower.ends_with(".p12") {
            Self::PfxFile
        } else {
            Self::PemKeyFile
        }
    }
}

/// The `OAuthJWTAlgorithm` property: how the certificate assertion is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    /// RSASSA-PSS with SHA-256 and an `x5t#S256` (SHA-256 thumbprint) header: Entra's current
    /// guidance. The default.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and an `x5t` (SHA-1 thumbprint) header: older tenants, ADFS.
    Rs256,
}

impl JwtAlgorithm {
    /// Parses the property value.
    pub fn parse(v: &str) -> Result<Self, ConfigError> {
        match norm(v).as_str() {
            "PS256" => Ok(Self::Ps256),
            "RS256" => Ok(Self::Rs256),
            _ => Err(invalid("OAuthJWTAlgorithm", v, "PS256 (default), RS256")),
        }
    }
}

/// Parses a boolean property (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`).
pub fn parse_bool(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match norm(v).as_str() {
        "TRUE" | "YES" | "ON" | "1" => Ok(true),
        "FALSE" | "NO" | "OFF" | "0" => Ok(false),
        _ => Err(invalid(key, v, "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_case_insensitively_and_list_allowed_values() {
        assert_eq!(Edition::parse("customer service").unwrap(), Edition::CustomerService);
        assert!(!Edition::parse("FinOpsOnline").unwrap().is_dataverse());
        assert_eq!(AuthScheme::parse("azuremsi").unwrap(), AuthScheme::AzureMsi);
        let e = AuthScheme::parse("AzureSP").unwrap_err().to_string();
        assert!(e.contains("AzureServicePrincipalCert"), "{e}");
        assert_eq!(InitiateOAuth::parse("GetAndRefresh").unwrap(), InitiateOAuth::GetAndRefresh);
        assert_eq!(CertType::parse("pemkey_file").unwrap(), CertType::PemKeyFile);
        assert_eq!(CertType::parse("JKSFILE").unwrap(), CertType::Other("JKSFILE"));
        assert_eq!(CertType::infer("/x/app.PFX"), CertType::PfxFile);
        assert!(parse_bool("ProxyAutoDetect", "maybe").is_err());
    }
}
