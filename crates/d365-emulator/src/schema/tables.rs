//! The built-in tables: the usual CRM tables with their key columns and lookups, and one
//! custom table (`new_widget`) holding a column of every attribute type.

use super::builder::{col, table};
use super::*;
use AttrKind::*;

fn state(logical_table: &str, opts: &[(i32, &str, i32)]) -> Column {
    let mut c = col("statecode", "Status", State).required(RequiredLevel::SystemRequired);
    c.option_set_name = Some(format!("{logical_table}_statecode"));
    c.options = opts
        .iter()
        .map(|(v, l, default_status)| OptionDef {
            value: *v,
            label: l.to_string(),
            state: None,
            default_status: Some(*default_status),
            invariant_name: Some(l.to_string()),
        })
        .collect();
    c
}

fn status(logical_table: &str, opts: &[(i32, &str, i32)]) -> Column {
    let mut c = col("statuscode", "Status Reason", Status);
    c.option_set_name = Some(format!("{logical_table}_statuscode"));
    c.options = opts
        .iter()
        .map(|(v, l, s)| OptionDef {
            value: *v,
            label: l.to_string(),
            state: Some(*s),
            default_status: None,
            invariant_name: None,
        })
        .collect();
    c
}

fn boolean(logical: &str, display: &str, no: &str, yes: &str) -> Column {
    col(logical, display, Boolean).options(&format!("{logical}_options"), &[(0, no), (1, yes)])
}

fn base_of(name: &str) -> std::string::String {
    // Standard tables use e.g. `lk_accountbase_createdby`; custom ones `lk_new_widget_createdby`.
    if name.starts_with("new_") { format!("{name}_") } else { format!("{name}base_") }
}

/// Columns every user-owned table has.
fn ownership_columns(t: &str, set: &str) -> Vec<Column> {
    let b = base_of(t);
    vec![
        col("ownerid", "Owner", Owner).required(RequiredLevel::SystemRequired).navs(&[
            ("systemuser", &format!("owner_{set}"), "ownerid"),
            ("team", &format!("team_owner_{set}"), "ownerid"),
        ]),
        col("owninguser", "Owning User", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("user_{set}"),
            "owninguser",
        )]),
        col("owningteam", "Owning Team", Lookup).read_only().navs(&[("team", &format!("team_{set}"), "owningteam")]),
        col("owningbusinessunit", "Owning Business Unit", Lookup).read_only().navs(&[(
            "businessunit",
            &format!("business_unit_{set}"),
            "owningbusinessunit",
        )]),
        col("createdby", "Created By", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{b}createdby"),
            "createdby",
        )]),
        col("modifiedby", "Modified By", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{b}modifiedby"),
            "modifiedby",
        )]),
        col("createdonbehalfby", "Created By (Delegate)", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{b}createdonbehalfby"),
            "createdonbehalfby",
        )]),
        col("modifiedonbehalfby", "Modified By (Delegate)", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{b}modifiedonbehalfby"),
            "modifiedonbehalfby",
        )]),
        col("createdon", "Created On", DateTime).read_only(),
        col("modifiedon", "Modified On", DateTime).read_only(),
        col("overriddencreatedon", "Record Created On", DateTime).create_only(),
        col("versionnumber", "Version Number", BigInt).read_only(),
        col("importsequencenumber", "Import Sequence Number", Integer).create_only(),
        col("timezoneruleversionnumber", "Time Zone Rule Version Number", Integer),
        col("utcconversiontimezonecode", "UTC Conversion Time Zone Code", Integer),
    ]
}

/// Columns of tables owned by the organization or a business unit.
fn system_columns(t: &str) -> Vec<Column> {
    let b = base_of(t);
    vec![
        col("createdby", "Created By", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{b}createdby"),
            "createdby",
        )]),
        col("modifiedby", "Modified By", Lookup).read_only().navs(&[(
            "systemuser",
            &format!("lk_{b}modifiedby"),
            "modifiedby",
        )]),
        col("createdon", "Created On", DateTime).read_only(),
        col("modifiedon", "Modified On", DateTime).read_only(),
        col("versionnumber", "Version Number", BigInt).read_only(),
    ]
}

