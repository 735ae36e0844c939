//! Query options of metadata requests: `$select`, `$expand` (with nested `$select`, `$filter`,
//! `$expand`) and `$filter`, parsed here and evaluated in memory over the JSON of each
//! metadata item, type-checked against the metadata types in [`super::types`].
//!
//! Metadata filters only need a small part of OData: comparisons (`eq ne gt ge lt le`) of a
//! property path with a literal or another property, `and`/`or`/`not`, parentheses,
//! `contains`/`startswith`/`endswith`, enum literals (`Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'`)
//! and managed-property paths (`RequiredLevel/Value`). Errors carry the Dataverse code `0x80060888`.

use super::types::{self, MetaType};
use crate::webapi::error::{DvError, DvResult};
use serde_json::Value;
use std::cmp::Ordering;

/// Parsed query options of one level (the request, or one `$expand` item).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `$select` property names, in the order given.
    pub select: Option<Vec<String>>,
    /// `$filter`.
    pub filter: Option<Expr>,
    /// `$expand` items.
    pub expand: Vec<Expand>,
}

/// One `$expand` item.
#[derive(Debug, Clone, PartialEq)]
pub struct Expand {
    /// Navigation property name.
    pub nav: String,
    /// Nested options.
    pub options: Options,
}

/// A `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a or b`.
    Or(Box<Expr>, Box<Expr>),
    /// `a and b`.
    And(Box<Expr>, Box<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// `left op right`.
    Compare(CmpOp, Operand, Operand),
    /// `contains(a,b)`, `startswith(a,b)`, `endswith(a,b)`.
    Call(StrFn, Operand, Operand),
    /// A bare boolean operand (`IsCustomEntity`, `true`).
    Operand(Operand),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

impl CmpOp {
    fn kind_name(self) -> &'static str {
        match self {
            CmpOp::Eq => "Equal",
            CmpOp::Ne => "NotEqual",
            CmpOp::Gt => "GreaterThan",
            CmpOp::Ge => "GreaterThanOrEqual",
            CmpOp::Lt => "LessThan",
            CmpOp::Le => "LessThanOrEqual",
        }
    }
}

/// String functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrFn {
    /// `contains`.
    Contains,
    /// `startswith`.
    StartsWith,
    /// `endswith`.
    EndsWith,
}

/// A property path or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `Prop` or `Prop/Value`.
    Path(Vec<String>),
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(f64),
    /// `'text'` (quotes removed, doubled quotes resolved).
    Str(String),
    /// A bare GUID.
    Guid(String),
    /// `Namespace.EnumType'Member'`.
    Enum {
        /// Enum type name without namespace.
        ty: String,
        /// Member name.
        member: String,
    },
}

fn syntax_error(pos: usize, text: &str) -> DvError {
    DvError::bad_query(format!("Syntax error at position {pos} in '{text}'."))
}

/// Parses the request's query pairs. Options other than `$select`, `$filter` and `$expand` are
/// refused as Dataverse refuses them on metadata (`$top`, `$orderby`, `$skip`, `$count`, ...);
/// parameters that are not system query options are ignored.
pub fn parse_request(query: &[(String, String)]) -> DvResult<Options> {
    let mut opts = Options::default();
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in query {
        if !k.starts_with('$') {
            continue;
        }
        if seen.contains(&k.as_str()) {
            return Err(DvError::bad_query(format!(
                "Query option '{k}' was specified more than once, but it must be specified at most once."
            )));
        }
        seen.push(k);
        apply_option(&mut opts, k, v)?;
    }
    Ok(opts)
}

fn apply_option(opts: &mut Options, name: &str, value: &str) -> DvResult<()> {
    match name {
        "$select" => opts.select = parse_select(value)?,
        "$filter" => opts.filter = Some(parse_filter(value)?),
        "$expand" => opts.expand = parse_expand(value)?,
        other => return Err(DvError::bad_query(format!("The query parameter {other} is not supported"))),
    }
    Ok(())
}

fn parse_select(value: &str) -> DvResult<Option<Vec<String>>> {
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Ok(None);
    }
    for item in &items {
        if item != "*" && !item.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syntax_error(value.find(item.as_str()).unwrap_or(0), value));
        }
    }
    Ok(Some(items))
}

