//! Who is calling an F&O environment. Each environment takes its own tokens:
//!
//! * online (`/fno`): Entra ID tokens with `aud = {base}/fno`;
//! * Human Resources legacy (`/namespaces/{guid}`): Entra ID tokens with
//!   `aud = http://hr.talent.dynamics.com` (or `{base}/fno`);
//! * on-premises (`/fno-onprem`): AD FS tokens with `aud = {base}/fno-onprem`, `iss = {base}/adfs`.
//!
//! A token for another audience (a Dataverse token, say) is refused with 401. An app-only
//! token must come from an app in the Entra-applications registry ([`super::registry`]), and a
//! user token from a user F&O knows (by UPN alias); otherwise 401 too. The exact status the
//! real service answers for an unregistered app is unconfirmed (401 or 403 are both reported).

use super::error::{FnoError, FnoResult};
use super::registry::{FnoUser, user_for_sign_in};
use crate::state::Shared;
use axum::http::{HeaderMap, header};

/// The environment a request is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// `{base}/fno`.
    Online,
    /// `{base}/fno-onprem`.
    OnPrem,
    /// `{base}/namespaces/{guid}`.
    HrLegacy,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The F&O user the request runs as.
    pub user: &'static FnoUser,
    /// Client id of the calling app.
    pub app_id: String,
    /// Service-protection key: the token's object id plus client id (as F&O keys its limits).
    pub limit_key: String,
}

impl Caller {
    /// The company reads default to.
    pub fn company(&self) -> &'static str {
        self.user.default_company
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn refused(state: &Shared, env: Env, why: &str) -> FnoError {
    let authorize = match env {
        Env::OnPrem => format!("{}/oauth2/authorize", state.urls.adfs),
        _ => format!("{}/{}/oauth2/authorize", state.urls.authority, state.config.tenant.id),
    };
    FnoError::unauthorized(format!("Authorization has been denied for this request. {why}"))
        .with_header(header::WWW_AUTHENTICATE, format!("Bearer authorization_uri={authorize}"))
}

/// Authenticates a request to `env`.
pub fn authenticate(state: &Shared, env: Env, headers: &HeaderMap) -> FnoResult<Caller> {
    let token = bearer(headers).ok_or_else(|| refused(state, env, "No bearer token was presented."))?;
    let now = state.clock.unix();
    let skew = i64::try_from(state.options.token_clock_skew.as_secs()).unwrap_or(300);
    let (app_id, oid, upn) = match env {
        Env::OnPrem => {
            let c = crate::adfs::token::validate(
                &state.adfs_key,
                token,
                &state.urls.adfs,
                &state.urls.fno_onprem_aliases,
                now,
                skew,
            )
            .map_err(|e| refused(state, env, &format!("The token is not valid here: {e}.")))?;
            (c.appid.clone(), c.upn.clone().unwrap_or_else(|| c.appid.clone()), c.upn)
        }
        Env::Online | Env::HrLegacy => {
            let mut audiences = state.urls.fno_aliases.clone();
            if env == Env::HrLegacy {
                audiences.push(crate::state::HR_RESOURCE.to_string());
            }
            let c = crate::token::validate_access_token(
                &state.signing_key,
                token,
                &audiences,
                &state.config.tenant.id.to_string(),
                now,
                skew,
            )
            .map_err(|e| refused(state, env, &format!("The token is not valid here: {e}.")))?;
            let upn = if c.is_app_only() { None } else { c.upn.clone() };
            (c.appid.clone(), c.oid.clone(), upn)
        }
    };
    let user = match &upn {
        Some(upn) => user_for_sign_in(upn)
            .ok_or_else(|| refused(state, env, &format!("The user '{upn}' is not a user of this environment.")))?,
        None => state.fno.registry.app(&app_id).map(|r| r.user).ok_or_else(|| {
            refused(
                state,
                env,
                &format!(
                    "The application '{app_id}' is not registered in System administration > Setup > \
                         Microsoft Entra ID applications."
                ),
            )
        })?,
    };
    Ok(Caller { user, limit_key: format!("fno|{oid}|{app_id}"), app_id })
}
