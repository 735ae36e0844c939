//! Dataverse error codes (`error.code` of a Web API error body) that callers act on. The
//! service's list: "Web service error codes" on Microsoft Learn.

/// A record with matching key values already exists (a duplicate alternate key).
pub const DUPLICATE_KEY: &str = "0x80040237";
/// The record does not exist: also a lookup set to a record that does not exist.
pub const DOES_NOT_EXIST: &str = "0x80040217";
/// The table (entity) name is not one the organisation has.
pub const UNKNOWN_TABLE: &str = "0x80041102";
/// A value the service's validation refused: out of range, too long, not one of a choice's
/// values.
pub const VALIDATION: &str = "0x80044331";
