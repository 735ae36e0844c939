//! Who is calling: bearer-token validation (401 with the `WWW-Authenticate` challenge that
//! clients use for tenant discovery), mapping the token to a Dataverse user, impersonation
//! (`CallerObjectId` / `MSCRMCallerID`) and privilege checks (403 with the privilege error).

use super::error::{DvError, DvResult};
use crate::schema::Table;
use crate::security::{Access, RoleSet};
use crate::state::Shared;
use crate::store::seed_ids;
use crate::token::{AccessClaims, validate_access_token};
use axum::http::{HeaderMap, StatusCode, header};

/// A Dataverse principal (user or application user).
#[derive(Debug, Clone)]
pub struct Principal {
    /// systemuserid.
    pub systemuserid: String,
    /// Entra object id.
    pub object_id: String,
    /// Business unit.
    pub business_unit: String,
    /// Security roles.
    pub roles: RoleSet,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user the request acts as (the impersonated user when impersonating).
    pub user: Principal,
    /// The real caller when impersonating.
    pub impersonator: Option<Principal>,
    /// The validated token.
    pub claims: AccessClaims,
}

impl Caller {
    /// Checks `access` on `table`: both the user and (when impersonating) the impersonator
    /// must hold the privilege.
    pub fn check(&self, table: &Table, access: Access) -> DvResult<()> {
        for p in std::iter::once(&self.user).chain(self.impersonator.as_ref()) {
            if !p.roles.grants(&table.logical_name, access) {
                return Err(privilege_error(p, table, access, self));
            }
        }
        Ok(())
    }

    /// Checks a customization privilege (`prvCreateAttribute`), held by the System Administrator
    /// and System Customizer roles; when impersonating, both principals need it. The 403 has
    /// the shape of the platform's missing-privilege error (exact text of the real service
    /// unconfirmed).
    pub fn check_customization(&self, privilege: &str) -> DvResult<()> {
        for p in std::iter::once(&self.user).chain(self.impersonator.as_ref()) {
            if !p.roles.can_customize() {
                let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, privilege.as_bytes());
                return Err(missing_privilege(p, self, &format!("{privilege} privilege (Id={id})")));
            }
        }
        Ok(())
    }

    /// The systemuserid recorded as `createdonbehalfby` / `modifiedonbehalfby`.
    pub fn on_behalf_of(&self) -> Option<&str> {
        self.impersonator.as_ref().map(|p| p.systemuserid.as_str())
    }
}

/// The platform's missing-privilege 403 for principal `p` of `caller`; `what` names the
/// privilege (and the table, when there is one).
fn missing_privilege(p: &Principal, caller: &Caller, what: &str) -> DvError {
    DvError::new(
        StatusCode::FORBIDDEN,
        "0x80040220",
        format!(
            "Principal user (Id={}, type=8, roleCount={}, privilegeCount={}, accessMode=0), is missing {what}. context.Caller={}",
            p.systemuserid,
            p.roles.len(),
            p.roles.0.iter().map(|r| r.tables.len()).sum::<usize>(),
            caller.impersonator.as_ref().unwrap_or(&caller.user).systemuserid,
        ),
    )
}

fn privilege_error(p: &Principal, table: &Table, access: Access, caller: &Caller) -> DvError {
    let privilege = table.privilege_name(access);
    let privilege_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, privilege.as_bytes());
    let what = format!(
        "{privilege} privilege (Id={privilege_id}) on OTC={} for entity '{}'",
        table.object_type_code, table.logical_name
    );
    missing_privilege(p, caller, &what)
}

/// Every principal the configuration defines: users and application users.
pub fn principals(state: &Shared) -> Vec<Principal> {
    let bu = state.config.dataverse.business_unit_id.to_string();
    let mut out: Vec<Principal> = state
        .config
        .users
        .iter()
        .map(|u| Principal {
            systemuserid: u.systemuser_id.to_string(),
            object_id: u.object_id.to_string(),
            business_unit: bu.clone(),
            roles: RoleSet::from_names(&u.roles),
        })
        .collect();
    out.extend(state.config.apps.iter().filter(|a| !a.application_user_roles.is_empty()).map(|a| Principal {
        systemuserid: seed_ids::application_user_id(a.client_id).to_string(),
        object_id: seed_ids::service_principal_id(a.client_id).to_string(),
        business_unit: bu.clone(),
        roles: RoleSet::from_names(&a.application_user_roles),
    }));
    out
}

/// The 401 answer with the authority challenge.
pub fn unauthorized(state: &Shared) -> DvError {
    let challenge = format!(
        "Bearer authorization_uri={}/{}/oauth2/authorize, resource_id={}/",
        state.urls.authority, state.config.tenant.id, state.urls.org_url
    );
    DvError::new(StatusCode::UNAUTHORIZED, "", "").with_header(header::WWW_AUTHENTICATE, challenge)
}