/// Splits `s` on `sep` outside parentheses and quotes.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let (mut out, mut depth, mut quoted, mut start) = (Vec::new(), 0i32, false, 0);
    for (i, ch) in s.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_expand(value: &str) -> DvResult<Vec<Expand>> {
    let mut out = Vec::new();
    for item in split_top(value, ',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(syntax_error(0, value));
        }
        let (nav, inner) = match item.find('(') {
            Some(open) => {
                let inner = item[open + 1..].strip_suffix(')').ok_or_else(|| syntax_error(item.len(), value))?;
                (item[..open].trim(), Some(inner))
            }
            None => (item, None),
        };
        if nav.is_empty() || !nav.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syntax_error(0, value));
        }
        let mut options = Options::default();
        if let Some(inner) = inner {
            let mut seen = Vec::new();
            for part in split_top(inner, ';').into_iter().map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once('=').ok_or_else(|| syntax_error(0, part))?;
                let k = k.trim();
                if seen.contains(&k) {
                    return Err(DvError::bad_query(format!(
                        "Query option '{k}' was specified more than once, but it must be specified at most once."
                    )));
                }
                seen.push(k);
                apply_option(&mut options, k, v)?;
            }
        }
        out.push(Expand { nav: nav.to_string(), options });
    }
    Ok(out)
}

// ---------------------------------------------------------------- $filter parsing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Comma,
    Word(String),
    Str(String),
    /// `Namespace.Type'Member'`.
    Enum(String, String),
}

