//! The messages (SDK operations) the emulator serves and which tables offer each: the one
//! source for the rows of `sdkmessage` / `sdkmessagefilter` and for refusing a message a
//! table lacks.
//!
//! Not every standard table offers the bulk messages (reference §9): in the emulator the
//! tables in [`NO_BULK_MESSAGES`] have none (a choice made to exercise clients' fallbacks;
//! which real tables lack them is not documented table by table). `DeleteMultiple` is for
//! elastic tables only, and the emulator has none. The platform tables
//! ([`super::platform_tables::READ_ONLY_TABLES`]) offer only `Retrieve` and
//! `RetrieveMultiple`, as their table reference lists.

use super::Table;
use super::platform_tables::is_read_only_table;
use uuid::Uuid;

/// One message the emulator serves.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    /// The message name (`sdkmessage.name`).
    pub name: &'static str,
    /// Whether it only reads (`sdkmessage.isreadonly`).
    pub read_only: bool,
    /// Whether it is bound to a table: one `sdkmessagefilter` per table that offers it.
    /// Unbound messages have one filter whose `primaryobjecttypecode` is `none`.
    pub bound: bool,
}

const fn bound(name: &'static str, read_only: bool) -> Message {
    Message { name, read_only, bound: true }
}

/// Every message the emulator serves, in a stable order.
pub const MESSAGES: &[Message] = &[
    bound("Create", false),
    bound("Retrieve", true),
    bound("RetrieveMultiple", true),
    bound("Update", false),
    bound("Upsert", false),
    bound("Delete", false),
    bound("CreateMultiple", false),
    bound("UpdateMultiple", false),
    bound("UpsertMultiple", false),
    bound("DeleteMultiple", false),
    Message { name: "WhoAmI", read_only: true, bound: false },
];

/// The `primaryobjecttypecode` of the filter of an unbound message.
pub const UNBOUND: &str = "none";

/// Tables without CreateMultiple / UpdateMultiple / UpsertMultiple in the emulator.
pub const NO_BULK_MESSAGES: &[&str] = &["organization", "businessunit", "systemuser", "team", "transactioncurrency"];

/// Messages every writable table has.
const SINGLE_MESSAGES: &[&str] = &["Create", "Retrieve", "RetrieveMultiple", "Update", "Upsert", "Delete"];

/// Whether `table` offers message `name` (`Create`, `CreateMultiple`, ...).
pub fn supports_message(table: &Table, name: &str) -> bool {
    if is_read_only_table(&table.logical_name) {
        return matches!(name, "Retrieve" | "RetrieveMultiple");
    }
    if SINGLE_MESSAGES.contains(&name) {
        return true;
    }
    matches!(name, "CreateMultiple" | "UpdateMultiple" | "UpsertMultiple")
        && !NO_BULK_MESSAGES.contains(&table.logical_name.as_str())
}

/// The stable `sdkmessageid` of message `name`.
pub fn message_id(name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sdkmessage/{name}").as_bytes())
}

/// The stable `sdkmessagefilterid` of message `name` on table `table` (logical name, or
/// [`UNBOUND`]).
pub fn filter_id(name: &str, table: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("sdkmessagefilter/{name}/{table}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn platform_tables_offer_only_reads_and_bulk_follows_the_exclusions() {
        let s = Schema::builtin();
        let t = |n: &str| s.table(n).unwrap_or_else(|| panic!("{n} missing"));
        for name in ["sdkmessage", "sdkmessagefilter"] {
            assert!(supports_message(t(name), "RetrieveMultiple"));
            for m in ["Create", "Update", "Upsert", "Delete", "CreateMultiple"] {
                assert!(!supports_message(t(name), m), "{name} must not offer {m}");
            }
        }
        assert!(supports_message(t("account"), "CreateMultiple"));
        assert!(!supports_message(t("team"), "CreateMultiple"));
        assert!(supports_message(t("team"), "Create"));
        assert!(!supports_message(t("account"), "DeleteMultiple"));
        assert!(!supports_message(t("account"), "WhoAmI"), "unbound messages have no table filter");
        let names: std::collections::HashSet<_> = MESSAGES.iter().map(|m| message_id(m.name)).collect();
        assert_eq!(names.len(), MESSAGES.len(), "message ids are distinct");
    }
}
