//! Tenant discovery from the Web API's 401 challenge (reference `entra-id-oauth.md` §8.3): an
//! unauthenticated `GET {org}/api/data/v9.2/` answers
//! `WWW-Authenticate: Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize, resource_id=https://org.crm.dynamics.com/`.

use url::Url;

use crate::AuthError;

/// What the challenge revealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredAuthority {
    /// The authority host (`https://login.microsoftonline.com`): reveals the cloud.
    pub authority_host: Url,
    /// The tenant id.
    pub tenant: String,
    /// `resource_id`, when given.
    pub resource: Option<String>,
}

/// Parses a `WWW-Authenticate: Bearer …` value (parameters quoted or not).
pub fn parse_challenge(header: &str) -> Option<DiscoveredAuthority> {
    let h = header.trim();
    let rest = h.get(..6).filter(|s| s.eq_ignore_ascii_case("bearer")).map(|_| &h[6..])?;
    let mut uri = None;
    let mut resource = None;
    for part in rest.split(',') {
        let Some((k, v)) = part.split_once('=') else { continue };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization_uri" | "authorization" => uri = Some(v),
            "resource_id" | "resource" => resource = Some(v),
            _ => {}
        }
    }
    let uri = Url::parse(&uri?).ok()?;
    let tenant = uri.path_segments()?.next().filter(|t| !t.is_empty())?.to_string();
    let mut host = uri.clone();
    host.set_path("/");
    host.set_query(None);
    Some(DiscoveredAuthority { authority_host: host, tenant, resource })
}

/// Asks the Web API at `org_url` who its tenant is.
pub async fn discover_tenant(
    http: &reqwest::Client,
    org_url: &str,
    api_version: &str,
) -> Result<DiscoveredAuthority, AuthError> {
    let url = format!("{}/api/data/v{api_version}/", org_url.trim_end_matches('/'));
    let fail = |message: String| AuthError::TenantDiscovery { url: url.clone(), message };
    let resp = http.get(&url).send().await.map_err(|e| fail(crate::error::error_chain(&e)))?;
    let status = resp.status().as_u16();
    let header =
        resp.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_string);
    if status != 401 {
        return Err(fail(format!("expected HTTP 401 with a WWW-Authenticate challenge, got HTTP {status}")));
    }
    let header = header.ok_or_else(|| fail("the 401 answer has no WWW-Authenticate header".into()))?;
    let found = parse_challenge(&header)
        .ok_or_else(|| fail("the WWW-Authenticate header names no authorization_uri".into()))?;
    tracing::debug!(tenant = %found.tenant, authority = %found.authority_host, "tenant discovered from the Web API challenge");
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_unquoted() {
        let d = parse_challenge("Bearer authorization_uri=https://login.microsoftonline.com/8eaef023-2b34-4da1-9baa-8bc8c9d6a490/oauth2/authorize, resource_id=https://org.crm.dynamics.com/").unwrap();
        assert_eq!(d.tenant, "8eaef023-2b34-4da1-9baa-8bc8c9d6a490");
        assert_eq!(d.authority_host.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(d.resource.as_deref(), Some("https://org.crm.dynamics.com/"));
        let d = parse_challenge("bearer authorization_uri=\"https://login.microsoftonline.us/t1/oauth2/authorize\"")
            .unwrap();
        assert_eq!(d.tenant, "t1");
        assert!(parse_challenge("Basic realm=x").is_none());
        assert!(parse_challenge("Bearer").is_none());
    }
}