fn tokenize(text: &str) -> DvResult<Vec<(usize, Tok)>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let read_quoted = |mut j: usize| -> DvResult<(String, usize)> {
        // `j` is just past the opening quote.
        let mut s = String::new();
        loop {
            match chars.get(j) {
                None => {
                    let start = chars.get(j.saturating_sub(1)).map_or(0, |c| c.0);
                    return Err(DvError::bad_query(format!(
                        "There is an unterminated literal at position {start} in '{text}'."
                    )));
                }
                Some((_, '\'')) if chars.get(j + 1).is_some_and(|c| c.1 == '\'') => {
                    s.push('\'');
                    j += 2;
                }
                Some((_, '\'')) => return Ok((s, j + 1)),
                Some((_, c)) => {
                    s.push(*c);
                    j += 1;
                }
            }
        }
    };
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((pos, Tok::Open));
                i += 1;
            }
            ')' => {
                out.push((pos, Tok::Close));
                i += 1;
            }
            ',' => {
                out.push((pos, Tok::Comma));
                i += 1;
            }
            '\'' => {
                let (s, next) = read_quoted(i + 1)?;
                out.push((pos, Tok::Str(s)));
                i = next;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].1.is_whitespace() && !"(),'".contains(chars[i].1) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|c| c.1).collect();
                if word.is_empty() {
                    return Err(syntax_error(pos, text));
                }
                if chars.get(i).is_some_and(|c| c.1 == '\'') && word.contains('.') {
                    let (member, next) = read_quoted(i + 1)?;
                    out.push((pos, Tok::Enum(word, member)));
                    i = next;
                } else {
                    out.push((pos, Tok::Word(word)));
                }
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(usize, Tok)>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.1)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.text.len(), |t| t.0)
    }

    fn err(&self) -> DvError {
        syntax_error(self.pos(), self.text)
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w == kw)
    }

    fn expect(&mut self, t: Tok) -> DvResult<()> {
        if self.peek() == Some(&t) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn or(&mut self) -> DvResult<Expr> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> DvResult<Expr> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> DvResult<Expr> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> DvResult<Expr> {
        if self.peek() == Some(&Tok::Open) {
            self.at += 1;
            let e = self.or()?;
            self.expect(Tok::Close)?;
            return Ok(e);
        }
        let func = match self.peek() {
            Some(Tok::Word(w)) if self.toks.get(self.at + 1).is_some_and(|t| t.1 == Tok::Open) => {
                Some(match w.as_str() {
                    "contains" => StrFn::Contains,
                    "startswith" => StrFn::StartsWith,
                    "endswith" => StrFn::EndsWith,
                    other => {
                        return Err(DvError::bad_query(format!(
                            "An unknown function with name '{other}' was found. This may also be a function import \
                             or a key lookup on a navigation property, which is not allowed."
                        )));
                    }
                })
            }
            _ => None,
        };
        if let Some(f) = func {
            self.at += 2;
            let a = self.operand()?;
            self.expect(Tok::Comma)?;
            let b = self.operand()?;
            self.expect(Tok::Close)?;
            return Ok(Expr::Call(f, a, b));
        }
        let left = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Word(w)) => match w.as_str() {
                "eq" => Some(CmpOp::Eq),
                "ne" => Some(CmpOp::Ne),
                "gt" => Some(CmpOp::Gt),
                "ge" => Some(CmpOp::Ge),
                "lt" => Some(CmpOp::Lt),
                "le" => Some(CmpOp::Le),
                "and" | "or" => None,
                _ => return Err(self.err()),
            },
            _ => None,
        };
        match op {
            Some(op) => {
                self.at += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(op, left, right))
            }
            None => Ok(Expr::Operand(left)),
        }
    }

    fn operand(&mut self) -> DvResult<Operand> {
        let Some((_, tok)) = self.toks.get(self.at).cloned() else { return Err(self.err()) };
        self.at += 1;
        Ok(match tok {
            Tok::Str(s) => Operand::Str(s),
            Tok::Enum(qualified, member) => {
                let ty = qualified
                    .strip_prefix("Microsoft.Dynamics.CRM.")
                    .or_else(|| qualified.strip_prefix("mscrm."))
                    .ok_or_else(|| {
                        DvError::bad_query(format!("The type '{qualified}' is not defined in the model."))
                    })?;
                Operand::Enum { ty: ty.to_string(), member }
            }
            Tok::Word(w) => match w.as_str() {
                "null" => Operand::Null,
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                _ if uuid::Uuid::try_parse(&w).is_ok() && w.len() == 36 => Operand::Guid(w.to_ascii_lowercase()),
                _ if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                    let n = w.trim_end_matches(['m', 'M', 'd', 'D', 'L', 'l', 'f', 'F']);
                    Operand::Number(n.parse().map_err(|_| self_err(self.text, self.toks[self.at - 1].0))?)
                }
                _ if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '/') => {
                    let parts: Vec<String> = w.split('/').map(str::to_string).collect();
                    if parts.iter().any(String::is_empty) {
                        return Err(self_err(self.text, self.toks[self.at - 1].0));
                    }
                    Operand::Path(parts)
                }
                _ => return Err(self_err(self.text, self.toks[self.at - 1].0)),
            },
            _ => return Err(self_err(self.text, self.toks[self.at - 1].0)),
        })
    }
}

fn self_err(text: &str, pos: usize) -> DvError {
    syntax_error(pos, text)
}

/// Parses a `$filter` expression.
pub fn parse_filter(text: &str) -> DvResult<Expr> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err(syntax_error(0, text));
    }
    let mut p = Parser { text, toks, at: 0 };
    let e = p.or()?;
    if p.at != p.toks.len() {
        return Err(p.err());
    }
    Ok(e)
}

// ---------------------------------------------------------------- type checking and evaluation

fn qualified(ty: &str) -> String {
    match ty.strip_prefix("mscrm.") {
        Some(n) => format!("Microsoft.Dynamics.CRM.{n}"),
        None => ty.to_string(),
    }
}

