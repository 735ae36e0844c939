//! The typed connection configuration: a CData connection string completed from the
//! environment (azure-identity variables, `SSL_CERT_FILE`, `AZURE_AUTHORITY_HOST`).
//!
//! Parsing checks syntax, property names (an unknown one suggests the nearest known one) and
//! values; which properties a flow *needs* is checked when the provider is built
//! ([`crate::provider::plan`]), so the error can name the flow.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;
use uuid::Uuid;

use crate::cloud::AzureEnvironment;
use crate::config_values::parse_bool;
pub use crate::config_values::{AuthScheme, CertType, Edition, GrantType, InitiateOAuth, JwtAlgorithm};
use crate::connection_string::ConnectionString;
use crate::properties::{self, Group};
use crate::{ConfigError, Environment, Secret};

/// The environment variable holding a connection string (the CLI's `--connection` default).
pub const CONNECTION_ENV: &str = "D365_CONNECTION";

/// The default `CallbackURL`.
pub const DEFAULT_CALLBACK_URL: &str = "http://localhost:33333";

/// The default `Timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP proxy (`ProxyServer`, `ProxyPort`, `ProxyUser`, `ProxyPassword`, `ProxyExceptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Host name or address.
    pub server: String,
    /// Port (default 80).
    pub port: u16,
    /// Basic-auth user.
    pub user: Option<String>,
    /// Basic-auth password.
    pub password: Option<Secret>,
    /// Hosts that bypass the proxy (`;` or `,` separated).
    pub exceptions: Option<String>,
}

/// The token resource of the standalone Human Resources service (its legacy URLs).
pub const HR_LEGACY_RESOURCE: &str = "http://hr.talent.dynamics.com";

