//! Small constructors that keep the table definitions in `tables.rs` readable.

use super::*;

/// Stable metadata ids: UUIDv5 over a name, so ids survive restarts.
pub(super) fn meta_id(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("d365-emulator:{kind}:{name}").as_bytes())
}

fn schema_case(logical: &str) -> String {
    // Dataverse schema names keep the publisher prefix lower case and capitalise words;
    // we capitalise the first letter after the prefix, which is what the seeded tables use.
    match logical.split_once('_') {
        Some(("new", rest)) => format!("new_{}", capitalise(rest)),
        _ => capitalise(logical),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A column under construction.
pub(super) fn col(logical: &str, display: &str, kind: AttrKind) -> Column {
    Column {
        logical_name: logical.to_string(),
        schema_name: schema_case(logical),
        display_name: display.to_string(),
        description: String::new(),
        kind,
        required: RequiredLevel::None,
        is_primary_id: false,
        is_primary_name: false,
        valid_for_create: true,
        valid_for_update: true,
        is_custom: logical.starts_with("new_"),
        max_length: match kind {
            AttrKind::String => Some(100),
            AttrKind::Memo => Some(2000),
            _ => None,
        },
        precision: match kind {
            AttrKind::Money => Some(2),
            AttrKind::Decimal => Some(2),
            AttrKind::Double => Some(5),
            _ => None,
        },
        min_value: match kind {
            AttrKind::Integer => Some(-2_147_483_648.0),
            AttrKind::Money => Some(-922_337_203_685_477.0),
            AttrKind::Decimal => Some(-100_000_000_000.0),
            AttrKind::Double => Some(-100_000_000_000.0),
            AttrKind::BigInt => Some(-9_223_372_036_854_775_808.0),
            _ => None,
        },
        max_value: match kind {
            AttrKind::Integer => Some(2_147_483_647.0),
            AttrKind::Money => Some(922_337_203_685_477.0),
            AttrKind::Decimal => Some(100_000_000_000.0),
            AttrKind::Double => Some(100_000_000_000.0),
            AttrKind::BigInt => Some(9_223_372_036_854_775_807.0),
            _ => None,
        },
        targets: vec![],
        lookup_navs: vec![],
        options: vec![],
        option_set_name: None,
        datetime_behavior: match kind {
            AttrKind::DateTime => Some("UserLocal"),
            AttrKind::DateOnly => Some("DateOnly"),
            _ => None,
        },
        format: None,
        metadata_id: Uuid::nil(),
        column_number: 0,
    }
}

impl Column {
    pub(super) fn required(mut self, level: RequiredLevel) -> Self {
        self.required = level;
        self
    }
    pub(super) fn max_len(mut self, n: u32) -> Self {
        self.max_length = Some(n);
        self
    }
    pub(super) fn precision(mut self, n: u32) -> Self {
        self.precision = Some(n);
        self
    }
    pub(super) fn bounds(mut self, min: f64, max: f64) -> Self {
        self.min_value = Some(min);
        self.max_value = Some(max);
        self
    }
    pub(super) fn read_only(mut self) -> Self {
        self.valid_for_create = false;
        self.valid_for_update = false;
        self
    }
    pub(super) fn create_only(mut self) -> Self {
        self.valid_for_update = false;
        self
    }
    pub(super) fn options(mut self, set_name: &str, opts: &[(i32, &str)]) -> Self {
        self.option_set_name = Some(set_name.to_string());
        self.options = opts
            .iter()
            .map(|(v, l)| OptionDef {
                value: *v,
                label: l.to_string(),
                state: None,
                default_status: None,
                invariant_name: None,
            })
            .collect();
        self
    }
    /// A lookup with one relationship per `(target, relationship schema name, nav property)`.
    pub(super) fn navs(mut self, navs: &[(&str, &str, &str)]) -> Self {
        self.targets = navs.iter().map(|(t, _, _)| t.to_string()).collect();
        self.lookup_navs = navs
            .iter()
            .map(|(t, r, n)| LookupNav { target: t.to_string(), relationship: r.to_string(), nav: n.to_string() })
            .collect();
        self
    }
}

/// A table under construction: finishes ids, column numbers and the name index.
#[allow(clippy::too_many_arguments)]
pub(super) fn table(
    logical: &str,
    set: &str,
    display: &str,
    display_plural: &str,
    otc: i32,
    ownership: Ownership,
    primary_id: &str,
    primary_name: &str,
    mut columns: Vec<Column>,
) -> Table {
    for (i, c) in columns.iter_mut().enumerate() {
        c.metadata_id = meta_id("attribute", &format!("{logical}.{}", c.logical_name));
        c.column_number = i as u32 + 1;
        if c.logical_name == primary_id {
            c.is_primary_id = true;
            c.valid_for_update = false;
        }
        if c.logical_name == primary_name {
            c.is_primary_name = true;
        }
    }
    let index = columns.iter().enumerate().map(|(i, c)| (c.logical_name.clone(), i)).collect();
    Table {
        logical_name: logical.to_string(),
        schema_name: schema_case(logical),
        set_name: set.to_string(),
        display_name: display.to_string(),
        display_collection_name: display_plural.to_string(),
        description: format!("{display} records (emulated)."),
        primary_id: primary_id.to_string(),
        primary_name: primary_name.to_string(),
        object_type_code: otc,
        ownership,
        is_custom: logical.starts_with("new_"),
        change_tracking: true,
        columns,
        keys: vec![],
        metadata_id: meta_id("entity", logical),
        index,
    }
}

/// Collects one relationship per lookup target.
pub(super) fn derive_relationships(tables: &[Table]) -> Vec<Relationship> {
    let mut out = Vec::new();
    for t in tables {
        for c in t.columns.iter().filter(|c| c.kind.is_lookup()) {
            for nav in &c.lookup_navs {
                let referenced_attribute = tables
                    .iter()
                    .find(|x| x.logical_name == nav.target)
                    .map(|x| x.primary_id.clone())
                    .unwrap_or_default();
                out.push(Relationship {
                    schema_name: nav.relationship.clone(),
                    referenced_entity: nav.target.clone(),
                    referenced_attribute,
                    referencing_entity: t.logical_name.clone(),
                    referencing_attribute: c.logical_name.clone(),
                    referenced_nav: nav.relationship.clone(),
                    referencing_nav: nav.nav.clone(),
                    metadata_id: meta_id("relationship", &nav.relationship),
                    is_custom: c.is_custom,
                });
            }
        }
    }
    out
}
