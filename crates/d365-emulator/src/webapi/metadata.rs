//! The metadata side of the Web API: `EntityDefinitions` (with `Attributes`, typed attribute
//! casts, option sets, keys and relationships), `RelationshipDefinitions` and
//! `GlobalOptionSetDefinitions`, answered from the schema as pure functions.
//!
//! Behaviour follows the service: `$select` works on any property of the addressed type and
//! `MetadataId` is always returned; `$filter` works on primitive and enum properties (enum
//! literals carry their type, managed properties are filtered through `/Value`);
//! `$expand` reaches the collection-valued navigation properties (`Attributes`, `Keys`,
//! relationships) and, through a cast, `OptionSet`/`GlobalOptionSet`; there is no paging
//! and every other query option is refused. Without a cast, attributes (and
//! `RelationshipDefinitions` items) show only the properties of the base type, each item
//! carrying its derived `@odata.type`; type-specific properties need the cast.
//!
//! One write is emulated: `POST EntityDefinitions(<key>)/Attributes` creates a column
//! ([`create_attribute`]).

mod attribute;
pub mod create_attribute;
mod entity;
mod optionset;
mod query;
mod relationship;
pub mod types;

use crate::schema::{AlternateKey, Column, Relationship, Schema, Table};
use crate::state::Urls;
use crate::webapi::error::{DvError, DvResult};
use axum::http::StatusCode;
use query::Options;
use serde_json::{Map, Value, json};
use types::MetaType;
use uuid::Uuid;

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

const NAMESPACE: &str = "Microsoft.Dynamics.CRM";

fn ty(name: &str) -> &'static MetaType {
    types::meta_type(name).unwrap_or_else(|| panic!("metadata type {name} is declared in types.rs"))
}

/// The element type of a navigation property type (`Collection(mscrm.X)` or `mscrm.X`).
fn nav_element(nav_type: &str) -> (&'static MetaType, bool) {
    match nav_type.strip_prefix("Collection(mscrm.").and_then(|t| t.strip_suffix(')')) {
        Some(inner) => (ty(inner), true),
        None => (ty(nav_type.trim_start_matches("mscrm.")), false),
    }
}

// ---------------------------------------------------------------- errors

fn entity_not_found(key: &Key) -> DvError {
    let msg = match key {
        Key::Id(id) => format!("Could not find an entity with id {id}."),
        Key::Named(_, name) => {
            format!("Could not find an entity with name {name} and id 00000000-0000-0000-0000-000000000000.")
        }
    };
    DvError::new(StatusCode::NOT_FOUND, "0x80040217", msg)
}

fn attribute_not_found(t: &Table, key: &Key) -> DvError {
    let msg = match key {
        Key::Id(id) => format!("'{}' entity doesn't contain attribute with MetadataId = '{id}'.", t.logical_name),
        Key::Named(_, name) => format!(
            "'{}' entity doesn't contain attribute with Name = '{name}' and NameMapping = 'Logical'.",
            t.logical_name
        ),
    };
    DvError::new(StatusCode::NOT_FOUND, "0x80041103", msg)
}

fn item_not_found(what: &str, key: &Key) -> DvError {
    let msg = match key {
        Key::Id(id) => format!("Could not find {what} with id {id}."),
        Key::Named(_, name) => format!("Could not find {what} with name {name}."),
    };
    DvError::new(StatusCode::NOT_FOUND, "0x80040217", msg)
}

fn unknown_property(prop: &str, on: &str) -> DvError {
    DvError::bad_query(format!("Could not find a property named '{prop}' on type '{NAMESPACE}.{on}'."))
}

// ---------------------------------------------------------------- URL segments and keys

/// A key in parentheses: a bare `MetadataId`, or an alternate key `Name='value'`.
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Id(Uuid),
    Named(String, String),
}