/// The currency lookup and exchange rate a table with money columns has.
pub(super) fn currency_columns(t: &str) -> Vec<Column> {
    vec![
        col("transactioncurrencyid", "Currency", Lookup).navs(&[(
            "transactioncurrency",
            &format!("transactioncurrency_{t}"),
            "transactioncurrencyid",
        )]),
        col("exchangerate", "Exchange Rate", Decimal).precision(10).bounds(0.0000000001, 100_000_000.0).read_only(),
    ]
}

fn account() -> Table {
    let mut c = vec![
        col("accountid", "Account", Uniqueidentifier).create_only(),
        col("name", "Account Name", String).required(RequiredLevel::ApplicationRequired).max_len(160),
        col("accountnumber", "Account Number", String).max_len(20),
        col("telephone1", "Main Phone", String).max_len(50),
        col("emailaddress1", "Email", String),
        col("websiteurl", "Website", String).max_len(200),
        col("address1_city", "Address 1: City", String).max_len(80),
        col("address1_stateorprovince", "Address 1: State/Province", String).max_len(50),
        col("address1_country", "Address 1: Country/Region", String).max_len(80),
        col("address1_latitude", "Address 1: Latitude", Double),
        col("revenue", "Annual Revenue", Money),
        col("revenue_base", "Annual Revenue (Base)", Money).read_only(),
        col("numberofemployees", "Number of Employees", Integer),
        col("industrycode", "Industry", Picklist).options(
            "account_industrycode",
            &[
                (1, "Accounting"),
                (2, "Agriculture and Non-petrol Natural Resource Extraction"),
                (3, "Broadcasting Printing and Publishing"),
                (4, "Brokers"),
                (5, "Building Supply Retail"),
                (6, "Business Services"),
                (7, "Consulting"),
                (8, "Consumer Services"),
                (9, "Design, Direction and Creative Management"),
                (10, "Distributors, Dispatchers and Processors"),
            ],
        ),
        col("accountcategorycode", "Category", Picklist)
            .options("account_accountcategorycode", &[(1, "Preferred Customer"), (2, "Standard")]),
        col("customertypecode", "Relationship Type", Picklist).options(
            "account_customertypecode",
            &[
                (1, "Competitor"),
                (2, "Consultant"),
                (3, "Customer"),
                (4, "Investor"),
                (5, "Partner"),
                (6, "Influencer"),
                (7, "Press"),
                (8, "Prospect"),
                (9, "Reseller"),
                (10, "Supplier"),
                (11, "Vendor"),
                (12, "Other"),
            ],
        ),
        boolean("creditonhold", "Credit Hold", "No", "Yes"),
        col("description", "Description", Memo),
        col("parentaccountid", "Parent Account", Lookup).navs(&[(
            "account",
            "account_parent_account",
            "parentaccountid",
        )]),
        col("primarycontactid", "Primary Contact", Lookup).navs(&[(
            "contact",
            "account_primary_contact",
            "primarycontactid",
        )]),
        state("account", &[(0, "Active", 1), (1, "Inactive", 2)]),
        status("account", &[(1, "Active", 0), (2, "Inactive", 1)]),
    ];
    c.extend(currency_columns("account"));
    c.extend(ownership_columns("account", "accounts"));
    let mut t = table("account", "accounts", "Account", "Accounts", 1, Ownership::UserOwned, "accountid", "name", c);
    t.keys.push(AlternateKey { logical_name: "accountnumber_key".into(), attributes: vec!["accountnumber".into()] });
    t
}