/// Resolves a property path against `ty`, returning the EDM/enum type of its end.
fn path_type(ty: &'static MetaType, path: &[String]) -> DvResult<&'static str> {
    let not_found = |p: &str, t: &str| {
        DvError::bad_query(format!("Could not find a property named '{p}' on type 'Microsoft.Dynamics.CRM.{t}'."))
    };
    let first = &path[0];
    let mut prop_ty = types::property_type(ty, first).ok_or_else(|| {
        if types::navigation_type(ty, first).is_some() {
            DvError::bad_query(format!(
                "The $filter on navigation property '{first}' is not supported for metadata queries."
            ))
        } else {
            not_found(first, ty.name)
        }
    })?;
    for seg in &path[1..] {
        if prop_ty == "mscrm.Label" {
            return Err(DvError::bad_query(format!(
                "The $filter on properties of type 'Microsoft.Dynamics.CRM.Label' is not supported ('{first}')."
            )));
        }
        let complex = types::complex_of(prop_ty).ok_or_else(|| syntax_error(0, &path.join("/")))?;
        prop_ty = types::property_type(complex, seg).ok_or_else(|| not_found(seg, complex.name))?;
    }
    if types::complex_of(prop_ty).is_some() || prop_ty.starts_with("Collection(") {
        return Err(DvError::bad_query(format!(
            "The $filter on property '{}' of type '{}' is not supported; filter on a primitive or enum property \
             (for managed properties use '{}/Value').",
            path.join("/"),
            qualified(prop_ty),
            path.join("/")
        )));
    }
    Ok(prop_ty)
}

/// The static type of an operand: `Some(type)` for paths, literals' kinds otherwise.
fn operand_type(ty: &'static MetaType, o: &Operand) -> DvResult<Option<String>> {
    Ok(match o {
        Operand::Path(p) => Some(path_type(ty, p)?.to_string()),
        Operand::Enum { ty: e, member } => {
            let et = types::enum_type(e).ok_or_else(|| {
                DvError::bad_query(format!("The type 'Microsoft.Dynamics.CRM.{e}' is not defined in the model."))
            })?;
            if !et.members.iter().any(|(m, _)| m == member) {
                return Err(DvError::bad_query(format!(
                    "The string '{member}' is not a valid enumerated type constant."
                )));
            }
            Some(format!("mscrm.{e}"))
        }
        Operand::Bool(_) => Some("Edm.Boolean".into()),
        Operand::Str(_) => Some("Edm.String".into()),
        Operand::Guid(_) => Some("Edm.Guid".into()),
        Operand::Number(_) => Some("Edm.Int32".into()),
        Operand::Null => None,
    })
}

fn compatible(a: &str, b: &str) -> bool {
    let numeric = |t: &str| matches!(t, "Edm.Int32" | "Edm.Int64" | "Edm.Int16" | "Edm.Decimal" | "Edm.Double");
    let enum_like = |t: &str| types::enum_of(t).is_some();
    a == b
        || (numeric(a) && numeric(b))
        // A string literal may name an enum member, and a GUID may be given quoted.
        || (enum_like(a) && b == "Edm.String")
        || (enum_like(b) && a == "Edm.String")
        || (a == "Edm.Guid" && b == "Edm.String")
        || (b == "Edm.Guid" && a == "Edm.String")
}

/// Type-checks `e` against `ty`: unknown properties, non-primitive paths, enum literals of the
/// wrong type and operand type mismatches are refused as the service refuses them.
pub fn check(ty: &'static MetaType, e: &Expr) -> DvResult<()> {
    match e {
        Expr::Or(a, b) | Expr::And(a, b) => {
            check(ty, a)?;
            check(ty, b)
        }
        Expr::Not(a) => check(ty, a),
        Expr::Compare(op, l, r) => {
            let (lt, rt) = (operand_type(ty, l)?, operand_type(ty, r)?);
            if let (Some(lt), Some(rt)) = (&lt, &rt)
                && !compatible(lt, rt)
            {
                return Err(DvError::bad_query(format!(
                    "A binary operator with incompatible types was detected. Found operand types '{}' and '{}' \
                     for operator kind '{}'.",
                    qualified(lt),
                    qualified(rt),
                    op.kind_name()
                )));
            }
            Ok(())
        }
        Expr::Call(f, a, b) => {
            for o in [a, b] {
                if let Some(t) = operand_type(ty, o)?
                    && t != "Edm.String"
                {
                    let name = match f {
                        StrFn::Contains => "contains",
                        StrFn::StartsWith => "startswith",
                        StrFn::EndsWith => "endswith",
                    };
                    return Err(DvError::bad_query(format!(
                        "No function signature for the function with name '{name}' matches the specified arguments. \
                         The function signatures considered are: {name}(Edm.String Nullable=true, Edm.String Nullable=true)."
                    )));
                }
            }
            Ok(())
        }
        Expr::Operand(o) => match operand_type(ty, o)?.as_deref() {
            Some("Edm.Boolean") => Ok(()),
            _ => Err(DvError::bad_query("The $filter expression must evaluate to a single boolean value.")),
        },
    }
}

/// A runtime value of an operand.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// Enum member and its numeric value (when the type is known).
    Enum(String, Option<i64>),
}

