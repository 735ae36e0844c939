//! Columns created at runtime (`POST EntityDefinitions(...)/Attributes`, or
//! [`crate::Emulator::add_column`]): what a new column is, the checks Dataverse makes on its name
//! and settings, and the [`Column`]s it becomes. A money column brings its read-only `_base`
//! twin and, on a table that has none, the currency lookup and exchange rate, as in Dataverse.
//!
//! A [`NewColumn`] is also what the store keeps to re-create the column's definition when a
//! `--data` file is opened again, so it (de)serializes.

use super::builder::{col, meta_id};
use super::*;
use serde::{Deserialize, Serialize};

/// Longest column schema name the emulator accepts (Dataverse reports its limit in
/// `SchemaNameLengthExceedsLimit`; the value 50 is the emulator's, unconfirmed in the docs).
pub const MAX_SCHEMA_NAME: usize = 50;
/// The customization prefix of the environment's default publisher (`new_`).
pub const DEFAULT_PREFIX: &str = "new";
/// The value given to the first option created without one: the default publisher's option
/// value prefix (10,000) followed by a counter from 0000.
pub const OPTION_VALUE_BASE: i32 = 100_000_000;

/// A column to add to an existing table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewColumn {
    /// Schema name with a customization prefix (`new_Nickname`); the logical name is its lower case.
    pub schema_name: String,
    /// Display label (the schema name when empty).
    pub display_name: String,
    /// Description label.
    #[serde(default)]
    pub description: String,
    /// Requirement level (`SystemRequired` is the platform's and cannot be chosen).
    pub required: RequiredLevel,
    /// The type and its settings.
    pub kind: NewColumnKind,
}

/// The type of a new column and its type-specific settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum NewColumnKind {
    /// Single line of text (`StringAttributeMetadata`).
    String {
        /// Maximum length, 1 to 4,000.
        max_length: u32,
        /// Format.
        format: StringFormat,
    },
    /// Multiple lines of text (`MemoAttributeMetadata`).
    Memo {
        /// Maximum length, 1 to 1,048,576.
        max_length: u32,
    },
    /// Whole number (`IntegerAttributeMetadata`).
    Integer {
        /// Smallest value.
        min: i32,
        /// Largest value.
        max: i32,
    },
    /// Big integer (`BigIntAttributeMetadata`).
    BigInt,
    /// Decimal number (`DecimalAttributeMetadata`).
    Decimal {
        /// Digits after the point, 0 to 10.
        precision: u32,
        /// Smallest value (at least -100,000,000,000).
        min: f64,
        /// Largest value (at most 100,000,000,000).
        max: f64,
    },
    /// Floating-point number (`DoubleAttributeMetadata`).
    Double {
        /// Digits after the point, 0 to 5.
        precision: u32,
        /// Smallest value (at least -100,000,000,000).
        min: f64,
        /// Largest value (at most 100,000,000,000).
        max: f64,
    },
    /// Currency (`MoneyAttributeMetadata`).
    Money {
        /// Digits after the point, 0 to 4.
        precision: u32,
        /// Smallest value (at least -922,337,203,685,477).
        min: f64,
        /// Largest value (at most 922,337,203,685,477).
        max: f64,
    },
    /// Yes/No (`BooleanAttributeMetadata`).
    Boolean {
        /// Label of `false` (value 0).
        false_label: String,
        /// Label of `true` (value 1).
        true_label: String,
    },
    /// Date and time (`DateTimeAttributeMetadata`).
    DateTime {
        /// Behaviour.
        behavior: DateTimeBehavior,
        /// `Format` `DateOnly` (else `DateAndTime`).
        date_only: bool,
    },
    /// Choice with a local option set (`PicklistAttributeMetadata`).
    Picklist {
        /// The options.
        options: Vec<NewOption>,
    },
    /// Choices with a local option set (`MultiSelectPicklistAttributeMetadata`).
    MultiSelectPicklist {
        /// The options.
        options: Vec<NewOption>,
    },
}

/// One option of a new choice column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOption {
    /// The stored value; `None` takes the next free value from [`OPTION_VALUE_BASE`].
    pub value: Option<i32>,
    /// The label.
    pub label: String,
}

/// `StringFormatName` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum StringFormat {
    Text,
    Email,
    Phone,
    Url,
    TextArea,
    TickerSymbol,
    PhoneticGuide,
    VersionNumber,
    Json,
    RichText,
}