fn contact() -> Table {
    let mut c = vec![
        col("contactid", "Contact", Uniqueidentifier).create_only(),
        col("fullname", "Full Name", String).max_len(160).read_only(),
        col("firstname", "First Name", String).max_len(50).required(RequiredLevel::Recommended),
        col("lastname", "Last Name", String).max_len(50).required(RequiredLevel::ApplicationRequired),
        col("emailaddress1", "Email", String),
        col("telephone1", "Business Phone", String).max_len(50),
        col("jobtitle", "Job Title", String),
        col("birthdate", "Birthday", DateOnly),
        col("annualincome", "Annual Income", Money),
        col("annualincome_base", "Annual Income (Base)", Money).read_only(),
        col("gendercode", "Gender", Picklist).options("contact_gendercode", &[(1, "Male"), (2, "Female")]),
        col("parentcustomerid", "Company Name", Customer).navs(&[
            ("account", "contact_customer_accounts", "parentcustomerid_account"),
            ("contact", "contact_customer_contacts", "parentcustomerid_contact"),
        ]),
        state("contact", &[(0, "Active", 1), (1, "Inactive", 2)]),
        status("contact", &[(1, "Active", 0), (2, "Inactive", 1)]),
    ];
    c.extend(currency_columns("contact"));
    c.extend(ownership_columns("contact", "contacts"));
    let mut t =
        table("contact", "contacts", "Contact", "Contacts", 2, Ownership::UserOwned, "contactid", "fullname", c);
    t.keys.push(AlternateKey { logical_name: "emailaddress1_key".into(), attributes: vec!["emailaddress1".into()] });
    t
}

fn lead() -> Table {
    let mut c = vec![
        col("leadid", "Lead", Uniqueidentifier).create_only(),
        col("subject", "Topic", String).max_len(300).required(RequiredLevel::ApplicationRequired),
        col("fullname", "Name", String).max_len(160).read_only(),
        col("firstname", "First Name", String).max_len(50),
        col("lastname", "Last Name", String).max_len(50).required(RequiredLevel::ApplicationRequired),
        col("companyname", "Company Name", String).max_len(100),
        col("emailaddress1", "Email", String),
        col("leadsourcecode", "Lead Source", Picklist).options(
            "lead_leadsourcecode",
            &[
                (1, "Advertisement"),
                (2, "Employee Referral"),
                (3, "External Referral"),
                (4, "Partner"),
                (5, "Public Relations"),
                (6, "Seminar"),
                (7, "Trade Show"),
                (8, "Web"),
                (9, "Word of Mouth"),
                (10, "Other"),
            ],
        ),
        col("estimatedamount", "Est. Value", Money),
        col("estimatedamount_base", "Est. Value (Base)", Money).read_only(),
        col("parentaccountid", "Parent Account for lead", Lookup).navs(&[(
            "account",
            "lead_parent_account",
            "parentaccountid",
        )]),
        col("parentcontactid", "Parent Contact for lead", Lookup).navs(&[(
            "contact",
            "lead_parent_contact",
            "parentcontactid",
        )]),
        state("lead", &[(0, "Open", 1), (1, "Qualified", 3), (2, "Disqualified", 4)]),
        status(
            "lead",
            &[
                (1, "New", 0),
                (2, "Contacted", 0),
                (3, "Qualified", 1),
                (4, "Lost", 2),
                (5, "Cannot Contact", 2),
                (6, "No Longer Interested", 2),
                (7, "Canceled", 2),
            ],
        ),
    ];
    c.extend(currency_columns("lead"));
    c.extend(ownership_columns("lead", "leads"));
    table("lead", "leads", "Lead", "Leads", 4, Ownership::UserOwned, "leadid", "fullname", c)
}

