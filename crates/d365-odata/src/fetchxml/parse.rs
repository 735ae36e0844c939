//! FetchXML text → [`Fetch`]. Structure only: elements, attributes, enumerations, numbers and
//! value counts are checked here; table and column names are the consumer's business.

use super::ast::*;
use super::{FetchXmlError, FetchXmlErrorKind as K, MAX_DEPTH};
use roxmltree::{Document, Node as XNode, ParsingOptions};

type Result<T> = std::result::Result<T, FetchXmlError>;

fn err(kind: K, message: impl Into<String>) -> FetchXmlError {
    FetchXmlError { kind, message: message.into() }
}

/// Parses a FetchXML document.
pub fn parse(text: &str) -> Result<Fetch> {
    // No DTDs (and so no entity expansion), as the real service.
    if nesting_depth(text) > MAX_DEPTH * 3 + 8 {
        return Err(err(K::TooDeep, "The FetchXML query is nested too deeply."));
    }
    let opts = ParsingOptions { allow_dtd: false, ..ParsingOptions::default() };
    let doc = Document::parse_with_options(text, opts).map_err(|e| err(K::InvalidXml, format!("Invalid XML. {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "fetch" || root.tag_name().namespace().is_some() {
        return Err(invalid_node(root));
    }
    fetch(root)
}

/// The deepest element nesting of `text`, found by a scan that skips comments, CDATA,
/// processing instructions and quoted attribute values. The XML parser descends
/// recursively, so documents nested far deeper than any query could be are refused before
/// it sees them.
fn nesting_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut i, mut depth, mut max) = (0usize, 0usize, 0usize);
    let skip_to = |from: usize, end: &[u8]| -> usize {
        b[from..].windows(end.len()).position(|w| w == end).map(|p| from + p + end.len()).unwrap_or(b.len())
    };
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = skip_to(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_to(i + 2, b"?>");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_to(i + 2, b">");
        } else {
            // A start tag: find its end outside quoted values.
            let mut j = i + 1;
            let mut quote: Option<u8> = None;
            while j < b.len() {
                match (quote, b[j]) {
                    (None, q @ (b'"' | b'\'')) => quote = Some(q),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if j <= b.len() && b.get(j.wrapping_sub(1)) != Some(&b'/') {
                depth += 1;
                max = max.max(depth);
            }
            i = j + 1;
        }
    }
    max
}

fn invalid_node(n: XNode<'_, '_>) -> FetchXmlError {
    err(
        K::InvalidNode,
        format!("The element '{}' is not valid in this position of a FetchXML query.", n.tag_name().name()),
    )
}

/// The element children of `n`; text other than whitespace is refused.
fn elements<'a, 'i>(n: XNode<'a, 'i>) -> Result<Vec<XNode<'a, 'i>>> {
    let mut out = Vec::new();
    for c in n.children() {
        if c.is_element() {
            if c.tag_name().namespace().is_some() {
                return Err(invalid_node(c));
            }
            out.push(c);
        } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            return Err(err(
                K::InvalidNode,
                format!("The element '{}' cannot contain text in a FetchXML query.", n.tag_name().name()),
            ));
        }
    }
    Ok(out)
}

/// Checks that every attribute of `n` is in `known` (namespaced attributes are ignored).
fn check_attributes(n: XNode<'_, '_>, known: &[&str]) -> Result<()> {
    for a in n.attributes() {
        if a.namespace().is_some() {
            continue;
        }
        if !known.contains(&a.name()) {
            return Err(err(
                K::InvalidAttribute,
                format!("The '{}' attribute is not declared on the '{}' element.", a.name(), n.tag_name().name()),
            ));
        }
    }
    Ok(())
}

fn attr<'a>(n: XNode<'a, '_>, name: &str) -> Option<&'a str> {
    n.attribute(name)
}

fn required<'a>(n: XNode<'a, '_>, name: &str) -> Result<&'a str> {
    match attr(n, name) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim()),
        _ => Err(err(
            K::MissingAttribute,
            format!("The required attribute '{name}' is missing on the '{}' element.", n.tag_name().name()),
        )),
    }
}

fn invalid_value(n: XNode<'_, '_>, name: &str, value: &str, kind: K) -> FetchXmlError {
    err(
        kind,
        format!("The '{name}' attribute of the '{}' element has an invalid value '{value}'.", n.tag_name().name()),
    )
}

fn boolean(n: XNode<'_, '_>, name: &str) -> Result<Option<bool>> {
    match attr(n, name) {
        None => Ok(None),
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(invalid_value(n, name, v, K::InvalidValue)),
        },
    }
}

fn positive(n: XNode<'_, '_>, name: &str) -> Result<Option<u32>> {
    match attr(n, name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(x) if x > 0 => Ok(Some(x)),
            _ => Err(invalid_value(n, name, v, K::InvalidValue)),
        },
    }
}