fn enum_value(prop_ty: &str, member: &str) -> Option<i64> {
    types::enum_of(prop_ty)?.members.iter().find(|(m, _)| *m == member).map(|(_, v)| *v)
}

fn resolve(ty: &'static MetaType, item: &Value, o: &Operand) -> Val {
    match o {
        Operand::Null => Val::Null,
        Operand::Bool(b) => Val::Bool(*b),
        Operand::Number(n) => Val::Num(*n),
        Operand::Str(s) | Operand::Guid(s) => Val::Str(s.clone()),
        Operand::Enum { ty: e, member } => Val::Enum(member.clone(), enum_value(&format!("mscrm.{e}"), member)),
        Operand::Path(p) => {
            let mut v = item;
            for seg in p {
                match v.get(seg) {
                    Some(next) => v = next,
                    None => return Val::Null,
                }
            }
            let prop_ty = path_type(ty, p).unwrap_or("Edm.String");
            match v {
                Value::Null => Val::Null,
                Value::Bool(b) => Val::Bool(*b),
                Value::Number(n) => Val::Num(n.as_f64().unwrap_or(0.0)),
                Value::String(s) if types::enum_of(prop_ty).is_some() => Val::Enum(s.clone(), enum_value(prop_ty, s)),
                Value::String(s) => Val::Str(s.clone()),
                _ => Val::Null,
            }
        }
    }
}