impl Key {
    fn parse(raw: &str) -> DvResult<Key> {
        let raw = raw.trim();
        let bad = || DvError::bad_query(format!("Bad Request - Error in query syntax: the key '{raw}' is not valid."));
        if let Ok(id) = Uuid::try_parse(raw) {
            return Ok(Key::Id(id));
        }
        let (name, value) = raw.split_once('=').ok_or_else(bad)?;
        let (name, value) = (name.trim(), value.trim());
        if name == "MetadataId" {
            return Uuid::try_parse(value).map(Key::Id).map_err(|_| bad());
        }
        let inner = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).ok_or_else(bad)?;
        Ok(Key::Named(name.to_string(), inner.replace("''", "'")))
    }

    /// The alternate key value if the key uses the expected alternate-key property.
    fn named(&self, property: &str) -> DvResult<Option<&str>> {
        match self {
            Key::Id(_) => Ok(None),
            Key::Named(n, v) if n == property => Ok(Some(v)),
            Key::Named(n, _) => Err(DvError::bad_query(format!(
                "The key property '{n}' is not valid here; use the MetadataId or {property}='…'."
            ))),
        }
    }

    /// How the key appears in `@odata.context` (`'account'` or the bare GUID).
    fn context(&self) -> String {
        match self {
            Key::Id(id) => id.to_string(),
            Key::Named(_, v) => format!("'{}'", v.replace('\'', "''")),
        }
    }
}

/// Splits the path on `/` outside quotes and parentheses.
fn segments(path: &str) -> Vec<&str> {
    let (mut out, mut depth, mut quoted, mut start) = (Vec::new(), 0i32, false, 0);
    for (i, ch) in path.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '/' if !quoted && depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// `Name(key)` → (`Name`, `Some(key)`); `Name` → (`Name`, `None`). Unknown names are refused
/// before their key is looked at, so `Nope(1)` is a missing segment, not a bad key.
fn split_key<'p>(seg: &'p str, known: &[&str]) -> DvResult<(&'p str, Option<Key>)> {
    let (name, key) = match seg.find('(') {
        Some(open) if seg.ends_with(')') => (&seg[..open], Some(&seg[open + 1..seg.len() - 1])),
        Some(_) => return Err(DvError::segment_not_found(seg)),
        None => (seg, None),
    };
    match key {
        Some(_) if !known.contains(&name) => Err(DvError::segment_not_found(name)),
        Some(k) => Ok((name, Some(Key::parse(k)?))),
        None => Ok((name, None)),
    }
}

/// A type-cast segment (`Microsoft.Dynamics.CRM.PicklistAttributeMetadata`) to a concrete type
/// derived from `base`.
fn cast_segment(seg: &str, base: &str) -> DvResult<Option<&'static MetaType>> {
    let Some(name) = seg.strip_prefix("Microsoft.Dynamics.CRM.").or_else(|| seg.strip_prefix("mscrm.")) else {
        return Ok(None);
    };
    let t = types::meta_type(name).filter(|t| !t.is_complex).ok_or_else(|| DvError::segment_not_found(seg))?;
    if !types::derives_from(t, base) {
        return Err(DvError::bad_query(format!(
            "The type '{NAMESPACE}.{name}' is not compatible with the type '{NAMESPACE}.{base}' of the collection."
        )));
    }
    if t.is_abstract {
        return Err(DvError::bad_query(format!(
            "The type '{NAMESPACE}.{name}' is abstract and cannot be used in a cast; cast to a concrete type instead."
        )));
    }
    Ok(Some(t))
}

// ---------------------------------------------------------------- items