/// A parsed, typed connection configuration.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// `OrganizationUrl`: the environment URL, without path (`https://org.crm.dynamics.com/`).
    pub organization_url: Url,
    /// `Edition` (default Sales).
    pub edition: Edition,
    /// `ApiVersion` (default `9.2`).
    pub api_version: String,
    /// `AuthScheme` (default AzureAD).
    pub auth_scheme: AuthScheme,
    /// `InitiateOAuth` as given (the default depends on the flow: see [`crate::provider::plan`]).
    pub initiate_oauth: Option<InitiateOAuth>,
    /// `OAuthGrantType` (default CODE).
    pub grant_type: GrantType,
    /// `OAuthClientId` (or `AZURE_CLIENT_ID`).
    pub client_id: Option<String>,
    /// `OAuthClientSecret` (or `AZURE_CLIENT_SECRET` for app-only flows).
    pub client_secret: Option<Secret>,
    /// `OAuthAccessToken`.
    pub access_token: Option<Secret>,
    /// `OAuthRefreshToken`.
    pub refresh_token: Option<Secret>,
    /// `OAuthVerifier`: an authorization code obtained elsewhere (headless sign-in).
    pub verifier: Option<Secret>,
    /// `OAuthSettingsLocation`: a file path or `memory://name`.
    pub settings_location: Option<String>,
    /// `OAuthExpiresIn`: lifetime in seconds of the given access token.
    pub expires_in: Option<i64>,
    /// `OAuthTokenTimestamp`: when the given access token was issued, Unix milliseconds.
    pub token_timestamp_ms: Option<i64>,
    /// `CallbackURL` (default `http://localhost:33333`), exactly as written: it is sent as the
    /// `redirect_uri` and must equal a registered redirect URI character for character.
    pub callback_url: String,
    /// `AzureTenant` (or `AZURE_TENANT_ID`).
    pub tenant: Option<String>,
    /// `AzureEnvironment` when given.
    pub azure_environment: Option<AzureEnvironment>,
    /// `AzureAuthorityHost` (or `AZURE_AUTHORITY_HOST`): replaces the cloud's Entra ID host,
    /// e.g. with the emulator's.
    pub authority_host: Option<Url>,
    /// `AzureFederatedTokenFile` (or `AZURE_FEDERATED_TOKEN_FILE` for app-only flows).
    pub federated_token_file: Option<PathBuf>,
    /// `AzureMSIEndpoint`: the IMDS base URL (default `http://169.254.169.254`).
    pub msi_endpoint: Option<Url>,
    /// `OAuthJWTCert` (or `AZURE_CLIENT_CERTIFICATE_PATH` for app-only flows).
    pub jwt_cert: Option<String>,
    /// `OAuthJWTCertType` (inferred from `OAuthJWTCert` when not set).
    pub jwt_cert_type: Option<CertType>,
    /// `OAuthJWTCertPassword` (or `AZURE_CLIENT_CERTIFICATE_PASSWORD`).
    pub jwt_cert_password: Option<Secret>,
    /// `OAuthJWTCertSubject`: which certificate of a PFX to use (`*` = the first).
    pub jwt_cert_subject: Option<String>,
    /// `OAuthJWTKey` (d365 extension): the private-key PEM file when `OAuthJWTCert` holds only
    /// the certificate.
    pub jwt_key: Option<String>,
    /// `OAuthJWTAlgorithm` (d365 extension): PS256 (default) or RS256.
    pub jwt_algorithm: JwtAlgorithm,
    /// `Scope`: replaces the derived scope.
    pub scope: Option<String>,
    /// `Prompt` for the authorize request (`select_account` by default).
    pub prompt: Option<String>,
    /// `BrowserCommand` (d365 extension; or `D365_BROWSER`): the program that opens the sign-in URL.
    pub browser_command: Option<String>,
    /// `CallerId`: the systemuserid to impersonate (`MSCRMCallerID`).
    pub caller_id: Option<Uuid>,
    /// `CallerObjectId`: the Entra object id to impersonate (`CallerObjectId`).
    pub caller_object_id: Option<Uuid>,
    /// `Timeout` (default 60 s); `None` = no timeout (`Timeout=0`).
    pub timeout: Option<Duration>,
    /// `SSLServerCert` (or `SSL_CERT_FILE`): a PEM file path or inline PEM of extra trusted roots.
    pub ssl_server_cert: Option<String>,
    /// `ProxyServer` & co.
    pub proxy: Option<ProxyConfig>,
    /// `ProxyAutoDetect`: use the proxy of the process environment (`HTTPS_PROXY`, …).
    pub proxy_auto_detect: bool,
    /// `User`: the user name of the AD FS password grant (`AuthScheme=ADFS`).
    pub user: Option<String>,
    /// `Password`: that user's password.
    pub password: Option<Secret>,
    /// `ADFSServer`: the AD FS server of an on-premises Finance & Operations environment
    /// (`https://adfs.contoso.com`; a pasted `…/adfs` path is accepted).
    pub adfs_server: Option<Url>,
    /// Properties for the Web API client and the SQL layer, by canonical name.
    pub pass_through: BTreeMap<&'static str, String>,
    /// Canonical names of properties filled from environment variables.
    pub from_environment: Vec<&'static str>,
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("organization_url", &self.organization_url.as_str())
            .field("edition", &self.edition)
            .field("auth_scheme", &self.auth_scheme)
            .field("initiate_oauth", &self.initiate_oauth)
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("verifier", &self.verifier)
            .field("settings_location", &self.settings_location)
            .field("callback_url", &self.callback_url)
            .field("tenant", &self.tenant)
            .field("azure_environment", &self.azure_environment)
            .field("authority_host", &self.authority_host.as_ref().map(Url::as_str))
            .field(
                "jwt_cert",
                &self.jwt_cert.as_ref().map(|c| if c.contains("-----BEGIN") { "<inline PEM>" } else { c }),
            )
            .field("jwt_cert_type", &self.jwt_cert_type)
            .field("jwt_cert_password", &self.jwt_cert_password)
            .field("scope", &self.scope)
            .field("caller_id", &self.caller_id)
            .field("caller_object_id", &self.caller_object_id)
            .field("timeout", &self.timeout)
            .field("proxy", &self.proxy)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("adfs_server", &self.adfs_server.as_ref().map(Url::as_str))
            .field("pass_through", &self.pass_through.keys().collect::<Vec<_>>())
            .field("from_environment", &self.from_environment)
            .finish_non_exhaustive()
    }
}

/// The values given, by canonical property name (last one wins, blank = unset).
struct Given {
    values: BTreeMap<&'static str, String>,
}

impl Given {
    fn get(&self, name: &'static str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn parse<T>(
        &self,
        name: &'static str,
        f: impl FnOnce(&str) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name).map(f).transpose()
    }

    fn secret(&self, name: &'static str) -> Option<Secret> {
        self.get(name).map(Secret::from)
    }
}