impl StringFormat {
    /// All formats.
    pub const ALL: [StringFormat; 10] = [
        StringFormat::Text,
        StringFormat::Email,
        StringFormat::Phone,
        StringFormat::Url,
        StringFormat::TextArea,
        StringFormat::TickerSymbol,
        StringFormat::PhoneticGuide,
        StringFormat::VersionNumber,
        StringFormat::Json,
        StringFormat::RichText,
    ];

    /// The metadata text (`Email`).
    pub fn as_str(self) -> &'static str {
        match self {
            StringFormat::Text => "Text",
            StringFormat::Email => "Email",
            StringFormat::Phone => "Phone",
            StringFormat::Url => "Url",
            StringFormat::TextArea => "TextArea",
            StringFormat::TickerSymbol => "TickerSymbol",
            StringFormat::PhoneticGuide => "PhoneticGuide",
            StringFormat::VersionNumber => "VersionNumber",
            StringFormat::Json => "Json",
            StringFormat::RichText => "RichText",
        }
    }

    /// The format named `s` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(s))
    }
}

/// `DateTimeBehavior.Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DateTimeBehavior {
    /// Stored in UTC, shown in the user's time zone.
    UserLocal,
    /// A date without a time (`Edm.Date`).
    DateOnly,
    /// Stored and shown as entered.
    TimeZoneIndependent,
}

impl DateTimeBehavior {
    /// The metadata text.
    pub fn as_str(self) -> &'static str {
        match self {
            DateTimeBehavior::UserLocal => "UserLocal",
            DateTimeBehavior::DateOnly => "DateOnly",
            DateTimeBehavior::TimeZoneIndependent => "TimeZoneIndependent",
        }
    }

    /// The behaviour named `s` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        [DateTimeBehavior::UserLocal, DateTimeBehavior::DateOnly, DateTimeBehavior::TimeZoneIndependent]
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s))
    }
}

/// Which customization prefixes a new schema name may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixRule {
    /// Only the default publisher's (`new_`): a request outside any solution.
    DefaultPublisher,
    /// Any well-formed publisher prefix (2 to 8 letters or digits, starting with a letter, not
    /// `mscrm`): a request naming a solution (`MSCRM.SolutionUniqueName`), whose publisher the
    /// emulator does not keep.
    AnyPublisher,
}

/// Why a column cannot be created. Each maps to one Dataverse error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddColumnError {
    /// No table has this logical name.
    #[error("Could not find an entity with name {0} and id 00000000-0000-0000-0000-000000000000.")]
    UnknownTable(String),
    /// `SchemaNameNotStartwithLetter`.
    #[error("Identifers should start with a letter. The schema name {0} for type Attribute doesn't start with letter.")]
    NotStartWithLetter(String),
    /// `SchemaNameContainsNonAlphaNumericCharacters`.
    #[error("Identifier {0} for type Attribute can only consist of alpha-numeric and underscore characters.")]
    NonAlphanumeric(String),
    /// `SchemaNameLengthExceedsLimit`.
    #[error(
        "Identifiers cannot be more than {max} characters long. The provided schema name {name} length for type Attribute is greater than maxlength {max} characters."
    )]
    TooLong {
        /// The schema name.
        name: String,
        /// The limit.
        max: usize,
    },
    /// `InvalidNamePrefix`: no prefix, or not the publisher's.
    #[error(
        "The schema name {0} for type Attribute is invalid or missing.Custom attribute, entity, entitykey, option set and relationship names must start with a valid customization prefix.The prefix for a solution component should match the prefix that is specified for the publisher of the solution."
    )]
    InvalidPrefix(String),
    /// `DuplicateAttributeSchemaName`: the table already has a column of this name.
    #[error("An attribute with the specified name {name} already exists on entity {table}.")]
    Duplicate {
        /// The schema name asked for.
        name: String,
        /// The table.
        table: String,
    },
    /// `SchemaNameMatchesExistingIdentifier`: the name is a navigation property of the table.
    #[error(
        "Identifiers cannot match existing object names. An object of type NavigationProperty with same name {0} already exists."
    )]
    MatchesExisting(String),
    /// `InvalidArgument`: a setting out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// The store could not add the column.
    #[error("storage: {0}")]
    Store(String),
}