fn order(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        // Dataverse string comparisons are case-insensitive.
        (Val::Str(x), Val::Str(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Val::Enum(_, Some(x)), Val::Enum(_, Some(y))) => Some(x.cmp(y)),
        (Val::Enum(x, _), Val::Enum(y, _) | Val::Str(y)) | (Val::Str(x), Val::Enum(y, _)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn compare(op: CmpOp, a: &Val, b: &Val) -> bool {
    if matches!(a, Val::Null) || matches!(b, Val::Null) {
        let both = matches!(a, Val::Null) && matches!(b, Val::Null);
        return match op {
            CmpOp::Eq => both,
            CmpOp::Ne => !both,
            CmpOp::Ge | CmpOp::Le => both,
            CmpOp::Gt | CmpOp::Lt => false,
        };
    }
    let Some(o) = order(a, b) else { return op == CmpOp::Ne };
    match op {
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
    }
}

/// Evaluates a type-checked filter over the JSON of one item of type `ty`.
pub fn eval(ty: &'static MetaType, item: &Value, e: &Expr) -> bool {
    match e {
        Expr::Or(a, b) => eval(ty, item, a) || eval(ty, item, b),
        Expr::And(a, b) => eval(ty, item, a) && eval(ty, item, b),
        Expr::Not(a) => !eval(ty, item, a),
        Expr::Compare(op, l, r) => compare(*op, &resolve(ty, item, l), &resolve(ty, item, r)),
        Expr::Call(f, a, b) => {
            let (Val::Str(a), Val::Str(b)) = (resolve(ty, item, a), resolve(ty, item, b)) else { return false };
            let (a, b) = (a.to_lowercase(), b.to_lowercase());
            match f {
                StrFn::Contains => a.contains(&b),
                StrFn::StartsWith => a.starts_with(&b),
                StrFn::EndsWith => a.ends_with(&b),
            }
        }
        Expr::Operand(o) => resolve(ty, item, o) == Val::Bool(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_select_expand_filter() {
        let o = parse_request(&pairs(&[
            ("$select", "LogicalName, EntitySetName"),
            ("$expand", "Attributes($select=LogicalName;$filter=AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'),Keys"),
            ("$filter", "LogicalName eq 'account' or not (IsCustomEntity eq true)"),
            ("api-version", "ignored"),
        ]))
        .unwrap();
        assert_eq!(o.select, Some(vec!["LogicalName".to_string(), "EntitySetName".to_string()]));
        assert_eq!(o.expand.len(), 2);
        assert_eq!(o.expand[0].nav, "Attributes");
        assert_eq!(o.expand[0].options.select, Some(vec!["LogicalName".to_string()]));
        assert!(matches!(
            &o.expand[0].options.filter,
            Some(Expr::Compare(CmpOp::Eq, Operand::Path(_), Operand::Enum { ty, member })) if ty == "AttributeTypeCode" && member == "Picklist"
        ));
        assert_eq!(o.expand[1].nav, "Keys");
        assert!(matches!(o.filter, Some(Expr::Or(_, _))));
    }

    #[test]
    fn refuses_unsupported_and_repeated_options() {
        for opt in ["$top", "$orderby", "$skip", "$count", "$search", "$apply"] {
            let e = parse_request(&pairs(&[(opt, "1")])).unwrap_err();
            assert_eq!(e.code, "0x80060888");
            assert_eq!(e.message, format!("The query parameter {opt} is not supported"));
        }
        let e = parse_request(&pairs(&[("$expand", "Attributes($top=1)")])).unwrap_err();
        assert_eq!(e.message, "The query parameter $top is not supported");
        let e = parse_request(&pairs(&[("$select", "a"), ("$select", "b")])).unwrap_err();
        assert!(e.message.contains("specified more than once"));
    }

    #[test]
    fn filter_syntax_errors() {
        let e = parse_filter("LogicalName eq 'O'Bryan'").unwrap_err();
        assert!(e.message.starts_with("There is an unterminated literal at position"), "{}", e.message);
        assert!(parse_filter("LogicalName eq").is_err());
        assert!(parse_filter("(LogicalName eq 'a'").is_err());
        assert!(parse_filter("LogicalName foo 'a'").is_err());
        assert!(parse_filter("").is_err());
        assert_eq!(
            parse_filter("LogicalName eq 'O''Bryan'").unwrap(),
            Expr::Compare(CmpOp::Eq, Operand::Path(vec!["LogicalName".into()]), Operand::Str("O'Bryan".into()))
        );
    }

    #[test]
    fn type_checks_and_evaluates() {
        let em = types::meta_type("EntityMetadata").unwrap();
        let item = json!({
            "LogicalName": "account", "OwnershipType": "UserOwned", "IsCustomEntity": false,
            "ObjectTypeCode": 1, "CanCreateAttributes": {"Value": true}, "DisplayName": {"UserLocalizedLabel": null},
        });
        let run = |f: &str| {
            let e = parse_filter(f).unwrap();
            check(em, &e).map(|_| eval(em, &item, &e))
        };
        assert_eq!(run("LogicalName eq 'account'"), Ok(true));
        assert_eq!(run("LogicalName eq 'ACCOUNT'"), Ok(true));
        assert_eq!(run("OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'"), Ok(true));
        assert_eq!(run("OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'OrganizationOwned'"), Ok(false));
        assert_eq!(run("OwnershipType ne Microsoft.Dynamics.CRM.OwnershipTypes'OrganizationOwned'"), Ok(true));
        assert_eq!(run("CanCreateAttributes/Value eq true and ObjectTypeCode lt 2"), Ok(true));
        assert_eq!(run("not IsCustomEntity"), Ok(true));
        assert_eq!(run("startswith(LogicalName,'acc') and endswith(LogicalName,'unt')"), Ok(true));
        assert_eq!(run("contains(LogicalName,'zzz') or IsCustomEntity eq true"), Ok(false));
        assert_eq!(run("PrimaryImageAttribute eq null"), Ok(true));
        assert!(run("Nope eq 1").unwrap_err().message.contains("Could not find a property named 'Nope'"));
        assert!(run("DisplayName/UserLocalizedLabel/Label eq 'x'").is_err());
        assert!(run("CanCreateAttributes eq true").is_err());
        assert!(run("OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'Bogus'").is_err());
        let e = run("OwnershipType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Picklist'").unwrap_err();
        assert!(e.message.starts_with("A binary operator with incompatible types"), "{}", e.message);
        assert!(run("ObjectTypeCode eq 'x'").is_err());
        assert!(run("LogicalName").is_err());
    }
}
