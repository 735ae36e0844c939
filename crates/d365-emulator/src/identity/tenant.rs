//! The `{tenant}` path segment: the tenant's GUID or verified domain, or one of the
//! multi-tenant aliases `common`, `organizations`, `consumers` (reference §1.2).

use super::errors::AadError;
use crate::state::Shared;
use uuid::{Uuid, uuid};

/// Tenant id of the personal Microsoft account directory (`consumers`).
pub const CONSUMERS_TENANT: Uuid = uuid!("9188040d-6c67-4c5b-b112-36a304b66dad");

/// A resolved `{tenant}` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantPath {
    /// The emulated directory, by GUID or domain.
    Tenant(Uuid),
    /// `common`: work/school and personal accounts.
    Common,
    /// `organizations`: any work/school account.
    Organizations,
    /// `consumers`: personal Microsoft accounts only (no seeded app supports them).
    Consumers,
}

impl TenantPath {
    /// Resolves `segment`; an unknown tenant is AADSTS90002.
    pub fn resolve(state: &Shared, segment: &str) -> Result<Self, AadError> {
        let s = segment.trim();
        if s.eq_ignore_ascii_case("common") {
            return Ok(Self::Common);
        }
        if s.eq_ignore_ascii_case("organizations") {
            return Ok(Self::Organizations);
        }
        if s.eq_ignore_ascii_case("consumers") || Uuid::parse_str(s).ok() == Some(CONSUMERS_TENANT) {
            return Ok(Self::Consumers);
        }
        state.resolve_tenant(s).map(Self::Tenant).ok_or_else(|| AadError::unknown_tenant(segment))
    }

    /// Whether this is one of the multi-tenant aliases.
    pub fn is_multi_tenant(self) -> bool {
        !matches!(self, Self::Tenant(_))
    }

    /// The path segment the endpoints of this authority use (`common`, or the tenant GUID).
    pub fn segment(self) -> String {
        match self {
            Self::Tenant(id) => id.to_string(),
            Self::Common => "common".into(),
            Self::Organizations => "organizations".into(),
            Self::Consumers => "consumers".into(),
        }
    }

    /// Requires an authority where the emulated tenant's apps and users live: `consumers` has
    /// none of them (AADSTS700016 naming the Microsoft Accounts directory).
    pub fn require_org_directory(self, state: &Shared, client_id: &str) -> Result<Uuid, AadError> {
        match self {
            Self::Consumers => Err(AadError::unknown_app(client_id, "Microsoft Accounts")),
            Self::Tenant(id) => Ok(id),
            Self::Common | Self::Organizations => Ok(state.config.tenant.id),
        }
    }
}