/// One metadata item and where it comes from.
#[derive(Clone, Copy)]
enum Item<'s> {
    Entity(&'s Table),
    Attribute(&'s Table, &'s Column),
    OptionSet(&'s Table, &'s Column),
    Key(&'s Table, &'s AlternateKey),
    Relationship(&'s Relationship),
}

impl<'s> Item<'s> {
    /// The concrete metadata type of the item.
    fn type_name(&self) -> &'static str {
        match self {
            Item::Entity(_) => "EntityMetadata",
            Item::Attribute(_, c) => attribute::type_name(c),
            Item::OptionSet(_, c) => optionset::type_name(c).unwrap_or("OptionSetMetadata"),
            Item::Key(..) => "EntityKeyMetadata",
            Item::Relationship(_) => "OneToManyRelationshipMetadata",
        }
    }

    /// Every property of the item, as its concrete type.
    fn full_json(&self, schema: &Schema) -> Map<String, Value> {
        let v = match self {
            Item::Entity(t) => entity::entity_json(t),
            Item::Attribute(t, c) => return attribute::full_json(t, c),
            Item::OptionSet(t, c) => optionset::option_set_json(t, c).unwrap_or(Value::Null),
            Item::Key(t, k) => entity::key_json(t, k),
            Item::Relationship(r) => return relationship::relationship_json(schema, r),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The items behind navigation property `nav` (validated against the item's type).
    fn navigate(&self, schema: &'s Schema, nav: &str) -> Vec<Item<'s>> {
        match (self, nav) {
            (Item::Entity(t), "Attributes") => t.columns.iter().map(|c| Item::Attribute(t, c)).collect(),
            (Item::Entity(t), "Keys") => t.keys.iter().map(|k| Item::Key(t, k)).collect(),
            (Item::Entity(t), "ManyToOneRelationships") => {
                schema.many_to_one(&t.logical_name).map(Item::Relationship).collect()
            }
            (Item::Entity(t), "OneToManyRelationships") => {
                schema.one_to_many(&t.logical_name).map(Item::Relationship).collect()
            }
            (Item::Attribute(t, c), "OptionSet" | "GlobalOptionSet") if optionset::type_name(c).is_some() => {
                vec![Item::OptionSet(t, c)]
            }
            _ => vec![],
        }
    }
}

// ---------------------------------------------------------------- projection

/// Checks `$select`, `$filter` and `$expand` of one level against the declared type `decl`.
fn validate(decl: &'static MetaType, opts: &Options, single: bool) -> DvResult<()> {
    if let Some(select) = &opts.select {
        for s in select {
            if s != "*" && types::property_type(decl, s).is_none() && types::navigation_type(decl, s).is_none() {
                return Err(unknown_property(s, decl.name));
            }
        }
    }
    if let Some(f) = &opts.filter {
        if single {
            return Err(DvError::bad_query("The query parameter $filter is not supported on a single resource."));
        }
        query::check(decl, f)?;
    }
    for e in &opts.expand {
        let nav_type = types::navigation_type(decl, &e.nav).ok_or_else(|| unknown_property(&e.nav, decl.name))?;
        let (elem, many) = nav_element(nav_type);
        validate(elem, &e.options, !many)?;
    }
    Ok(())
}

/// The `(...)` part of a context URL for `opts`: selected properties then expanded ones.
fn select_list(opts: &Options) -> String {
    let mut parts: Vec<String> = opts.select.clone().unwrap_or_default();
    for e in &opts.expand {
        parts.push(format!("{}({})", e.nav, select_list(&e.options).trim_start_matches('(').trim_end_matches(')')));
    }
    if parts.is_empty() { String::new() } else { format!("({})", parts.join(",")) }
}

/// Renders one item as declared type `decl` with the options of its level; `None` when the
/// filter excludes it.
fn render(schema: &Schema, item: Item<'_>, decl: &'static MetaType, opts: &Options) -> Option<Map<String, Value>> {
    let full = Value::Object(item.full_json(schema));
    if let Some(f) = &opts.filter
        && !query::eval(decl, &full, f)
    {
        return None;
    }
    let Value::Object(full) = full else { return None };
    let mut out = Map::new();
    let instance = item.type_name();
    if instance != decl.name {
        out.insert("@odata.type".into(), json!(format!("#{NAMESPACE}.{instance}")));
    }
    let all = opts.select.as_ref().is_none_or(|s| s.iter().any(|p| p == "*"));
    for (k, v) in full {
        let declared = k.starts_with('@') || types::property_type(decl, &k).is_some();
        let selected = all || k == "MetadataId" || opts.select.as_ref().is_some_and(|s| s.contains(&k));
        if declared && selected {
            out.insert(k, v);
        }
    }
    for e in &opts.expand {
        let nav_type = types::navigation_type(decl, &e.nav).unwrap_or_default();
        let (elem, many) = nav_element(nav_type);
        let targets = item.navigate(schema, &e.nav);
        let value = if many {
            Value::Array(
                targets.into_iter().filter_map(|t| render(schema, t, elem, &e.options)).map(Value::Object).collect(),
            )
        } else {
            targets
                .into_iter()
                .next()
                .and_then(|t| render(schema, t, elem, &e.options))
                .map_or(Value::Null, Value::Object)
        };
        out.insert(e.nav.clone(), value);
    }
    Some(out)
}

fn collection(
    schema: &Schema,
    urls: &Urls,
    context: &str,
    items: Vec<Item<'_>>,
    decl: &'static MetaType,
    opts: &Options,
) -> DvResult<Value> {
    validate(decl, opts, false)?;
    let values: Vec<Value> =
        items.into_iter().filter_map(|i| render(schema, i, decl, opts)).map(Value::Object).collect();
    Ok(json!({
        "@odata.context": format!("{}/$metadata#{context}{}", urls.webapi, select_list(opts)),
        "value": values,
    }))
}

fn single(
    schema: &Schema,
    urls: &Urls,
    context: &str,
    item: Item<'_>,
    decl: &'static MetaType,
    opts: &Options,
) -> DvResult<Value> {
    validate(decl, opts, true)?;
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#{context}{}/$entity", urls.webapi, select_list(opts))),
    );
    out.extend(render(schema, item, decl, opts).unwrap_or_default());
    Ok(Value::Object(out))
}

/// `GET .../<single item>/<Property>`: one structural property of a single item.
fn property_value(
    schema: &Schema,
    urls: &Urls,
    context: &str,
    item: Item<'_>,
    decl: &'static MetaType,
    prop: &str,
) -> DvResult<Value> {
    if types::property_type(decl, prop).is_none() {
        return Err(DvError::segment_not_found(prop));
    }
    let value = item.full_json(schema).remove(prop).unwrap_or(Value::Null);
    Ok(json!({ "@odata.context": format!("{}/$metadata#{context}/{prop}", urls.webapi), "value": value }))
}

// ---------------------------------------------------------------- resolution

fn find_table<'s>(schema: &'s Schema, key: &Key) -> DvResult<&'s Table> {
    let found = match key {
        Key::Id(id) => schema.tables.iter().find(|t| t.metadata_id == *id),
        Key::Named(..) => key.named("LogicalName")?.and_then(|n| schema.table(n)),
    };
    found.ok_or_else(|| entity_not_found(key))
}

fn find_column<'s>(t: &'s Table, key: &Key) -> DvResult<&'s Column> {
    let found = match key {
        Key::Id(id) => t.columns.iter().find(|c| c.metadata_id == *id),
        Key::Named(..) => key.named("LogicalName")?.and_then(|n| t.column(n)),
    };
    found.ok_or_else(|| attribute_not_found(t, key))
}