fn invalid(key: &'static str, value: &str, expected: &str) -> ConfigError {
    let value =
        if properties::lookup(&key.to_ascii_lowercase()).is_some_and(|p| p.secret) { "<redacted>" } else { value };
    ConfigError::InvalidValue { key, value: value.to_string(), expected: expected.to_string() }
}

/// Whether `url`'s host is a loopback name or address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// Parses an http(s) URL and refuses plain http unless loopback. A bare host gets `https://`.
pub fn parse_secure_url(key: &'static str, value: &str) -> Result<Url, ConfigError> {
    let v = value.trim();
    let with_scheme = if v.contains("://") { v.to_string() } else { format!("https://{v}") };
    let url = Url::parse(&with_scheme).map_err(|e| invalid(key, v, &format!("an https:// URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(key, "<redacted>", "a URL without user name or password"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(ConfigError::InsecureUrl { key, url: v.to_string() }),
        _ => return Err(invalid(key, v, "an https:// URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(key, v, "an https:// URL with a host"));
    }
    Ok(url)
}

fn parse_uuid(key: &'static str, v: &str) -> Result<Uuid, ConfigError> {
    Uuid::parse_str(v.trim()).map_err(|_| invalid(key, v, "a GUID such as 00000000-0000-0000-0000-000000000000"))
}

fn parse_int(key: &'static str, v: &str) -> Result<i64, ConfigError> {
    v.trim().parse::<i64>().map_err(|_| invalid(key, v, "a whole number"))
}

/// The organization URL without path, plus the API version found in a pasted Web API URL.
fn parse_org_url(v: &str) -> Result<(Url, Option<String>), ConfigError> {
    let mut url = parse_secure_url("OrganizationUrl", v)?;
    let path = url.path().trim_end_matches('/').to_string();
    let mut version = None;
    if !path.is_empty() {
        let lower = path.to_ascii_lowercase();
        match lower.strip_prefix("/api/data") {
            Some(rest) => version = rest.trim_start_matches('/').strip_prefix('v').map(str::to_string),
            None => {
                return Err(invalid(
                    "OrganizationUrl",
                    v,
                    "the environment URL without a path, such as https://org.crm.dynamics.com",
                ));
            }
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("OrganizationUrl", v, "the environment URL without query or fragment"));
    }
    url.set_path("/");
    Ok((url, version.filter(|v| !v.is_empty())))
}

/// A Finance & Operations environment URL: `https://env.operations.dynamics.com`, a path kept
/// (an environment behind a path, the Human Resources legacy
/// `https://{cluster}.hr.talent.dynamics.com/namespaces/{guid}`); a pasted service root
/// (`…/data`) or metadata path is trimmed back to the environment.
fn parse_finops_url(v: &str) -> Result<Url, ConfigError> {
    let mut url = parse_secure_url("OrganizationUrl", v)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("OrganizationUrl", v, "the environment URL without query or fragment"));
    }
    let mut path = url.path().trim_end_matches('/').to_string();
    for tail in ["/data", "/Metadata"] {
        if path.len() >= tail.len() && path[path.len() - tail.len()..].eq_ignore_ascii_case(tail) {
            path.truncate(path.len() - tail.len());
        }
    }
    if path.split('/').any(|seg| seg.eq_ignore_ascii_case("data") || seg.eq_ignore_ascii_case("metadata")) {
        return Err(invalid(
            "OrganizationUrl",
            v,
            "the environment URL, such as https://env.operations.dynamics.com (without /data/<entity>)",
        ));
    }
    url.set_path(&format!("{path}/"));
    Ok(url)
}

fn parse_api_version(v: &str) -> Result<String, ConfigError> {
    let t = v.trim().trim_start_matches(['v', 'V']);
    let ok = t.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
    });
    if ok { Ok(t.to_string()) } else { Err(invalid("ApiVersion", v, "a version such as 9.2")) }
}

impl ConnectionConfig {
    /// The connection string to use: `arg` (the CLI's `--connection`), else `D365_CONNECTION`.
    pub fn connection_string(arg: Option<&str>, env: &Environment) -> Result<String, ConfigError> {
        match arg.filter(|a| !a.trim().is_empty()).or_else(|| env.get(CONNECTION_ENV)) {
            Some(s) => Ok(s.to_string()),
            None => Err(ConfigError::MissingKey {
                key: "a connection string",
                flow: "every command that talks to Dataverse".into(),
                alternatives: format!(
                    " (--connection \"OrganizationUrl=…;…\" or the {CONNECTION_ENV} environment variable)"
                ),
            }),
        }
    }