const FETCH_ATTRS: &[&str] = &[
    "version",
    "count",
    "page",
    "paging-cookie",
    "utc-offset",
    "aggregate",
    "aggregatelimit",
    "distinct",
    "top",
    "mapping",
    "min-active-row-version",
    "output-format",
    "returntotalrecordcount",
    "no-lock",
    "latematerialize",
    "options",
    "datasource",
    "useraworderby",
];

fn fetch(n: XNode<'_, '_>) -> Result<Fetch> {
    check_attributes(n, FETCH_ATTRS)?;
    if let Some(m) = attr(n, "mapping")
        && m.trim() != "logical"
    {
        return Err(invalid_value(n, "mapping", m, K::InvalidValue));
    }
    let mut entity = None;
    for c in elements(n)? {
        match c.tag_name().name() {
            "entity" if entity.is_none() => entity = Some(entity_el(c)?),
            _ => return Err(invalid_node(c)),
        }
    }
    let entity = entity.ok_or_else(|| err(K::InvalidNode, "The 'fetch' element must contain one 'entity' element."))?;
    Ok(Fetch {
        mapping: attr(n, "mapping").map(str::to_string),
        version: attr(n, "version").map(str::to_string),
        count: positive(n, "count")?,
        page: positive(n, "page")?,
        paging_cookie: attr(n, "paging-cookie").filter(|c| !c.trim().is_empty()).map(str::to_string),
        top: positive(n, "top")?,
        distinct: boolean(n, "distinct")?.unwrap_or(false),
        aggregate: boolean(n, "aggregate")?.unwrap_or(false),
        aggregate_limit: positive(n, "aggregatelimit")?,
        no_lock: boolean(n, "no-lock")?.unwrap_or(false),
        return_total_record_count: boolean(n, "returntotalrecordcount")?.unwrap_or(false),
        datasource: attr(n, "datasource").map(str::to_string),
        entity,
    })
}

fn entity_el(n: XNode<'_, '_>) -> Result<Entity> {
    check_attributes(n, &["name", "enableprefiltering", "prefilterparametername"])?;
    let name = required(n, "name")?.to_string();
    Ok(Entity { name, node: node(n, 1)? })
}

/// The children of an `entity` or `link-entity` element.
fn node(n: XNode<'_, '_>, depth: usize) -> Result<Node> {
    if depth > MAX_DEPTH {
        return Err(err(K::TooDeep, "The FetchXML query is nested too deeply."));
    }
    let mut out = Node::default();
    for c in elements(n)? {
        match c.tag_name().name() {
            "all-attributes" => {
                check_attributes(c, &[])?;
                if !elements(c)?.is_empty() {
                    return Err(invalid_node(c));
                }
                out.all_attributes = true;
            }
            "attribute" => out.attributes.push(attribute(c)?),
            "order" => out.orders.push(order(c)?),
            "filter" => out.filters.push(filter(c, depth + 1)?),
            "link-entity" => {
                let l = link(c, depth + 1)?;
                if l.link_type.is_filter_type() {
                    return Err(invalid_value(c, "link-type", l.link_type.as_str(), K::InvalidLinkType));
                }
                out.links.push(l);
            }
            _ => return Err(invalid_node(c)),
        }
    }
    Ok(out)
}

fn attribute(n: XNode<'_, '_>) -> Result<Attribute> {
    check_attributes(
        n,
        &[
            "name",
            "build",
            "addedby",
            "alias",
            "aggregate",
            "groupby",
            "dategrouping",
            "usertimezone",
            "distinct",
            "rowaggregate",
        ],
    )?;
    if !elements(n)?.is_empty() {
        return Err(err(K::InvalidNode, "The 'attribute' element cannot have child elements."));
    }
    let aggregate = match attr(n, "aggregate") {
        None => None,
        Some(v) => Some(
            AggregateFn::from_name(v.trim()).ok_or_else(|| invalid_value(n, "aggregate", v, K::InvalidAggregate))?,
        ),
    };
    let dategrouping = match attr(n, "dategrouping") {
        None => None,
        Some(v) => Some(
            DateGrouping::from_name(v.trim()).ok_or_else(|| invalid_value(n, "dategrouping", v, K::InvalidValue))?,
        ),
    };
    let alias = attr(n, "alias").map(str::trim).map(str::to_string);
    if alias.as_deref() == Some("") {
        return Err(invalid_value(n, "alias", "", K::InvalidValue));
    }
    Ok(Attribute {
        name: required(n, "name")?.to_string(),
        alias,
        aggregate,
        groupby: boolean(n, "groupby")?.unwrap_or(false),
        distinct: boolean(n, "distinct")?.unwrap_or(false),
        dategrouping,
        usertimezone: boolean(n, "usertimezone")?,
        rowaggregate: attr(n, "rowaggregate").map(str::to_string),
    })
}

fn order(n: XNode<'_, '_>) -> Result<Order> {
    check_attributes(n, &["attribute", "alias", "descending", "entityname"])?;
    if !elements(n)?.is_empty() {
        return Err(err(K::InvalidNode, "The 'order' element cannot have child elements."));
    }
    let attribute = attr(n, "attribute").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let alias = attr(n, "alias").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if attribute.is_none() && alias.is_none() {
        return Err(err(K::MissingAttribute, "An 'order' element needs an 'attribute' or an 'alias' attribute."));
    }
    Ok(Order {
        attribute,
        alias,
        entityname: attr(n, "entityname").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string),
        descending: boolean(n, "descending")?.unwrap_or(false),
    })
}