fn opportunity() -> Table {
    let mut c = vec![
        col("opportunityid", "Opportunity", Uniqueidentifier).create_only(),
        col("name", "Topic", String).max_len(300).required(RequiredLevel::ApplicationRequired),
        col("customerid", "Potential Customer", Customer).navs(&[
            ("account", "opportunity_customer_accounts", "customerid_account"),
            ("contact", "opportunity_customer_contacts", "customerid_contact"),
        ]),
        col("parentaccountid", "Account", Lookup).navs(&[("account", "opportunity_parent_account", "parentaccountid")]),
        col("parentcontactid", "Contact", Lookup).navs(&[("contact", "opportunity_parent_contact", "parentcontactid")]),
        col("originatingleadid", "Originating Lead", Lookup).navs(&[(
            "lead",
            "opportunity_originating_lead",
            "originatingleadid",
        )]),
        col("estimatedvalue", "Est. Revenue", Money),
        col("estimatedvalue_base", "Est. Revenue (Base)", Money).read_only(),
        col("estimatedclosedate", "Est. Close Date", DateOnly),
        col("closeprobability", "Probability", Integer),
        col("description", "Description", Memo),
        state("opportunity", &[(0, "Open", 1), (1, "Won", 3), (2, "Lost", 4)]),
        status(
            "opportunity",
            &[(1, "In Progress", 0), (2, "On Hold", 0), (3, "Won", 1), (4, "Canceled", 2), (5, "Out-Sold", 2)],
        ),
    ];
    c.extend(currency_columns("opportunity"));
    c.extend(ownership_columns("opportunity", "opportunities"));
    table(
        "opportunity",
        "opportunities",
        "Opportunity",
        "Opportunities",
        3,
        Ownership::UserOwned,
        "opportunityid",
        "name",
        c,
    )
}

fn systemuser() -> Table {
    let mut c = vec![
        col("systemuserid", "User", Uniqueidentifier).create_only(),
        col("fullname", "Full Name", String).max_len(200).read_only(),
        col("firstname", "First Name", String).max_len(64),
        col("lastname", "Last Name", String).max_len(64).required(RequiredLevel::ApplicationRequired),
        col("domainname", "User Name", String).max_len(1024).required(RequiredLevel::SystemRequired),
        col("internalemailaddress", "Primary Email", String),
        col("azureactivedirectoryobjectid", "Azure AD Object ID", Uniqueidentifier),
        col("applicationid", "Application ID", Uniqueidentifier),
        col("businessunitid", "Business Unit", Lookup).required(RequiredLevel::SystemRequired).navs(&[(
            "businessunit",
            "business_unit_system_users",
            "businessunitid",
        )]),
        boolean("isdisabled", "Status", "Enabled", "Disabled").read_only(),
        col("accessmode", "Access Mode", Picklist).options(
            "systemuser_accessmode",
            &[
                (0, "Read-Write"),
                (1, "Administrative"),
                (2, "Read"),
                (3, "Support User"),
                (4, "Non-interactive"),
                (5, "Delegated Admin"),
            ],
        ),
    ];
    c.extend(system_columns("systemuser"));
    table("systemuser", "systemusers", "User", "Users", 8, Ownership::BusinessOwned, "systemuserid", "fullname", c)
}

fn businessunit() -> Table {
    let mut c = vec![
        col("businessunitid", "Business Unit", Uniqueidentifier).create_only(),
        col("name", "Name", String).max_len(160).required(RequiredLevel::SystemRequired),
        col("parentbusinessunitid", "Parent Business", Lookup).navs(&[(
            "businessunit",
            "business_unit_parent_business_unit",
            "parentbusinessunitid",
        )]),
        boolean("isdisabled", "Is Disabled", "No", "Yes").read_only(),
    ];
    c.extend(system_columns("businessunit"));
    table(
        "businessunit",
        "businessunits",
        "Business Unit",
        "Business Units",
        10,
        Ownership::BusinessOwned,
        "businessunitid",
        "name",
        c,
    )
}

fn team() -> Table {
    let mut c = vec![
        col("teamid", "Team", Uniqueidentifier).create_only(),
        col("name", "Team Name", String).max_len(160).required(RequiredLevel::SystemRequired),
        col("businessunitid", "Business Unit", Lookup).required(RequiredLevel::SystemRequired).navs(&[(
            "businessunit",
            "business_unit_teams",
            "businessunitid",
        )]),
        col("teamtype", "Team Type", Picklist)
            .options("team_type", &[(0, "Owner"), (1, "Access"), (2, "Security Group"), (3, "Office Group")]),
        boolean("isdefault", "Is Default", "No", "Yes").read_only(),
    ];
    c.extend(system_columns("team"));
    table("team", "teams", "Team", "Teams", 9, Ownership::BusinessOwned, "teamid", "name", c)
}

