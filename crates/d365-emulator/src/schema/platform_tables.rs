//! Platform tables clients read to discover what the service offers: `sdkmessage` (the
//! messages) and `sdkmessagefilter` (which table offers which message), related through
//! `sdkmessageid_sdkmessagefilter`. Column names, types, requirement levels, relationship
//! names and object type codes are those of Dataverse's table reference; the rows are written
//! by the platform (the emulator seeds them from [`super::messages`]), so the Web API only
//! reads them.

use super::builder::{col, table};
use super::*;
use AttrKind::*;

/// The logical names of the platform tables that the Web API can read but never write (they
/// offer only `Retrieve` and `RetrieveMultiple`, and every security role may read them).
pub const READ_ONLY_TABLES: &[&str] = &["sdkmessage", "sdkmessagefilter"];

/// Whether `table` is one of [`READ_ONLY_TABLES`].
pub fn is_read_only_table(table: &str) -> bool {
    READ_ONLY_TABLES.contains(&table)
}

/// A Yes/No column with Dataverse's global choice name.
fn yes_no(logical: &str, display: &str, choice: &str) -> Column {
    col(logical, display, Boolean).options(choice, &[(0, "No"), (1, "Yes")])
}

/// The audit and organization columns both tables have, with Dataverse's relationship names
/// (`createdby_<table>`, `lk_<table>_createdonbehalfby`, `organization_<table>`, ...).
fn platform_columns(t: &str) -> Vec<Column> {
    vec![
        col("organizationid", "Organization", Lookup).required(RequiredLevel::SystemRequired).read_only().navs(&[(
            "organization",
            &format!("organization_{t}"),
            "organizationid",
        )]),
        col("createdby", "Created By", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("createdby_{t}"),
            "createdby",
        )]),
        col("createdonbehalfby", "Created By (Delegate)", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{t}_createdonbehalfby"),
            "createdonbehalfby",
        )]),
        col("modifiedby", "Modified By", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("modifiedby_{t}"),
            "modifiedby",
        )]),
        col("modifiedonbehalfby", "Modified By (Delegate)", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{t}_modifiedonbehalfby"),
            "modifiedonbehalfby",
        )]),
        col("createdon", "Created On", DateTime).read_only(),
        col("modifiedon", "Modified On", DateTime).read_only(),
        col("versionnumber", "Version Number", BigInt).read_only(),
    ]
}

/// Finishes a platform table: Dataverse's schema name and description, no change tracking.
fn platform_table(mut t: Table, schema_name: &str, description: &str) -> Table {
    t.schema_name = schema_name.to_string();
    t.description = description.to_string();
    t.change_tracking = false;
    t
}

fn sdkmessage() -> Table {
    let mut c = vec![
        col("sdkmessageid", "Sdk Message", Uniqueidentifier).required(RequiredLevel::SystemRequired).create_only(),
        col("name", "Name", String).max_len(256).required(RequiredLevel::SystemRequired),
        col("categoryname", "Category Name", String).max_len(25).required(RequiredLevel::SystemRequired),
        col("availability", "Availability", Integer).required(RequiredLevel::SystemRequired),
        yes_no("autotransact", "Auto Transact", "sdkmessage_autotransact"),
        col("executeprivilegename", "Execute Privilege Name", String),
        yes_no("expand", "Expand", "sdkmessage_expand"),
        col("introducedversion", "Introduced Version", String).max_len(48),
        yes_no("isactive", "Is Active", "sdkmessage_isactive"),
        yes_no("isprivate", "Is Private", "sdkmessage_isprivate"),
        yes_no("isreadonly", "Intent", "isoperationintentreadonly").required(RequiredLevel::SystemRequired),
        yes_no("template", "Template", "sdkmessage_template"),
        yes_no("isvalidforexecuteasync", "Is Valid for Execute Async", "sdkmessage_isvalidforexecuteasync").read_only(),
        yes_no("workflowsdkstepenabled", "WorkflowSdkStepEnabled", "sdkmessage_workflowsdkstepenabled").read_only(),
    ];
    c.extend(platform_columns("sdkmessage"));
    let t = table(
        "sdkmessage",
        "sdkmessages",
        "Sdk Message",
        "Sdk Messages",
        4606,
        Ownership::OrganizationOwned,
        "sdkmessageid",
        "name",
        c,
    );
    platform_table(t, "SdkMessage", "Message that is supported by the SDK.")
}

fn sdkmessagefilter() -> Table {
    let mut c = vec![
        col("sdkmessagefilterid", "Sdk Message Filter", Uniqueidentifier)
            .required(RequiredLevel::SystemRequired)
            .create_only(),
        col("name", "Name", String).max_len(256),
        col("sdkmessageid", "SDK Message ID", Lookup).required(RequiredLevel::SystemRequired).navs(&[(
            "sdkmessage",
            "sdkmessageid_sdkmessagefilter",
            "sdkmessageid",
        )]),
        // `EntityName` columns: a table's logical name (or `none`), Edm.String in the Web API.
        col("primaryobjecttypecode", "Primary Object Type Code", String)
            .max_len(128)
            .required(RequiredLevel::SystemRequired)
            .read_only(),
        col("secondaryobjecttypecode", "Secondary Object Type Code", String)
            .max_len(128)
            .required(RequiredLevel::SystemRequired)
            .read_only(),
        col("availability", "Availability", Integer).required(RequiredLevel::SystemRequired),
        yes_no(
            "iscustomprocessingstepallowed",
            "Custom Processing Step Allowed",
            "sdkmessagefilter_iscustomprocessingstepallowed",
        )
        .required(RequiredLevel::SystemRequired),
        yes_no("isvisible", "Is Visible", "sdkmessagefilter_isvisible")
            .required(RequiredLevel::SystemRequired)
            .read_only(),
        col("restrictionlevel", "Restriction Level", Integer)
            .required(RequiredLevel::SystemRequired)
            .bounds(0.0, 255.0),
        col("introducedversion", "Introduced Version", String).max_len(48),
        yes_no("workflowsdkstepenabled", "WorkflowSdkStepEnabled", "sdkmessagefilter_workflowsdkstepenabled")
            .read_only(),
    ];
    c.extend(platform_columns("sdkmessagefilter"));
    let t = table(
        "sdkmessagefilter",
        "sdkmessagefilters",
        "Sdk Message Filter",
        "Sdk Message Filters",
        4607,
        Ownership::OrganizationOwned,
        "sdkmessagefilterid",
        "name",
        c,
    );
    platform_table(t, "SdkMessageFilter", "Filter that defines which SDK messages are valid for each type of entity.")
}

/// The platform tables, in definition order.
pub(super) fn all() -> Vec<Table> {
    vec![sdkmessage(), sdkmessagefilter()]
}
