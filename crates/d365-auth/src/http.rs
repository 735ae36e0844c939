//! The HTTP client of the sign-in layer (reqwest 0.13, rustls with aws-lc-rs): trusts the
//! system roots plus `SSLServerCert` / `SSL_CERT_FILE` (a PEM file or inline PEM, e.g. the
//! emulator's CA), applies `Timeout` and the proxy settings, and never follows redirects
//! (token endpoints do not redirect; tenant discovery must see the 401 itself). There is no
//! switch to turn certificate checks off.

use reqwest::{Certificate, Client, ClientBuilder};

use crate::config::{ConnectionConfig, ProxyConfig};
use crate::{AuthError, ConfigError};

/// The user agent sent with every request.
pub const USER_AGENT: &str = concat!("d365/", env!("CARGO_PKG_VERSION"));

/// Reads the extra trusted roots of `SSLServerCert`: inline PEM text, or the path of a PEM file
/// (one or more certificates).
pub fn extra_roots(ssl_server_cert: &str) -> Result<Vec<Certificate>, ConfigError> {
    roots_from("SSLServerCert", ssl_server_cert)
}

fn roots_from(label: &str, ssl_server_cert: &str) -> Result<Vec<Certificate>, ConfigError> {
    let (pem, origin) = if ssl_server_cert.contains("-----BEGIN") {
        (ssl_server_cert.as_bytes().to_vec(), "the inline PEM".to_string())
    } else {
        let path = ssl_server_cert.trim();
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError::Invalid(format!("{label}: cannot read the certificate file {path}: {e}")))?;
        (bytes, path.to_string())
    };
    let blocks = pem::parse_many(&pem)
        .map_err(|e| ConfigError::Invalid(format!("{label}: {origin} is not PEM certificates: {e}")))?;
    let mut certs = Vec::new();
    for b in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        if x509_parser::parse_x509_certificate(b.contents()).is_err() {
            return Err(ConfigError::Invalid(format!(
                "SSLServerCert: {origin} holds a certificate that does not parse"
            )));
        }
        certs.push(
            Certificate::from_der(b.contents()).map_err(|e| ConfigError::Invalid(format!("{label}: {origin}: {e}")))?,
        );
    }
    if certs.is_empty() {
        return Err(ConfigError::Invalid(format!("{label}: {origin} holds no PEM certificate")));
    }
    Ok(certs)
}

fn proxy(p: &ProxyConfig) -> Result<reqwest::Proxy, ConfigError> {
    let url = format!("http://{}:{}", p.server, p.port);
    let mut proxy = reqwest::Proxy::all(&url)
        .map_err(|e| ConfigError::Invalid(format!("ProxyServer/ProxyPort: {url} is not a usable proxy: {e}")))?;
    if let Some(user) = &p.user {
        proxy = proxy.basic_auth(user, p.password.as_ref().map(|s| s.expose()).unwrap_or_default());
    }
    if let Some(ex) = &p.exceptions {
        proxy = proxy.no_proxy(reqwest::NoProxy::from_string(&ex.replace(';', ",")));
    }
    Ok(proxy)
}

/// A client builder with the connection's trust, timeout and proxy settings.
pub fn client_builder(config: &ConnectionConfig) -> Result<ClientBuilder, ConfigError> {
    let mut b = Client::builder().user_agent(USER_AGENT).redirect(reqwest::redirect::Policy::none());
    if let Some(t) = config.timeout {
        b = b.timeout(t).connect_timeout(t);
    }
    if let Some(s) = &config.ssl_server_cert {
        let label = if config.from_environment.contains(&"SSLServerCert") { "SSL_CERT_FILE" } else { "SSLServerCert" };
        b = b.tls_certs_merge(roots_from(label, s)?);
    }
    b = match &config.proxy {
        Some(p) => b.proxy(proxy(p)?),
        None if config.proxy_auto_detect => b,
        None => b.no_proxy(),
    };
    Ok(b)
}

/// The client used for Entra ID requests.
pub fn client(config: &ConnectionConfig) -> Result<Client, AuthError> {
    let b = client_builder(config)?;
    b.build().map_err(|e| {
        AuthError::Config(ConfigError::Invalid(format!("cannot set up HTTPS: {}", crate::error::error_chain(&e))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Environment;

    #[test]
    fn bad_ssl_server_cert_is_a_clear_error() {
        let e = extra_roots("/nonexistent/ca.pem").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e =
            extra_roots("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n").unwrap_err().to_string();
        assert!(e.contains("inline PEM"), "{e}");
        let cfg = ConnectionConfig::parse(
            "OrganizationUrl=https://x.crm.dynamics.com;ProxyServer=proxy.local;ProxyPort=3128;ProxyUser=u;ProxyPassword=p",
            &Environment::empty(),
        )
        .unwrap();
        client(&cfg).unwrap();
    }
}