fn transactioncurrency() -> Table {
    let mut c = vec![
        col("transactioncurrencyid", "Currency", Uniqueidentifier).create_only(),
        col("currencyname", "Currency Name", String).max_len(100).required(RequiredLevel::SystemRequired),
        col("isocurrencycode", "Currency Code", String).max_len(5).required(RequiredLevel::SystemRequired),
        col("currencysymbol", "Currency Symbol", String).max_len(13),
        col("exchangerate", "Exchange Rate", Decimal).precision(10).bounds(0.0000000001, 100_000_000.0),
        col("currencyprecision", "Currency Precision", Integer),
    ];
    c.extend(system_columns("transactioncurrency"));
    table(
        "transactioncurrency",
        "transactioncurrencies",
        "Currency",
        "Currencies",
        9105,
        Ownership::OrganizationOwned,
        "transactioncurrencyid",
        "currencyname",
        c,
    )
}

fn organization() -> Table {
    let mut c = vec![
        col("organizationid", "Organization", Uniqueidentifier).create_only(),
        col("name", "Organization Name", String).max_len(160).required(RequiredLevel::SystemRequired),
        col("basecurrencyid", "Currency", Lookup).navs(&[(
            "transactioncurrency",
            "basecurrency_organization",
            "basecurrencyid",
        )]),
        col("expirechangetrackingindays", "Days to Expire Change Tracking Deleted Records", Integer),
    ];
    c.extend(system_columns("organization"));
    table(
        "organization",
        "organizations",
        "Organization",
        "Organizations",
        1019,
        Ownership::OrganizationOwned,
        "organizationid",
        "name",
        c,
    )
}

/// The custom table: one column of every attribute type.
fn widget() -> Table {
    let mut c = vec![
        col("new_widgetid", "Widget", Uniqueidentifier).create_only(),
        col("new_name", "Name", String).max_len(100).required(RequiredLevel::ApplicationRequired),
        col("new_description", "Description", Memo).max_len(10000),
        col("new_quantity", "Quantity", Integer),
        col("new_serialnumber", "Serial Number", BigInt),
        col("new_weight", "Weight (kg)", Decimal).precision(4),
        col("new_ratio", "Ratio", Double).precision(5),
        col("new_price", "Price", Money),
        col("new_price_base", "Price (Base)", Money).read_only(),
        boolean("new_isactive", "Is Active", "No", "Yes"),
        col("new_lastinspectedon", "Last Inspected On", DateTime),
        col("new_shipdate", "Ship Date", DateOnly),
        col("new_externalid", "External Id", Uniqueidentifier),
        col("new_accountid", "Account", Lookup).navs(&[("account", "new_account_new_widget", "new_accountid")]),
        col("new_customerid", "Customer", Customer).navs(&[
            ("account", "new_widget_customer_accounts", "new_customerid_account"),
            ("contact", "new_widget_customer_contacts", "new_customerid_contact"),
        ]),
        col("new_category", "Category", Picklist).options(
            "new_widget_category",
            &[(100000000, "Gadget"), (100000001, "Gizmo"), (100000002, "Doohickey"), (100000003, "Thingamajig")],
        ),
        col("new_tags", "Tags", MultiSelectPicklist).options(
            "new_widget_tags",
            &[
                (100000000, "Red"),
                (100000001, "Green"),
                (100000002, "Blue"),
                (100000003, "Fragile"),
                (100000004, "Heavy"),
            ],
        ),
        state("new_widget", &[(0, "Active", 1), (1, "Inactive", 2)]),
        status("new_widget", &[(1, "Active", 0), (2, "Inactive", 1)]),
    ];
    c.extend(currency_columns("new_widget"));
    c.extend(ownership_columns("new_widget", "new_widgets"));
    table("new_widget", "new_widgets", "Widget", "Widgets", 10001, Ownership::UserOwned, "new_widgetid", "new_name", c)
}

/// Every built-in table.
pub(super) fn all() -> Vec<Table> {
    vec![
        account(),
        contact(),
        lead(),
        opportunity(),
        systemuser(),
        businessunit(),
        team(),
        transactioncurrency(),
        organization(),
        widget(),
    ]
}