fn find_relationship<'s, I: IntoIterator<Item = &'s Relationship>>(rels: I, key: &Key) -> DvResult<&'s Relationship> {
    let name = key.named("SchemaName")?;
    rels.into_iter()
        .find(|r| match key {
            Key::Id(id) => r.metadata_id == *id,
            Key::Named(..) => name == Some(r.schema_name.as_str()),
        })
        .ok_or_else(|| item_not_found("relationship", key))
}

fn find_key<'s>(t: &'s Table, key: &Key) -> DvResult<&'s AlternateKey> {
    let name = key.named("LogicalName")?;
    t.keys
        .iter()
        .find(|k| match key {
            Key::Id(id) => entity::key_id(t, k) == *id,
            Key::Named(..) => name == Some(k.logical_name.as_str()),
        })
        .ok_or_else(|| item_not_found("entity key", key))
}

/// Answers a metadata request. `path` is the resource path after `/api/data/v9.x/`, already
/// percent-decoded (`EntityDefinitions(LogicalName='account')/Attributes`); `query` holds the
/// decoded query pairs. Returns the JSON body (status 200) or the Dataverse error.
pub fn handle(schema: &Schema, urls: &Urls, path: &str, query: &[(String, String)]) -> DvResult<Value> {
    let opts = query::parse_request(query)?;
    let segs = segments(path);
    let Some((&first, rest)) = segs.split_first() else { return Err(DvError::segment_not_found(path)) };
    let (root, key) =
        split_key(first, &["EntityDefinitions", "RelationshipDefinitions", "GlobalOptionSetDefinitions"])?;
    match root {
        "EntityDefinitions" => entity_definitions(schema, urls, key, rest, &opts),
        "RelationshipDefinitions" => relationship_definitions(schema, urls, key, rest, &opts),
        "GlobalOptionSetDefinitions" => {
            if let Some(key) = key {
                return Err(item_not_found("optionset", &key));
            }
            if let Some(seg) = rest.first() {
                return Err(DvError::segment_not_found(seg));
            }
            if opts.filter.is_some() {
                return Err(DvError::bad_query("The query parameter $filter is not supported"));
            }
            collection(schema, urls, "GlobalOptionSetDefinitions", vec![], ty("OptionSetMetadataBase"), &opts)
        }
        _ => Err(DvError::segment_not_found(root)),
    }
}

