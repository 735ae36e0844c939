//! Dataverse columns → Arrow fields: the SQL shape of one table.
//!
//! | Dataverse `AttributeType` | Arrow | notes |
//! |---|---|---|
//! | String, Memo, EntityName | `Utf8` | |
//! | Integer | `Int32` | |
//! | BigInt | `Int64` | |
//! | Decimal | `Decimal128(38, Precision)` | `Precision` is the metadata's digits after the point |
//! | Money | `Decimal128(38, 4)` | the service stores and returns money with 4 decimals whatever the display precision (`Precision`, usually 2), so scale 4 keeps values exact |
//! | Double | `Float64` | |
//! | Boolean | `Boolean` | plus `<col>name` (the Yes/No label) |
//! | DateTime | `Timestamp(µs, "UTC")` | the Web API returns UTC instants |
//! | DateTime with `Format=DateOnly` or `DateTimeBehavior=DateOnly` | `Date32` | |
//! | Uniqueidentifier | `Utf8` | lower-case GUID text (`00000000-0000-…`): compares and joins as text, as SQL 4 CDS users expect |
//! | Lookup, Customer, Owner | `Utf8` GUID | named by the logical name (`parentaccountid`, read from `_parentaccountid_value`), plus `<col>name` (the record's primary name, from the formatted value) and `<col>type` (the target table, from `lookuplogicalname`) |
//! | Picklist, State, Status | `Int32` | plus `<col>name` (the option label) |
//! | MultiSelectPicklist | `Utf8` | the comma list of values (`1,3`), plus `<col>name` (labels joined by `; `, as the service formats them) |
//!
//! The virtual `…name` / `…type` columns follow the SQL 4 CDS convention; they are filled from
//! the `OData.Community.Display.V1.FormattedValue` and `Microsoft.Dynamics.CRM.lookuplogicalname`
//! annotations and are never sent to the service in `$filter` or `$orderby`. Helper columns
//! that Dataverse lists beside a column (`AttributeOf` set, e.g. `owneridname`), columns not
//! valid for read, and types without a Web API value (images, files, party lists, …) are
//! skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use d365_client::{AttributeInfo, EntityInfo, EntityMetadata, FORMATTED_VALUE, LOOKUP_LOGICAL_NAME};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The Arrow type a column decodes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `Utf8`.
    Utf8,
    /// `Int32`.
    Int32,
    /// `Int64`.
    Int64,
    /// `Float64`.
    Float64,
    /// `Boolean`.
    Boolean,
    /// `Decimal128(38, scale)`.
    Decimal {
        /// Digits after the point.
        scale: i8,
    },
    /// `Timestamp(Microsecond, "UTC")`.
    Timestamp,
    /// `Date32`.
    Date32,
}

impl ValueKind {
    /// The Arrow data type.
    pub fn data_type(self) -> DataType {
        match self {
            ValueKind::Utf8 => DataType::Utf8,
            ValueKind::Int32 => DataType::Int32,
            ValueKind::Int64 => DataType::Int64,
            ValueKind::Float64 => DataType::Float64,
            ValueKind::Boolean => DataType::Boolean,
            ValueKind::Decimal { scale } => DataType::Decimal128(38, scale),
            ValueKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ValueKind::Date32 => DataType::Date32,
        }
    }
}

/// Where a column's values come from in a row of the Web API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// The property itself (`name`, `_parentaccountid_value`).
    Value,
    /// Its formatted value annotation (the `<col>name` virtual column).
    FormattedValue,
    /// Its lookup logical name annotation (the `<col>type` virtual column).
    LookupLogicalName,
}

/// How filters on a column translate to `$filter` (see `filter_pushdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// Integer-valued (Integer, BigInt, choice, state, status): exact.
    Integer,
    /// Decimal or Money: exact while the literal fits the column's scale.
    Decimal,
    /// Double: exact for finite literals.
    Float,
    /// Yes/No.
    Boolean,
    /// Date and time (whole seconds).
    Timestamp,
    /// Date only.
    Date,
    /// Text: the service compares case-insensitively.
    Text,
    /// GUID (primary keys and lookups).
    Guid,
    /// A Finance & Operations enum (member names, `eq`/`ne` only).
    Enum,
    /// Not translatable (virtual columns, multi-select choices, entity names).
    None,
}