/// Authenticates a request and resolves impersonation.
pub fn authenticate(state: &Shared, headers: &HeaderMap) -> DvResult<Caller> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| unauthorized(state))?;
    let claims = validate_access_token(
        &state.signing_key,
        token,
        &state.urls.org_aliases,
        &state.config.tenant.id.to_string(),
        state.clock.unix(),
        state.options.token_clock_skew.as_secs() as i64,
    )
    .map_err(|e| {
        tracing::debug!("bearer token rejected: {e}");
        unauthorized(state)
    })?;
    let all = principals(state);
    let user = all.iter().find(|p| p.object_id == claims.oid).cloned().ok_or_else(|| {
        DvError::new(StatusCode::FORBIDDEN, "0x80072560", "The user is not a member of the organization.")
    })?;
    let by_oid = headers.get("callerobjectid").and_then(|v| v.to_str().ok()).map(str::trim);
    let by_id = headers.get("mscrmcallerid").and_then(|v| v.to_str().ok()).map(str::trim);
    let target = match (by_oid, by_id) {
        (Some(oid), _) => {
            Some(all.iter().find(|p| p.object_id.eq_ignore_ascii_case(oid)).cloned().ok_or_else(|| {
                DvError::new(
                    StatusCode::BAD_REQUEST,
                    "0x80040217",
                    format!("systemuser With azureactivedirectoryobjectid = {oid} Does Not Exist"),
                )
            })?)
        }
        (None, Some(id)) => {
            Some(all.iter().find(|p| p.systemuserid.eq_ignore_ascii_case(id)).cloned().ok_or_else(|| {
                DvError::new(StatusCode::NOT_FOUND, "0x80040217", format!("systemuser With Id = {id} Does Not Exist"))
            })?)
        }
        (None, None) => None,
    };
    match target {
        Some(t) if t.systemuserid != user.systemuserid => {
            if !user.roles.can_act_on_behalf() {
                // Error code as commonly observed for CannotActOnBehalfOfAnotherUser (unconfirmed in the docs).
                return Err(DvError::new(
                    StatusCode::FORBIDDEN,
                    "0x80040224",
                    format!(
                        "Principal user (Id={}, type=8) is missing prvActOnBehalfOfAnotherUser privilege; it cannot act on behalf of another user.",
                        user.systemuserid
                    ),
                ));
            }
            Ok(Caller { user: t, impersonator: Some(user), claims })
        }
        _ => Ok(Caller { user, impersonator: None, claims }),
    }
}

/// `prvBypassCustomBusinessLogic`: needed for `MSCRM.BypassBusinessLogicExecution` (its id is the
/// same in every environment).
pub const PRV_BYPASS_CUSTOM_BUSINESS_LOGIC: (&str, &str) =
    ("prvBypassCustomBusinessLogic", "0ea552b0-a491-4470-9a1b-82068deccf66");
/// `prvBypassCustomPlugins`: needed for the older `MSCRM.BypassCustomPluginExecution: true`.
pub const PRV_BYPASS_CUSTOM_PLUGINS: (&str, &str) = ("prvBypassCustomPlugins", "148a9eaf-d0c4-4196-9852-c3a38e35f6a1");

/// Honours the optional parameters that bypass custom business logic
/// (learn.microsoft.com/power-apps/developer/data-platform/bypass-custom-business-logic):
/// `MSCRM.BypassBusinessLogicExecution: CustomSync|CustomAsync|CustomSync,CustomAsync` needs
/// `prvBypassCustomBusinessLogic`, `MSCRM.BypassCustomPluginExecution: true` needs
/// `prvBypassCustomPlugins`; by default only System Administrators hold them. The emulator runs
/// no plug-ins, so honouring them means checking the privilege: a caller without it gets the
/// platform's missing-privilege error (403 `0x80040220`; exact text of the real service
/// unconfirmed). When impersonating, both the caller and the impersonated user need it.
pub fn check_bypass(caller: &Caller, headers: &HeaderMap) -> DvResult<()> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let mut needed = None;
    if let Some(v) = value("mscrm.bypassbusinesslogicexecution") {
        let valid = !v.is_empty()
            && v.split(',')
                .map(str::trim)
                .all(|p| p.eq_ignore_ascii_case("CustomSync") || p.eq_ignore_ascii_case("CustomAsync"));
        if !valid {
            return Err(DvError::new(
                StatusCode::BAD_REQUEST,
                "0x80040203",
                format!(
                    "Invalid value '{v}' for the BypassBusinessLogicExecution optional parameter: use CustomSync, CustomAsync or CustomSync,CustomAsync."
                ),
            ));
        }
        needed = Some(PRV_BYPASS_CUSTOM_BUSINESS_LOGIC);
    }
    if let Some(v) = value("mscrm.bypasscustompluginexecution") {
        if v.eq_ignore_ascii_case("true") {
            // With both headers the first privilege is named (the emulator's roles grant both
            // or neither).
            needed = needed.or(Some(PRV_BYPASS_CUSTOM_PLUGINS));
        } else if !v.eq_ignore_ascii_case("false") {
            return Err(DvError::new(
                StatusCode::BAD_REQUEST,
                "0x80040203",
                format!(
                    "Invalid value '{v}' for the BypassCustomPluginExecution optional parameter: use true or false."
                ),
            ));
        }
    }
    let Some((privilege, id)) = needed else { return Ok(()) };
    for p in std::iter::once(&caller.user).chain(caller.impersonator.as_ref()) {
        if !p.roles.can_bypass_custom_logic() {
            return Err(missing_privilege(p, caller, &format!("{privilege} privilege (Id={id})")));
        }
    }
    Ok(())
}