fn entity_definitions(
    schema: &Schema,
    urls: &Urls,
    key: Option<Key>,
    rest: &[&str],
    opts: &Options,
) -> DvResult<Value> {
    let em = ty("EntityMetadata");
    let Some(key) = key else {
        if let Some(seg) = rest.first() {
            // A cast on the entity set (`EntityDefinitions/Microsoft.Dynamics.CRM.EntityMetadata`).
            if cast_segment(seg, "EntityMetadata")?.is_some() && rest.len() == 1 {
                let items = schema.tables.iter().map(Item::Entity).collect();
                return collection(schema, urls, &format!("EntityDefinitions/{seg}"), items, em, opts);
            }
            return Err(DvError::segment_not_found(seg));
        }
        return collection(
            schema,
            urls,
            "EntityDefinitions",
            schema.tables.iter().map(Item::Entity).collect(),
            em,
            opts,
        );
    };
    let t = find_table(schema, &key)?;
    let base = format!("EntityDefinitions({})", key.context());
    let Some((&seg, rest)) = rest.split_first() else {
        return single(schema, urls, "EntityDefinitions", Item::Entity(t), em, opts);
    };
    let (name, sub_key) = split_key(
        seg,
        &["Attributes", "Keys", "ManyToOneRelationships", "OneToManyRelationships", "ManyToManyRelationships"],
    )?;
    match name {
        "Attributes" => attributes(schema, urls, t, &base, sub_key, rest, opts),
        "Keys" => {
            let decl = ty("EntityKeyMetadata");
            let ctx = format!("{base}/Keys");
            match (sub_key, rest.first()) {
                (None, None) => {
                    collection(schema, urls, &ctx, t.keys.iter().map(|k| Item::Key(t, k)).collect(), decl, opts)
                }
                (Some(k), None) => single(schema, urls, &ctx, Item::Key(t, find_key(t, &k)?), decl, opts),
                (_, Some(seg)) => Err(DvError::segment_not_found(seg)),
            }
        }
        "ManyToOneRelationships" | "OneToManyRelationships" | "ManyToManyRelationships" => {
            let rels: Vec<&Relationship> = match name {
                "ManyToOneRelationships" => schema.many_to_one(&t.logical_name).collect(),
                "OneToManyRelationships" => schema.one_to_many(&t.logical_name).collect(),
                _ => vec![],
            };
            let decl = if name == "ManyToManyRelationships" {
                ty("ManyToManyRelationshipMetadata")
            } else {
                ty("OneToManyRelationshipMetadata")
            };
            let ctx = format!("{base}/{name}");
            match (sub_key, rest.first()) {
                (None, None) => {
                    collection(schema, urls, &ctx, rels.into_iter().map(Item::Relationship).collect(), decl, opts)
                }
                (Some(k), None) => {
                    single(schema, urls, &ctx, Item::Relationship(find_relationship(rels, &k)?), decl, opts)
                }
                (_, Some(seg)) => Err(DvError::segment_not_found(seg)),
            }
        }
        prop if sub_key.is_none() && rest.is_empty() => property_value(schema, urls, &base, Item::Entity(t), em, prop),
        _ => Err(DvError::segment_not_found(seg)),
    }
}

