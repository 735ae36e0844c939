//! Scope parsing (reference §4.1, §6).
//!
//! * App-only (client credentials, managed identity): exactly one `{resource}/.default`, and
//!   the resource must be one of the resources below.
//! * Delegated: `{resource}/user_impersonation` or `{resource}/.default`, plus the OpenID Connect
//!   scopes `openid`, `profile`, `email`, `offline_access`.
//!
//! The resource principals in the emulated tenant are the Dataverse environment, the Finance
//! & Operations online environment (`{base}/fno`), each under any of its URL spellings, and
//! the Human Resources legacy resource `http://hr.talent.dynamics.com`. Any other resource,
//! including Microsoft Graph (the implicit resource of bare scope names like `User.Read`), is
//! refused with AADSTS500011.

use super::errors::AadError;
use crate::state::Shared;

/// Microsoft Graph's resource URI (the resource of bare scope names).
const GRAPH: &str = "https://graph.microsoft.com";

/// The OpenID Connect scopes.
const OIDC: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A validated delegated scope request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet {
    /// The Dataverse resource as requested (no trailing slash), when a resource scope was asked.
    pub resource: Option<String>,
    /// `openid` was asked (ID token).
    pub openid: bool,
    /// `profile` was asked.
    pub profile: bool,
    /// `email` was asked.
    pub email: bool,
    /// `offline_access` was asked (refresh token).
    pub offline_access: bool,
}

impl ScopeSet {
    /// The granted scopes as the token response's `scope` field lists them.
    pub fn granted(&self) -> String {
        let mut out = Vec::new();
        if let Some(r) = &self.resource {
            out.push(format!("{r}/user_impersonation"));
        }
        for (on, name) in [(self.openid, "openid"), (self.profile, "profile"), (self.email, "email")] {
            if on {
                out.push(name.to_string());
            }
        }
        out.join(" ")
    }

    /// Human-readable permission lines for the consent page.
    pub fn permissions(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = &self.resource {
            out.push(format!("Access Dynamics 365 as organization users ({r}/user_impersonation)"));
        }
        if self.openid {
            out.push("Sign you in (openid)".into());
        }
        if self.profile {
            out.push("View your basic profile (profile)".into());
        }
        if self.email {
            out.push("View your email address (email)".into());
        }
        if self.offline_access {
            out.push("Maintain access to data you have given it access to (offline_access)".into());
        }
        out
    }
}

fn split_resource(scope: &str) -> Option<(&str, &str)> {
    let i = scope.rfind('/')?;
    let (res, perm) = (&scope[..i], &scope[i + 1..]);
    (!res.is_empty() && !perm.is_empty()).then_some((res.trim_end_matches('/'), perm))
}

fn tenant_name(state: &Shared) -> &str {
    &state.config.tenant.name
}

/// Parses a delegated scope parameter.
pub fn parse_delegated(state: &Shared, raw: &str) -> Result<ScopeSet, AadError> {
    let mut set = ScopeSet::default();
    let mut any = false;
    for s in raw.split_whitespace() {
        any = true;
        if let Some(o) = OIDC.iter().find(|o| o.eq_ignore_ascii_case(s)) {
            match *o {
                "openid" => set.openid = true,
                "profile" => set.profile = true,
                "email" => set.email = true,
                _ => set.offline_access = true,
            }
            continue;
        }
        let Some((resource, perm)) = split_resource(s) else {
            // A bare scope name is a Microsoft Graph permission.
            return Err(AadError::unknown_resource(GRAPH, tenant_name(state)));
        };
        if !state.urls.is_entra_resource(resource) {
            return Err(AadError::unknown_resource(resource, tenant_name(state)));
        }
        if !perm.eq_ignore_ascii_case("user_impersonation") && perm != ".default" {
            return Err(AadError::invalid_scope(raw));
        }
        if set.resource.is_none() {
            set.resource = Some(resource.to_string());
        }
    }
    if !any {
        return Err(AadError::missing("scope"));
    }
    Ok(set)
}

/// Parses an app-only scope parameter: returns the resource (no trailing slash).
pub fn parse_app_only(state: &Shared, raw: &str) -> Result<String, AadError> {
    let items: Vec<&str> = raw.split_whitespace().collect();
    if items.is_empty() {
        return Err(AadError::missing("scope"));
    }
    if items.iter().any(|s| OIDC.iter().any(|o| o.eq_ignore_ascii_case(s))) {
        return Err(AadError::invalid_scope(raw));
    }
    let mut resources: Vec<&str> = Vec::new();
    for s in &items {
        match split_resource(s) {
            Some((res, ".default")) => {
                if !resources.iter().any(|r| r.eq_ignore_ascii_case(res)) {
                    resources.push(res);
                }
            }
            _ => {
                return Err(AadError::new(
                    "invalid_scope",
                    1002012,
                    format!(
                        "The provided value for scope {s} is not valid. Client credential flows must have a scope \
                         value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                ));
            }
        }
    }
    if resources.len() > 1 {
        return Err(AadError::new(
            "invalid_scope",
            700022,
            format!(
                "The provided value for the input parameter scope is not valid because it contains more than one \
                 resource. The scope {raw} is not valid."
            ),
        ));
    }
    let resource = resources[0];
    if !state.urls.is_entra_resource(resource) {
        return Err(AadError::unknown_resource(resource, tenant_name(state)));
    }
    Ok(resource.to_string())
}