/// One SQL column of a Dataverse table.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// The SQL column name (`name`, `parentaccountid`, `parentaccountidname`).
    pub name: String,
    /// The Web API property the column reads or annotates (`name`, `_parentaccountid_value`):
    /// what goes into `$select`, `$filter` and `$orderby`.
    pub property: String,
    /// The key of the value in a row of the response.
    pub json_key: String,
    /// Value or annotation.
    pub role: ColumnRole,
    /// The Arrow type.
    pub kind: ValueKind,
    /// Dataverse `AttributeType` of the source column (`Money`, `Lookup`, ...).
    pub attribute_type: String,
    /// How filters on it translate.
    pub filter: FilterKind,
    /// Whether `$orderby` on it orders exactly as DataFusion does (numbers and dates; text,
    /// GUIDs and choices are ordered differently by the service, so they are sorted locally).
    pub sortable: bool,
}

/// The SQL shape of one table: its columns in order and the Arrow schema.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// The table.
    pub entity: EntityInfo,
    /// Entity set name used in URLs.
    pub entity_set: String,
    /// Primary key property, always requested.
    pub primary_key: String,
    /// Columns, in schema order.
    pub columns: Vec<ColumnSpec>,
    /// The Arrow schema (one field per column).
    pub arrow: SchemaRef,
    /// The service's `$filter` dialect.
    pub dialect: Dialect,
    /// Finance & Operations enum columns: property → enum type and member names.
    pub enums: HashMap<String, EnumType>,
    /// Finance & Operations: the entity key, in key order (what key-range reads page on);
    /// empty for Dataverse tables.
    pub key_fields: Vec<d365_client::KeyField>,
}

/// Which OData dialect a table's filters are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The Dataverse Web API (query functions such as `Microsoft.Dynamics.CRM.In`, `contains`).
    #[default]
    Dataverse,
    /// Finance & Operations `/data`: no `in`, no string functions (wildcards `'*x*'` in `eq`
    /// instead), enum literals `Microsoft.Dynamics.DataEntities.T'Member'`, dates as midday UTC.
    FinOps,
}

/// A Finance & Operations enum type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumType {
    /// Its name (`NoYes`).
    pub name: String,
    /// Its member names (`No`, `Yes`).
    pub members: Vec<String>,
}

impl TableSchema {
    /// The SQL columns that identify a row: the primary key of a Dataverse table, the key
    /// fields of a Finance & Operations entity (`dataareaid`, `customeraccount`).
    pub fn key_columns(&self) -> Vec<String> {
        if self.dialect == Dialect::FinOps && !self.key_fields.is_empty() {
            return self.key_fields.iter().map(|k| k.name.to_ascii_lowercase()).collect();
        }
        vec![self.primary_key.to_ascii_lowercase()]
    }

    /// The column named `name` (case-insensitive) and its index.
    pub fn column(&self, name: &str) -> Option<(usize, &ColumnSpec)> {
        self.columns.iter().enumerate().find(|(_, c)| c.name.eq_ignore_ascii_case(name))
    }
}

/// The Arrow type and filter kind of a Dataverse column, or `None` when it has no readable
/// Web API value.
fn value_kind(a: &AttributeInfo) -> Option<(ValueKind, FilterKind, bool)> {
    if a.is_multi_select() {
        return Some((ValueKind::Utf8, FilterKind::None, false));
    }
    Some(match a.attribute_type.as_str() {
        "String" | "Memo" => (ValueKind::Utf8, FilterKind::Text, false),
        "EntityName" => (ValueKind::Utf8, FilterKind::None, false),
        "Integer" => (ValueKind::Int32, FilterKind::Integer, true),
        "BigInt" => (ValueKind::Int64, FilterKind::Integer, true),
        "Picklist" | "State" | "Status" => (ValueKind::Int32, FilterKind::Integer, false),
        "Decimal" => {
            let scale = a.precision.unwrap_or(2).clamp(0, 18);
            (ValueKind::Decimal { scale: scale as i8 }, FilterKind::Decimal, true)
        }
        "Money" => (ValueKind::Decimal { scale: 4 }, FilterKind::Decimal, true),
        "Double" => (ValueKind::Float64, FilterKind::Float, true),
        "Boolean" => (ValueKind::Boolean, FilterKind::Boolean, false),
        "DateTime" if a.is_date_only() => (ValueKind::Date32, FilterKind::Date, true),
        "DateTime" => (ValueKind::Timestamp, FilterKind::Timestamp, true),
        "Uniqueidentifier" | "Lookup" | "Customer" | "Owner" => (ValueKind::Utf8, FilterKind::Guid, false),
        // Finance & Operations enums travel as member names.
        "Enum" => (ValueKind::Utf8, FilterKind::Enum, false),
        _ => return None,
    })
}

