//! The errors Dataverse answers to FetchXML it cannot run, all `400` with its JSON error body.
//!
//! Codes are the platform's `QueryBuilder*` codes (`0x800411xx`, from the SDK's `ErrorCodes`
//! list) and `0x80040203` (`InvalidArgument`). Confirmed in Microsoft's documentation:
//! `0x8004E023` (`AggregateQueryRecordLimit exceeded. Cannot perform this operation.`) and
//! `0x8004430D` (`Number of link entities in query exceeded maximum limit.`). The others
//! follow the code names and the messages seen from the service; their exact wording is
//! **unconfirmed** (the documentation does not list them).

use crate::schema::Column;
use crate::schema::Table;
use crate::webapi::error::DvError;
use axum::http::StatusCode;
use d365_odata::fetchxml::{FetchXmlError, FetchXmlErrorKind as K};

fn bad(code: &'static str, message: impl Into<String>) -> DvError {
    DvError::new(StatusCode::BAD_REQUEST, code, message)
}

/// A structural error of the parser, with the code of its kind.
pub fn parse(e: FetchXmlError) -> DvError {
    let code = match e.kind {
        K::InvalidNode => "0x8004111c",       // QueryBuilderDeserializeInvalidNode
        K::InvalidOperator => "0x80041120",   // QueryBuilderInvalidConditionOperator
        K::InvalidFilterType => "0x80041122", // QueryBuilderInvalidFilterType
        K::InvalidLinkType => "0x80041117",   // QueryBuilderDeserializeInvalidLinkType
        K::InvalidAggregate => "0x8004111a",  // QueryBuilderDeserializeInvalidAggregate
        K::InvalidValueCount => "0x80041106", // QueryBuilderBad_Condition
        _ => "0x80040203",                    // InvalidArgument: not well-formed / schema errors
    };
    bad(code, e.message)
}

/// `0x80041103` QueryBuilderNoAttribute: a column the table does not have.
pub fn no_attribute(table: &str, attribute: &str) -> DvError {
    bad(
        "0x80041103",
        format!("'{table}' entity doesn't contain attribute with Name = '{attribute}' and NameMapping = 'Logical'."),
    )
}

/// `0x80041102` QueryBuilderNoEntity: a table that does not exist.
pub fn no_entity(name: &str) -> DvError {
    bad(
        "0x80041102",
        format!("The entity with a name = '{name}' with namemapping = 'Logical' was not found in the MetadataCache."),
    )
}

/// `0x80041128` QueryBuilderEntitiesDontMatch: the `entity` is not the table of the entity set in the URL.
pub fn entity_mismatch(entity: &str, set: &str) -> DvError {
    bad(
        "0x80041128",
        format!("The entity name '{entity}' in the FetchXML does not match the entity set '{set}' of the request."),
    )
}

/// `0x8004110a` QueryBuilderAlias_Does_Not_Exist: an `entityname` naming no link-entity.
pub fn no_alias(alias: &str) -> DvError {
    bad("0x8004110a", format!("No link-entity with the alias '{alias}' exists in the query."))
}

/// `0x80041109` QueryBuilderInvalid_Alias: two link-entities or columns with the same name.
pub fn duplicate_alias(alias: &str) -> DvError {
    bad("0x80041109", format!("The alias '{alias}' is used more than once in the query."))
}

/// `0x8004430D`: more than 15 link-entities (documented).
pub fn too_many_links() -> DvError {
    bad("0x8004430D", "Number of link entities in query exceeded maximum limit.")
}

/// `0x8004E023`: an aggregate over more source rows than the limit (documented).
pub fn aggregate_limit() -> DvError {
    bad("0x8004E023", "AggregateQueryRecordLimit exceeded. Cannot perform this operation.")
}

/// `0x80040203`: a condition value that does not convert to the column's type.
pub fn bad_value(value: &str, table: &Table, column: &Column, clr: &str) -> DvError {
    bad(
        "0x80040203",
        format!(
            "An exception System.FormatException was thrown while trying to convert input value '{value}' to attribute '{}.{}'. Expected type of attribute value: {clr}. Exception raised: Input string was not in a correct format.",
            table.logical_name, column.logical_name
        ),
    )
}

/// `0x80041106` QueryBuilderBad_Condition: an operator that does not apply to the column's type.
pub fn operator_type(op: &str, table: &str, column: &Column) -> DvError {
    bad(
        "0x80041106",
        format!(
            "The condition operator '{op}' is not valid for the attribute '{table}.{}' of type '{}'.",
            column.logical_name,
            column.kind.attribute_type()
        ),
    )
}

/// `0x80040203`: columns requested from a link-entity that cannot return any.
pub fn subquery_columns(link_type: &str) -> DvError {
    bad("0x80040203", format!("A link-entity with link-type '{link_type}' cannot return columns."))
}

/// `0x8004111a` QueryBuilderDeserializeInvalidAggregate: a malformed aggregate query.
pub fn aggregate(message: impl Into<String>) -> DvError {
    bad("0x8004111a", message)
}

/// `0x80040203`: an invalid combination of `fetch` attributes or query options.
pub fn invalid(message: impl Into<String>) -> DvError {
    bad("0x80040203", message)
}

/// `501`: a documented feature this emulator does not evaluate (fiscal calendars,
/// hierarchies, team membership, row aggregates, retained data).
pub fn not_emulated(what: &str) -> DvError {
    DvError::new(
        StatusCode::NOT_IMPLEMENTED,
        "0x80040216",
        format!("The FetchXML feature '{what}' is not implemented by this emulator."),
    )
}
