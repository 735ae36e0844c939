//! Which data service a client talks to: the Dataverse Web API or the Finance & Operations
//! OData service (`/data`), and the settings of the latter.

/// The data service behind an environment URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Service {
    /// The Dataverse Web API at `{url}/api/data/v{version}/` (the CE editions).
    #[default]
    Dataverse,
    /// The Finance & Operations OData service at `{url}/data/` (Finance, Supply Chain, Human
    /// Resources), with its metadata service at `{url}/Metadata/`.
    FinOps(FinOpsSettings),
}

/// Settings of a Finance & Operations connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FinOpsSettings {
    /// `CrossCompany`: read the rows of every company the caller may access
    /// (`cross-company=true` on every read), not only its default company's.
    pub cross_company: bool,
}

/// The most rows Finance & Operations returns in one page.
pub const FINOPS_MAX_PAGE_SIZE: u32 = 10_000;

impl Service {
    /// Whether this is the Finance & Operations service.
    pub fn is_finops(&self) -> bool {
        matches!(self, Service::FinOps(_))
    }

    /// Whether reads ask for every company (`cross-company=true`).
    pub fn cross_company(&self) -> bool {
        matches!(self, Service::FinOps(s) if s.cross_company)
    }

    /// Words for messages ("Dataverse", "Finance & Operations").
    pub fn name(&self) -> &'static str {
        match self {
            Service::Dataverse => "Dataverse",
            Service::FinOps(_) => "Finance & Operations",
        }
    }
}