/// The entity key of a Finance & Operations entity with how each field's values are written;
/// empty when a key field is not a readable column of a comparable type.
fn finops_key_fields(
    meta: &EntityMetadata,
    columns: &[ColumnSpec],
    enums: &HashMap<String, EnumType>,
) -> Vec<d365_client::KeyField> {
    use d365_client::{KeyField, KeyKind};
    let Some(key) = meta.keys.first() else { return Vec::new() };
    let fields: Option<Vec<KeyField>> = key
        .key_attributes
        .iter()
        .map(|name| {
            let c = columns.iter().find(|c| c.role == ColumnRole::Value && c.property == *name)?;
            let kind = match c.filter {
                FilterKind::Text => KeyKind::Text,
                FilterKind::Integer | FilterKind::Decimal | FilterKind::Float => KeyKind::Number,
                FilterKind::Timestamp | FilterKind::Date => KeyKind::Instant,
                FilterKind::Guid => KeyKind::Guid,
                FilterKind::Enum => KeyKind::Enum(enums.get(name)?.name.clone()),
                FilterKind::Boolean | FilterKind::None => return None,
            };
            Some(KeyField { name: name.clone(), kind })
        })
        .collect();
    fields.unwrap_or_default()
}

/// Builds the SQL shape of a table from its metadata.
pub fn table_schema(meta: &EntityMetadata) -> TableSchema {
    let readable: Vec<&AttributeInfo> = meta
        .attributes
        .iter()
        .filter(|a| a.is_valid_for_read && a.attribute_of.is_none() && !a.logical_name.is_empty())
        .filter(|a| value_kind(a).is_some())
        .collect();
    let real: HashSet<String> = readable.iter().map(|a| a.logical_name.to_ascii_lowercase()).collect();
    let mut columns = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    let primary = meta.entity.primary_id_attribute.clone();
    // The primary key first, then the rest in logical-name order.
    let mut ordered = readable.clone();
    ordered.sort_by_key(|a| (a.logical_name != primary, a.logical_name.clone()));
    for a in ordered {
        let Some((kind, filter, sortable)) = value_kind(a) else { continue };
        let property = a.select_name();
        let name = a.logical_name.to_ascii_lowercase();
        if !taken.insert(name.clone()) {
            continue;
        }
        columns.push(ColumnSpec {
            name: name.clone(),
            property: property.clone(),
            json_key: property.clone(),
            role: ColumnRole::Value,
            kind,
            attribute_type: a.attribute_type.clone(),
            filter,
            sortable,
        });
        let mut virtual_column = |suffix: &str, role: ColumnRole, annotation: &str| {
            let vname = format!("{name}{suffix}");
            // A real column of that name wins (and is never an AttributeOf helper here).
            if real.contains(&vname) || !taken.insert(vname.clone()) {
                return;
            }
            columns.push(ColumnSpec {
                name: vname,
                property: property.clone(),
                json_key: format!("{property}@{annotation}"),
                role,
                kind: ValueKind::Utf8,
                attribute_type: a.attribute_type.clone(),
                filter: FilterKind::None,
                sortable: false,
            });
        };
        if a.is_lookup() {
            virtual_column("name", ColumnRole::FormattedValue, FORMATTED_VALUE);
            virtual_column("type", ColumnRole::LookupLogicalName, LOOKUP_LOGICAL_NAME);
        } else if a.has_options() {
            virtual_column("name", ColumnRole::FormattedValue, FORMATTED_VALUE);
        }
    }
    let fields: Vec<Field> = columns.iter().map(|c| Field::new(&c.name, c.kind.data_type(), true)).collect();
    let enums = meta
        .attributes
        .iter()
        .filter(|a| a.attribute_type == "Enum")
        .filter_map(|a| {
            let name = a.option_set_name.clone()?;
            Some((
                a.logical_name.clone(),
                EnumType { name, members: a.options.iter().map(|o| o.label.clone()).collect() },
            ))
        })
        .collect();
    let dialect = if meta.entity.data_entity { Dialect::FinOps } else { Dialect::Dataverse };
    let key_fields = if dialect == Dialect::FinOps { finops_key_fields(meta, &columns, &enums) } else { Vec::new() };
    TableSchema {
        dialect,
        enums,
        key_fields,
        entity_set: meta.entity.entity_set_name.clone().unwrap_or_default(),
        primary_key: primary,
        entity: meta.entity.clone(),
        columns,
        arrow: Arc::new(Schema::new(fields)),
    }
}
