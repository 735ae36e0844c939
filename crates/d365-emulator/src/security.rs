//! Dataverse security roles: which table privileges each role grants, and whether it
//! carries `prvActOnBehalfOfAnotherUser` (needed for impersonation).
//!
//! Every privilege is granted at organization depth (the emulator has one business unit).
//! The platform tables the Web API only reads (`sdkmessage`, `sdkmessagefilter`) are readable
//! under every role, and no role may write them.

/// A table operation that needs a privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// prvRead
    Read,
    /// prvCreate
    Create,
    /// prvWrite
    Write,
    /// prvDelete
    Delete,
}

impl Access {
    /// The verb inside the privilege name (`prv<Verb><Table>`).
    pub fn verb(self) -> &'static str {
        match self {
            Access::Read => "Read",
            Access::Create => "Create",
            Access::Write => "Write",
            Access::Delete => "Delete",
        }
    }

    /// The `accessMode` number Dataverse prints in its privilege errors.
    pub fn access_right(self) -> u32 {
        match self {
            Access::Read => 1,
            Access::Write => 2,
            Access::Create => 32,
            Access::Delete => 65536,
        }
    }
}

const R: &[Access] = &[Access::Read];
const RCW: &[Access] = &[Access::Read, Access::Create, Access::Write];
const ALL: &[Access] = &[Access::Read, Access::Create, Access::Write, Access::Delete];

/// A security role.
#[derive(Debug)]
pub struct Role {
    /// Role name as shown in Dataverse.
    pub name: &'static str,
    /// Access granted on every table not listed in `tables`.
    pub default: &'static [Access],
    /// Per-table grants (logical name → access).
    pub tables: &'static [(&'static str, &'static [Access])],
    /// Grants prvActOnBehalfOfAnotherUser.
    pub act_on_behalf: bool,
    /// Grants prvBypassCustomBusinessLogic and prvBypassCustomPlugins (by default only the
    /// System Administrator role holds them).
    pub bypass_custom_logic: bool,
    /// Grants the customization privileges (`prvCreateAttribute`, ...): System Administrator and
    /// System Customizer.
    pub customize: bool,
}

const ROLES: &[Role] = &[
    Role {
        name: "System Administrator",
        default: ALL,
        tables: &[],
        act_on_behalf: true,
        bypass_custom_logic: true,
        customize: true,
    },
    // Dataverse grants the System Customizer its record privileges at user depth (its own
    // records); the emulator has organization depth only, so it reads every row.
    Role {
        name: "System Customizer",
        default: ALL,
        tables: &[],
        act_on_behalf: false,
        bypass_custom_logic: false,
        customize: true,
    },
    Role {
        name: "Salesperson",
        default: R,
        tables: &[("account", RCW), ("contact", ALL), ("lead", ALL), ("opportunity", ALL)],
        act_on_behalf: false,
        bypass_custom_logic: false,
        customize: false,
    },
    // The seed guide's least-privilege role: read/write contacts, leads and opportunities,
    // read accounts and the organization's principals, nothing else.
    Role {
        name: "Integration",
        default: &[],
        tables: &[
            ("contact", ALL),
            ("lead", ALL),
            ("opportunity", ALL),
            ("account", R),
            ("systemuser", R),
            ("team", R),
            ("businessunit", R),
            ("organization", R),
            ("transactioncurrency", R),
        ],
        act_on_behalf: false,
        bypass_custom_logic: false,
        customize: false,
    },
    Role {
        name: "Read Only",
        default: R,
        tables: &[],
        act_on_behalf: false,
        bypass_custom_logic: false,
        customize: false,
    },
    Role {
        name: "Delegate",
        default: &[],
        tables: &[],
        act_on_behalf: true,
        bypass_custom_logic: false,
        customize: false,
    },
];

impl Role {
    /// Looks a role up by name (case-insensitive).
    pub fn by_name(name: &str) -> Option<&'static Role> {
        ROLES.iter().find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// Names of all roles.
    pub fn names() -> Vec<&'static str> {
        ROLES.iter().map(|r| r.name).collect()
    }

    /// Whether this role grants `access` on `table`.
    pub fn grants(&self, table: &str, access: Access) -> bool {
        if crate::schema::platform_tables::is_read_only_table(table) {
            return access == Access::Read;
        }
        let list = self.tables.iter().find(|(t, _)| *t == table).map(|(_, a)| *a).unwrap_or(self.default);
        list.contains(&access)
    }
}

/// The union of several roles, as held by one principal.
#[derive(Debug, Clone, Default)]
pub struct RoleSet(pub Vec<&'static Role>);

impl RoleSet {
    /// Resolves role names (unknown names are ignored; config validation rejects them).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        Self(names.iter().filter_map(|n| Role::by_name(n.as_ref())).collect())
    }

    /// Whether any role grants `access` on `table`.
    pub fn grants(&self, table: &str, access: Access) -> bool {
        self.0.iter().any(|r| r.grants(table, access))
    }

    /// Whether any role grants prvActOnBehalfOfAnotherUser.
    pub fn can_act_on_behalf(&self) -> bool {
        self.0.iter().any(|r| r.act_on_behalf)
    }

    /// Whether any role grants the customization privileges (`prvCreateAttribute`, ...).
    pub fn can_customize(&self) -> bool {
        self.0.iter().any(|r| r.customize)
    }

    /// Whether any role grants the privileges to bypass custom business logic.
    pub fn can_bypass_custom_logic(&self) -> bool {
        self.0.iter().any(|r| r.bypass_custom_logic)
    }

    /// Number of roles (printed in privilege errors).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the principal holds no role.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_role_is_least_privilege() {
        let r = RoleSet::from_names(&["Integration"]);
        assert!(r.grants("contact", Access::Delete));
        assert!(r.grants("account", Access::Read));
        assert!(!r.grants("account", Access::Create));
        assert!(!r.grants("new_widget", Access::Read));
        assert!(!r.can_act_on_behalf());
        assert!(RoleSet::from_names(&["system administrator"]).can_act_on_behalf());
        assert!(!r.can_customize());
        assert!(RoleSet::from_names(&["System Customizer"]).can_customize());
        assert!(RoleSet::from_names(&["System Administrator"]).can_customize());
    }

    #[test]
    fn platform_tables_are_read_by_every_role_and_written_by_none() {
        for role in Role::names() {
            let r = RoleSet::from_names(&[role]);
            for table in ["sdkmessage", "sdkmessagefilter"] {
                assert!(r.grants(table, Access::Read), "{role} reads {table}");
                for a in [Access::Create, Access::Write, Access::Delete] {
                    assert!(!r.grants(table, a), "{role} must not {a:?} {table}");
                }
            }
        }
        assert!(!RoleSet::default().grants("sdkmessage", Access::Read), "no role, no privilege");
    }
}
