//! The metadata side of the Web API: `EntityDefinitions` (with `Attributes`, typed attribute
//! casts, option sets, keys and relationships), `RelationshipDefinitions` and
//! `GlobalOptionSetDefinitions`, answered from the schema as pure functions.

mod attribute;
mod entity;
mod optionset;
mod relationship;
pub mod types;

/// A JSON object from `"key": expression` pairs, in order. Unlike `serde_json::json!`, it does not
/// recurse per entry, so the long metadata objects stay within the macro recursion limit; nested
/// objects are written with `json!` and nulls as `Value::Null`.
macro_rules! object {
    ($($k:literal : $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $( m.insert(String::from($k), serde_json::json!($v)); )*
        m
    }};
}
use object;