impl NewColumn {
    /// A column of `kind`, optional, described only by its display name.
    pub fn new(schema_name: impl Into<String>, display_name: impl Into<String>, kind: NewColumnKind) -> Self {
        Self {
            schema_name: schema_name.into(),
            display_name: display_name.into(),
            description: String::new(),
            required: RequiredLevel::None,
            kind,
        }
    }

    /// A text column of up to `max_length` characters.
    pub fn string(schema_name: impl Into<String>, display_name: impl Into<String>, max_length: u32) -> Self {
        Self::new(schema_name, display_name, NewColumnKind::String { max_length, format: StringFormat::Text })
    }

    /// A currency column with two decimals and Dataverse's default bounds.
    pub fn money(schema_name: impl Into<String>, display_name: impl Into<String>) -> Self {
        Self::new(schema_name, display_name, NewColumnKind::Money { precision: 2, min: MONEY_MIN, max: MONEY_MAX })
    }

    /// The logical name: the schema name in lower case.
    pub fn logical_name(&self) -> String {
        self.schema_name.to_ascii_lowercase()
    }

    /// Checks the name and settings against `table` of `schema` and returns the columns to add
    /// (the new column first).
    pub fn columns(&self, schema: &Schema, table: &Table, prefix: PrefixRule) -> Result<Vec<Column>, AddColumnError> {
        self.check_name(schema, table, prefix)?;
        self.check_settings()?;
        let mut out = vec![self.column(table)?];
        if matches!(self.kind, NewColumnKind::Money { .. }) {
            let mut base =
                col(&format!("{}_base", self.logical_name()), &format!("{} (Base)", self.display()), AttrKind::Money)
                    .read_only();
            base.schema_name = format!("{}_Base", self.schema_name);
            base.is_custom = true;
            base.precision = Some(4);
            base.min_value = out[0].min_value;
            base.max_value = out[0].max_value;
            out.push(base);
            if table.column("transactioncurrencyid").is_none() {
                out.extend(tables::currency_columns(&table.logical_name));
            }
        }
        let next = table.columns.iter().map(|c| c.column_number).max().unwrap_or(0);
        for (i, c) in out.iter_mut().enumerate() {
            c.metadata_id = meta_id("attribute", &format!("{}.{}", table.logical_name, c.logical_name));
            c.column_number = next + i as u32 + 1;
        }
        Ok(out)
    }

    fn display(&self) -> &str {
        if self.display_name.trim().is_empty() { &self.schema_name } else { &self.display_name }
    }

    fn check_name(&self, schema: &Schema, table: &Table, rule: PrefixRule) -> Result<(), AddColumnError> {
        let name = self.schema_name.as_str();
        if name.is_empty() {
            return Err(AddColumnError::InvalidPrefix(String::new()));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(AddColumnError::NotStartWithLetter(name.into()));
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(AddColumnError::NonAlphanumeric(name.into()));
        }
        if name.len() > MAX_SCHEMA_NAME {
            return Err(AddColumnError::TooLong { name: name.into(), max: MAX_SCHEMA_NAME });
        }
        let prefix_ok = match name.split_once('_') {
            Some((prefix, rest)) if !rest.is_empty() => match rule {
                PrefixRule::DefaultPublisher => prefix.eq_ignore_ascii_case(DEFAULT_PREFIX),
                PrefixRule::AnyPublisher => {
                    (2..=8).contains(&prefix.len())
                        && prefix.chars().all(|c| c.is_ascii_alphanumeric())
                        && !prefix.eq_ignore_ascii_case("mscrm")
                }
            },
            _ => false,
        };
        if !prefix_ok {
            return Err(AddColumnError::InvalidPrefix(name.into()));
        }
        let logical = self.logical_name();
        let taken = |n: &str| {
            table.column(n).is_some()
                || table.columns.iter().any(|c| c.is_polymorphic() && format!("{}_type", c.logical_name) == n)
        };
        let base = format!("{logical}_base");
        if taken(&logical) || (matches!(self.kind, NewColumnKind::Money { .. }) && taken(&base)) {
            return Err(AddColumnError::Duplicate { name: name.into(), table: table.logical_name.clone() });
        }
        let t = &table.logical_name;
        if schema.single_nav(t, &logical).is_some() || schema.collection_nav(t, &logical).is_some() {
            return Err(AddColumnError::MatchesExisting(name.into()));
        }
        Ok(())
    }