fn filter(n: XNode<'_, '_>, depth: usize) -> Result<Filter> {
    if depth > MAX_DEPTH {
        return Err(err(K::TooDeep, "The FetchXML query is nested too deeply."));
    }
    check_attributes(
        n,
        &[
            "type",
            "isquickfindfields",
            "overridequickfindrecordlimitenabled",
            "overridequickfindrecordlimitdisabled",
            "hint",
            "bypassquickfind",
        ],
    )?;
    let or = match attr(n, "type").map(str::trim) {
        None | Some("and") => false,
        Some("or") => true,
        Some(v) => return Err(invalid_value(n, "type", v, K::InvalidFilterType)),
    };
    let mut items = Vec::new();
    for c in elements(n)? {
        match c.tag_name().name() {
            "condition" => items.push(FilterItem::Condition(condition(c)?)),
            "filter" => items.push(FilterItem::Filter(filter(c, depth + 1)?)),
            "link-entity" => {
                let l = link(c, depth + 1)?;
                if !l.link_type.is_filter_type() {
                    return Err(invalid_value(c, "link-type", l.link_type.as_str(), K::InvalidLinkType));
                }
                items.push(FilterItem::Link(l));
            }
            _ => return Err(invalid_node(c)),
        }
    }
    Ok(Filter { or, items })
}

fn condition(n: XNode<'_, '_>) -> Result<Condition> {
    check_attributes(
        n,
        &[
            "column",
            "attribute",
            "entityname",
            "operator",
            "value",
            "valueof",
            "aggregate",
            "alias",
            "uiname",
            "uitype",
            "uihidden",
            "rowaggregate",
        ],
    )?;
    let attribute = match (attr(n, "attribute"), attr(n, "column")) {
        (Some(a), _) | (None, Some(a)) if !a.trim().is_empty() => a.trim().to_string(),
        _ => {
            return Err(err(
                K::MissingAttribute,
                "The required attribute 'attribute' is missing on the 'condition' element.",
            ));
        }
    };
    let op_text = required(n, "operator")?;
    let operator = Operator::from_name(op_text).ok_or_else(|| {
        err(
            K::InvalidOperator,
            format!("The 'operator' attribute of the 'condition' element has an invalid value '{op_text}'."),
        )
    })?;
    let mut values = Vec::new();
    for c in elements(n)? {
        if c.tag_name().name() != "value" {
            return Err(invalid_node(c));
        }
        check_attributes(c, &["uiname", "uitype"])?;
        if c.children().any(|x| x.is_element()) {
            return Err(err(K::InvalidNode, "The 'value' element cannot have child elements."));
        }
        values.push(c.text().unwrap_or("").to_string());
    }
    if let Some(v) = attr(n, "value") {
        if !values.is_empty() {
            return Err(err(
                K::InvalidValueCount,
                "A condition cannot have both a 'value' attribute and 'value' elements.",
            ));
        }
        values.push(v.to_string());
    }
    let valueof = attr(n, "valueof").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let count_error =
        |what: &str| err(K::InvalidValueCount, format!("The condition operator '{}' {what}.", operator.as_str()));
    if valueof.is_some() {
        if !values.is_empty() || operator.arity() != Arity::One {
            return Err(count_error("cannot be used with both a value and 'valueof'"));
        }
    } else {
        match operator.arity() {
            Arity::None if !values.is_empty() => return Err(count_error("does not take a value")),
            Arity::One if values.len() != 1 => return Err(count_error("takes exactly one value")),
            Arity::Two if values.len() != 2 => return Err(count_error("takes exactly two values")),
            Arity::Many if values.is_empty() => return Err(count_error("takes at least one value")),
            _ => {}
        }
    }
    Ok(Condition {
        attribute,
        entityname: attr(n, "entityname").map(str::trim).filter(|s| !s.is_empty()).map(str::to_string),
        operator,
        values,
        valueof,
    })
}

fn link(n: XNode<'_, '_>, depth: usize) -> Result<LinkEntity> {
    check_attributes(
        n,
        &[
            "name",
            "to",
            "from",
            "alias",
            "link-type",
            "visible",
            "intersect",
            "enableprefiltering",
            "prefilterparametername",
        ],
    )?;
    let link_type = match attr(n, "link-type") {
        None => LinkType::Inner,
        Some(v) => LinkType::from_name(v.trim()).ok_or_else(|| invalid_value(n, "link-type", v, K::InvalidLinkType))?,
    };
    let opt = |name: &str| attr(n, name).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    Ok(LinkEntity {
        name: required(n, "name")?.to_string(),
        from: opt("from"),
        to: opt("to"),
        alias: opt("alias"),
        link_type,
        intersect: boolean(n, "intersect")?.unwrap_or(false),
        node: node(n, depth)?,
    })
}