    /// Parses a connection string and completes it from `env`.
    pub fn parse(input: &str, env: &Environment) -> Result<Self, ConfigError> {
        Self::from_connection_string(&ConnectionString::parse(input)?, env)
    }

    /// Types an already split connection string and completes it from `env`.
    pub fn from_connection_string(cs: &ConnectionString, env: &Environment) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        let mut pass_through = BTreeMap::new();
        for pair in cs.pairs() {
            let Some(prop) = properties::lookup(&pair.normalized) else {
                return Err(ConfigError::UnknownKey {
                    key: pair.key.clone(),
                    suggestion: properties::suggest(&pair.key),
                });
            };
            let value = pair.value.trim();
            match prop.group {
                _ if value.is_empty() => {
                    values.remove(prop.name);
                    pass_through.remove(prop.name);
                }
                Group::SignIn => {
                    values.insert(prop.name, value.to_string());
                }
                Group::PassThrough => {
                    pass_through.insert(prop.name, value.to_string());
                }
                Group::Ignored => {
                    tracing::debug!(
                        property = prop.name,
                        "connection property accepted for CData compatibility and ignored"
                    );
                }
            }
        }
        let mut given = Given { values };
        let mut from_environment = Vec::new();

        let auth_scheme = given.parse("AuthScheme", AuthScheme::parse)?.unwrap_or(AuthScheme::AzureAd);
        let grant_type = given.parse("OAuthGrantType", GrantType::parse)?.unwrap_or(GrantType::Code);
        let app_only = matches!(auth_scheme, AuthScheme::AzureServicePrincipal | AuthScheme::AzureServicePrincipalCert)
            || (auth_scheme == AuthScheme::AzureAd && grant_type == GrantType::Client);
        // azure-identity fallbacks: identity for every flow, credentials for app-only flows
        let mut fallbacks: Vec<(&'static str, &'static str)> = vec![
            ("AzureTenant", "AZURE_TENANT_ID"),
            ("OAuthClientId", "AZURE_CLIENT_ID"),
            ("AzureAuthorityHost", "AZURE_AUTHORITY_HOST"),
            ("SSLServerCert", "SSL_CERT_FILE"),
            ("BrowserCommand", "D365_BROWSER"),
        ];
        if app_only {
            let has_credential =
                ["OAuthClientSecret", "OAuthJWTCert", "AzureFederatedTokenFile"].iter().any(|k| given.get(k).is_some());
            if !has_credential {
                fallbacks.extend([
                    ("OAuthClientSecret", "AZURE_CLIENT_SECRET"),
                    ("OAuthJWTCert", "AZURE_CLIENT_CERTIFICATE_PATH"),
                    ("OAuthJWTCertPassword", "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
                    ("AzureFederatedTokenFile", "AZURE_FEDERATED_TOKEN_FILE"),
                ]);
            }
        }
        for (prop, var) in fallbacks {
            if given.get(prop).is_none()
                && let Some(v) = env.get(var)
            {
                given.values.insert(prop, v.trim().to_string());
                from_environment.push(prop);
            }
        }

        let Some(org) = given.get("OrganizationUrl") else {
            return Err(ConfigError::MissingKey {
                key: "OrganizationUrl",
                flow: "every connection".into(),
                alternatives: " (the environment URL, such as https://org.crm.dynamics.com)".into(),
            });
        };
        let edition = given.parse("Edition", Edition::parse)?.unwrap_or(Edition::Sales);
        let (organization_url, version_in_url) =
            if edition.is_dataverse() { parse_org_url(org)? } else { (parse_finops_url(org)?, None) };
        let adfs_server = match given.get("ADFSServer") {
            Some(v) => Some(parse_secure_url("ADFSServer", v)?),
            None => None,
        };
        let api_version = match given.get("ApiVersion") {
            Some(v) => parse_api_version(v)?,
            None => match version_in_url {
                Some(v) => parse_api_version(&v)?,
                None => "9.2".to_string(),
            },
        };
        let callback_url = match given.get("CallbackURL") {
            Some(v) => {
                let u = Url::parse(v)
                    .map_err(|e| invalid("CallbackURL", v, &format!("a URL such as {DEFAULT_CALLBACK_URL} ({e})")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(invalid("CallbackURL", v, "an http:// or https:// URL"));
                }
                v.to_string()
            }
            None => DEFAULT_CALLBACK_URL.to_string(),
        };
        let timeout = match given.get("Timeout") {
            None => Some(DEFAULT_TIMEOUT),
            Some(v) => match parse_int("Timeout", v)? {
                0 => None,
                n if n > 0 => Some(Duration::from_secs(n as u64)),
                _ => return Err(invalid("Timeout", v, "seconds, 0 for none")),
            },
        };
        if let Some(s) = given.get("SSLServerCert") {
            let t = s.trim();
            if t == "*" {
                return Err(ConfigError::NotSupported(
                    "SSLServerCert=* (accept any certificate) is not supported: give the PEM of the CA or server certificate to trust (a file path or the PEM text)".into(),
                ));
            }
            if t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::NotSupported(
                    "SSLServerCert as a thumbprint is not supported: give the PEM of the CA or server certificate to trust (a file path or the PEM text)".into(),
                ));
            }
        }
        let proxy = match given.get("ProxyServer") {
            None => None,
            Some(server) => {
                let port = match given.get("ProxyPort") {
                    Some(p) => p.trim().parse::<u16>().map_err(|_| invalid("ProxyPort", p, "a port number"))?,
                    None => 80,
                };
                match given.get("ProxyAuthScheme").map(|s| s.trim().to_ascii_uppercase()) {
                    None => {}
                    Some(s) if s == "BASIC" || s == "NONE" => {}
                    Some(s) => {
                        return Err(ConfigError::NotSupported(format!(
                            "ProxyAuthScheme={s} is not supported: use BASIC (with ProxyUser/ProxyPassword) or NONE"
                        )));
                    }
                }
                Some(ProxyConfig {
                    server: server.to_string(),
                    port,
                    user: given.get("ProxyUser").map(str::to_string),
                    password: given.secret("ProxyPassword"),
                    exceptions: given.get("ProxyExceptions").map(str::to_string),
                })
            }
        };
        if let Some(f) = given.get("FirewallType")
            && !f.trim().eq_ignore_ascii_case("NONE")
        {
            return Err(ConfigError::NotSupported(format!(
                "FirewallType={f} is not supported: use an HTTP proxy (ProxyServer/ProxyPort)"
            )));
        }
        let jwt_cert = given.get("OAuthJWTCert").map(str::to_string);
        let jwt_cert_type = match given.parse("OAuthJWTCertType", CertType::parse)? {
            Some(t) => Some(t),
            None => jwt_cert.as_deref().map(CertType::infer),
        };
        let prompt = match given.get("Prompt") {
            None => None,
            Some(p) => {
                let l = p.trim().to_ascii_lowercase();
                if !matches!(l.as_str(), "select_account" | "login" | "consent" | "none") {
                    return Err(invalid("Prompt", p, "select_account, login, consent or none"));
                }
                Some(l)
            }
        };
        Ok(Self {
            organization_url,
            edition,
            api_version,
            auth_scheme,
            initiate_oauth: given.parse("InitiateOAuth", InitiateOAuth::parse)?,
            grant_type,
            client_id: given.get("OAuthClientId").map(|c| c.trim().to_string()),
            client_secret: given.secret("OAuthClientSecret"),
            access_token: given.secret("OAuthAccessToken"),
            refresh_token: given.secret("OAuthRefreshToken"),
            verifier: given.secret("OAuthVerifier"),
            settings_location: given.get("OAuthSettingsLocation").map(str::to_string),
            expires_in: given.parse("OAuthExpiresIn", |v| parse_int("OAuthExpiresIn", v))?,
            token_timestamp_ms: given.parse("OAuthTokenTimestamp", |v| parse_int("OAuthTokenTimestamp", v))?,
            callback_url,
            tenant: given.get("AzureTenant").map(|t| t.trim().to_string()),
            azure_environment: given.parse("AzureEnvironment", |v| {
                AzureEnvironment::parse(v).ok_or_else(|| invalid("AzureEnvironment", v, AzureEnvironment::ALLOWED))
            })?,
            authority_host: given.parse("AzureAuthorityHost", |v| {
                let mut u = parse_secure_url("AzureAuthorityHost", v)?;
                u.set_path("/");
                Ok(u)
            })?,
            federated_token_file: given.get("AzureFederatedTokenFile").map(PathBuf::from),
            msi_endpoint: given.parse("AzureMSIEndpoint", |v| {
                let u = Url::parse(v).map_err(|e| invalid("AzureMSIEndpoint", v, &format!("a URL ({e})")))?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(invalid("AzureMSIEndpoint", v, "an http:// or https:// URL"));
                }
                Ok(u)
            })?,
            jwt_cert,
            jwt_cert_type,
            jwt_cert_password: given.secret("OAuthJWTCertPassword"),
            jwt_cert_subject: given.get("OAuthJWTCertSubject").map(str::to_string),
            jwt_key: given.get("OAuthJWTKey").map(str::to_string),
            jwt_algorithm: given.parse("OAuthJWTAlgorithm", JwtAlgorithm::parse)?.unwrap_or_default(),
            scope: given.get("Scope").map(str::to_string),
            prompt,
            browser_command: given.get("BrowserCommand").map(str::to_string),
            caller_id: given.parse("CallerId", |v| parse_uuid("CallerId", v))?,
            caller_object_id: given.parse("CallerObjectId", |v| parse_uuid("CallerObjectId", v))?,
            timeout,
            ssl_server_cert: given.get("SSLServerCert").map(str::to_string),
            proxy,
            proxy_auto_detect: given.parse("ProxyAutoDetect", |v| parse_bool("ProxyAutoDetect", v))?.unwrap_or(false),
            user: given.get("User").map(str::to_string),
            password: given.secret("Password"),
            adfs_server,
            pass_through,
            from_environment,
        })
    }

    /// The token resource: the organization URL without trailing slash
    /// (`https://org.crm.dynamics.com`, `https://env.operations.dynamics.com`), or for the
    /// Human Resources legacy URL (`…/namespaces/{guid}`) the Human Resources resource
    /// `http://hr.talent.dynamics.com`.
    pub fn resource(&self) -> String {
        if self.is_hr_legacy() {
            return HR_LEGACY_RESOURCE.to_string();
        }
        self.organization_url.as_str().trim_end_matches('/').to_string()
    }

    /// Whether the URL is the standalone Human Resources form (`…/namespaces/{guid}`).
    pub fn is_hr_legacy(&self) -> bool {
        self.edition == Edition::HumanResources
            && self
                .organization_url
                .path()
                .trim_matches('/')
                .split('/')
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case("namespaces"))
    }

    /// The root of the data service: the Web API for the Dataverse editions, `{url}/data/`
    /// for Finance & Operations and Human Resources.
    pub fn service_root(&self) -> String {
        if self.edition.is_dataverse() {
            self.web_api_url()
        } else {
            format!("{}/data/", self.organization_url.as_str().trim_end_matches('/'))
        }
    }

    /// The Web API root (`https://org.crm.dynamics.com/api/data/v9.2/`).
    pub fn web_api_url(&self) -> String {
        format!("{}/api/data/v{}/", self.resource(), self.api_version)
    }

    /// The scope of app-only flows: `Scope`, else `{org}/.default`.
    pub fn app_scope(&self) -> String {
        self.scope.clone().unwrap_or_else(|| format!("{}/.default", self.resource()))
    }

    /// The scope of delegated flows: `Scope` (plus `offline_access` when missing), else
    /// `{org}/user_impersonation offline_access openid profile`.
    pub fn delegated_scope(&self) -> String {
        match &self.scope {
            Some(s) if s.split_whitespace().any(|x| x.eq_ignore_ascii_case("offline_access")) => s.clone(),
            Some(s) => format!("{s} offline_access"),
            // Finance & Operations' delegated permissions are several (`Odata.FullAccess`, …):
            // `.default` asks for those the app was granted.
            None if !self.edition.is_dataverse() && !self.is_hr_legacy() => {
                format!("{}/.default offline_access openid profile", self.resource())
            }
            None => format!("{}/user_impersonation offline_access openid profile", self.resource()),
        }
    }

    /// A pass-through property (for the Web API client / SQL layer), by any spelling.
    pub fn property(&self, name: &str) -> Option<&str> {
        let p = properties::lookup(&crate::connection_string::normalize_key(name))?;
        self.pass_through.get(p.name).map(String::as_str)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