fn attributes(
    schema: &Schema,
    urls: &Urls,
    t: &Table,
    base: &str,
    key: Option<Key>,
    rest: &[&str],
    opts: &Options,
) -> DvResult<Value> {
    let am = ty("AttributeMetadata");
    let Some(key) = key else {
        // The collection, optionally cast: `Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`.
        let (decl, ctx) = match rest {
            [] => (am, format!("{base}/Attributes")),
            [seg] => match cast_segment(seg, "AttributeMetadata")? {
                Some(cast) => (cast, format!("{base}/Attributes/{seg}")),
                None => return Err(DvError::segment_not_found(seg)),
            },
            [_, seg, ..] => return Err(DvError::segment_not_found(seg)),
        };
        let items =
            t.columns.iter().filter(|c| attribute::is_of_type(c, decl.name)).map(|c| Item::Attribute(t, c)).collect();
        return collection(schema, urls, &ctx, items, decl, opts);
    };
    let c = find_column(t, &key)?;
    let item = Item::Attribute(t, c);
    let mut decl = am;
    let mut ctx = format!("{base}/Attributes");
    let mut path = format!("{base}/Attributes({})", key.context());
    let mut rest = rest;
    if let Some((seg, tail)) = rest.split_first()
        && let Some(cast) = cast_segment(seg, "AttributeMetadata")?
    {
        if !attribute::is_of_type(c, cast.name) {
            return Err(DvError::segment_not_found(seg));
        }
        decl = cast;
        ctx = format!("{ctx}/{seg}");
        path = format!("{path}/{seg}");
        rest = tail;
    }
    match rest {
        [] => single(schema, urls, &ctx, item, decl, opts),
        [nav] if types::navigation_type(decl, nav).is_some() => {
            let (elem, _) = nav_element(types::navigation_type(decl, nav).unwrap_or_default());
            let target =
                item.navigate(schema, nav).into_iter().next().ok_or_else(|| DvError::segment_not_found(nav))?;
            single(schema, urls, &format!("{path}/{nav}"), target, elem, opts)
        }
        [prop] => property_value(schema, urls, &path, item, decl, prop),
        [_, seg, ..] => Err(DvError::segment_not_found(seg)),
    }
}

fn relationship_definitions(
    schema: &Schema,
    urls: &Urls,
    key: Option<Key>,
    rest: &[&str],
    opts: &Options,
) -> DvResult<Value> {
    let base = ty("RelationshipMetadataBase");
    let (cast, tail) = match rest.split_first() {
        Some((seg, tail)) => match cast_segment(seg, "RelationshipMetadataBase")? {
            Some(c) => (Some((c, *seg)), tail),
            None => return Err(DvError::segment_not_found(seg)),
        },
        None => (None, rest),
    };
    if let Some(seg) = tail.first() {
        return Err(DvError::segment_not_found(seg));
    }
    let decl = cast.map_or(base, |(c, _)| c);
    let ctx = match cast {
        Some((_, seg)) => format!("RelationshipDefinitions/{seg}"),
        None => "RelationshipDefinitions".to_string(),
    };
    // Only 1:N relationships exist; a cast to ManyToManyRelationshipMetadata matches none.
    let matches_cast = decl.name != "ManyToManyRelationshipMetadata";
    match key {
        None => {
            let items = schema.relationships.iter().filter(|_| matches_cast).map(Item::Relationship).collect();
            collection(schema, urls, &ctx, items, decl, opts)
        }
        Some(k) => {
            let r = find_relationship(&schema.relationships, &k)?;
            if !matches_cast {
                return Err(item_not_found("relationship", &k));
            }
            single(schema, urls, &ctx, Item::Relationship(r), decl, opts)
        }
    }
}

#[cfg(test)]
mod tests;