    fn check_settings(&self) -> Result<(), AddColumnError> {
        let invalid = |m: String| Err(AddColumnError::Invalid(m));
        if self.required == RequiredLevel::SystemRequired {
            return invalid(format!(
                "The RequiredLevel SystemRequired of attribute {} is reserved for the platform; use None, Recommended or ApplicationRequired.",
                self.schema_name
            ));
        }
        let range = |what: &str, v: f64, lo: f64, hi: f64| self.in_range(what, v, lo, hi);
        match &self.kind {
            NewColumnKind::String { max_length, .. } => range("MaxLength", f64::from(*max_length), 1.0, 4000.0),
            NewColumnKind::Memo { max_length } => range("MaxLength", f64::from(*max_length), 1.0, 1_048_576.0),
            NewColumnKind::Integer { min, max } if min > max => {
                invalid(format!("MinValue {min} is greater than MaxValue {max} for attribute {}.", self.schema_name))
            }
            NewColumnKind::Integer { .. } | NewColumnKind::BigInt | NewColumnKind::Boolean { .. } => Ok(()),
            NewColumnKind::Decimal { precision, min, max } => {
                self.numeric(*precision, 10, (*min, *max), (DECIMAL_MIN, DECIMAL_MAX))
            }
            NewColumnKind::Double { precision, min, max } => {
                self.numeric(*precision, 5, (*min, *max), (DECIMAL_MIN, DECIMAL_MAX))
            }
            NewColumnKind::Money { precision, min, max } => {
                self.numeric(*precision, 4, (*min, *max), (MONEY_MIN, MONEY_MAX))
            }
            NewColumnKind::DateTime { behavior: DateTimeBehavior::DateOnly, date_only: false } => invalid(format!(
                "The DateTimeBehavior DateOnly of attribute {} needs the Format DateOnly.",
                self.schema_name
            )),
            NewColumnKind::DateTime { .. } => Ok(()),
            NewColumnKind::Picklist { options } | NewColumnKind::MultiSelectPicklist { options } => {
                let mut seen = std::collections::HashSet::new();
                for v in options.iter().filter_map(|o| o.value) {
                    if !seen.insert(v) {
                        return invalid(format!(
                            "The option value {v} appears more than once in the option set of attribute {}.",
                            self.schema_name
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// `Invalid` unless `lo <= v <= hi`.
    fn in_range(&self, what: &str, v: f64, lo: f64, hi: f64) -> Result<(), AddColumnError> {
        if v.is_finite() && (lo..=hi).contains(&v) {
            return Ok(());
        }
        Err(AddColumnError::Invalid(format!(
            "The {what} {v} of attribute {} is out of range [{lo}, {hi}].",
            self.schema_name
        )))
    }

    /// Checks a precision up to `max_precision` and bounds `(min, max)` inside `(lo, hi)`.
    fn numeric(
        &self,
        precision: u32,
        max_precision: u32,
        bounds: (f64, f64),
        limits: (f64, f64),
    ) -> Result<(), AddColumnError> {
        let ((min, max), (lo, hi)) = (bounds, limits);
        self.in_range("Precision", f64::from(precision), 0.0, f64::from(max_precision))?;
        self.in_range("MinValue", min, lo, hi)?;
        self.in_range("MaxValue", max, lo, hi)?;
        if min > max {
            return Err(AddColumnError::Invalid(format!(
                "MinValue {min} is greater than MaxValue {max} for attribute {}.",
                self.schema_name
            )));
        }
        Ok(())
    }

    /// The new column itself (ids and numbers are set by [`NewColumn::columns`]).
    fn column(&self, table: &Table) -> Result<Column, AddColumnError> {
        let kind = match &self.kind {
            NewColumnKind::String { .. } => AttrKind::String,
            NewColumnKind::Memo { .. } => AttrKind::Memo,
            NewColumnKind::Integer { .. } => AttrKind::Integer,
            NewColumnKind::BigInt => AttrKind::BigInt,
            NewColumnKind::Decimal { .. } => AttrKind::Decimal,
            NewColumnKind::Double { .. } => AttrKind::Double,
            NewColumnKind::Money { .. } => AttrKind::Money,
            NewColumnKind::Boolean { .. } => AttrKind::Boolean,
            NewColumnKind::DateTime { behavior: DateTimeBehavior::DateOnly, .. } => AttrKind::DateOnly,
            NewColumnKind::DateTime { .. } => AttrKind::DateTime,
            NewColumnKind::Picklist { .. } => AttrKind::Picklist,
            NewColumnKind::MultiSelectPicklist { .. } => AttrKind::MultiSelectPicklist,
        };
        let logical = self.logical_name();
        let mut c = col(&logical, self.display(), kind);
        c.schema_name = self.schema_name.clone();
        c.description = self.description.clone();
        c.required = self.required;
        c.is_custom = true;
        let option = |value: i32, label: &str| OptionDef {
            value,
            label: label.to_string(),
            state: None,
            default_status: None,
            invariant_name: None,
        };
        match &self.kind {
            NewColumnKind::String { max_length, format } => {
                c.max_length = Some(*max_length);
                c.format = Some(format.as_str());
            }
            NewColumnKind::Memo { max_length } => c.max_length = Some(*max_length),
            NewColumnKind::Integer { min, max } => {
                (c.min_value, c.max_value) = (Some(f64::from(*min)), Some(f64::from(*max)));
            }
            NewColumnKind::Decimal { precision, min, max }
            | NewColumnKind::Double { precision, min, max }
            | NewColumnKind::Money { precision, min, max } => {
                (c.precision, c.min_value, c.max_value) = (Some(*precision), Some(*min), Some(*max));
            }
            NewColumnKind::Boolean { false_label, true_label } => {
                c.options = vec![option(0, false_label), option(1, true_label)];
            }
            NewColumnKind::DateTime { behavior, date_only } => {
                c.datetime_behavior = Some(behavior.as_str());
                c.format = Some(if *date_only { "DateOnly" } else { "DateAndTime" });
            }
            NewColumnKind::Picklist { options } | NewColumnKind::MultiSelectPicklist { options } => {
                let taken: std::collections::HashSet<i32> = options.iter().filter_map(|o| o.value).collect();
                let mut next = OPTION_VALUE_BASE;
                for o in options {
                    let value = match o.value {
                        Some(v) => v,
                        None => {
                            while taken.contains(&next) {
                                next = next.checked_add(1).ok_or_else(|| {
                                    AddColumnError::Invalid("No option value is left to assign.".into())
                                })?;
                            }
                            next += 1;
                            next - 1
                        }
                    };
                    c.options.push(option(value, &o.label));
                }
            }
            NewColumnKind::BigInt => {}
        }
        if kind.has_options() || kind == AttrKind::Boolean {
            c.option_set_name = Some(format!("{}_{logical}", table.logical_name));
        }
        Ok(c)
    }
}

/// Dataverse's default bounds of a money column.
pub const MONEY_MIN: f64 = -922_337_203_685_477.0;
/// Dataverse's default bounds of a money column.
pub const MONEY_MAX: f64 = 922_337_203_685_477.0;
/// Dataverse's bounds of decimal and floating-point columns.
pub const DECIMAL_MIN: f64 = -100_000_000_000.0;
/// Dataverse's bounds of decimal and floating-point columns.
pub const DECIMAL_MAX: f64 = 100_000_000_000.0;

impl Table {
    /// Appends `c` (keeping the name index).
    fn push_column(&mut self, c: Column) {
        self.index.insert(c.logical_name.clone(), self.columns.len());
        self.columns.push(c);
    }
}

impl Schema {
    /// A copy of this schema with `columns` appended to `table` (relationships re-derived, so a
    /// new lookup brings its relationship); `None` when there is no such table.
    pub fn with_columns(&self, table: &str, columns: Vec<Column>) -> Option<Schema> {
        let mut tables = self.tables.clone();
        let t = tables.iter_mut().find(|t| t.logical_name == table)?;
        for c in columns {
            t.push_column(c);
        }
        Some(Schema::from_tables(tables))
    }

    /// Re-creates the definition of `column`, added earlier to `table` (when the store is
    /// opened again): the same checks and columns as when it was first created.
    pub fn with_new_column(&self, table: &str, column: &NewColumn) -> Result<Schema, AddColumnError> {
        let t = self.table(table).ok_or_else(|| AddColumnError::UnknownTable(table.into()))?;
        let cols = column.columns(self, t, PrefixRule::AnyPublisher)?;
        self.with_columns(table, cols).ok_or_else(|| AddColumnError::UnknownTable(table.into()))
    }
}

#[cfg(test)]
mod tests;
