//! Recursive-descent parser for `$filter`, `$orderby` and `$apply`, following ODataLib's
//! `UriQueryExpressionParser` (grammar, precedence and error wording).
//!
//! Precedence, loosest first: `or` < `and` < comparison (`eq ne gt ge lt le has`) <
//! additive (`add sub`) < multiplicative (`mul div mod`) < unary (`not`, `-`) < primary.

use std::collections::HashMap;

use crate::MAX_DEPTH;
use crate::ast::*;
use crate::error::{self, ErrorKind, ParseError};
use crate::lexer::{AliasMode, Lexer, Tok, Token, negate_number};
use crate::options::Aliases;

/// Total number of AST nodes parameter-alias substitution may copy into one parse.
const ALIAS_NODE_BUDGET: usize = 100_000;

/// Parameter-alias state shared by a parse and the nested parses of alias values.
pub(crate) struct AliasCtx<'a> {
    aliases: &'a Aliases,
    cache: HashMap<String, (Expr, usize)>,
    resolving: Vec<String>,
    budget: usize,
}

impl<'a> AliasCtx<'a> {
    pub fn new(aliases: &'a Aliases) -> Self {
        AliasCtx { aliases, cache: HashMap::new(), resolving: Vec::new(), budget: ALIAS_NODE_BUDGET }
    }
}

pub(crate) struct Parser<'a, 'c> {
    lx: Lexer<'a>,
    input: &'a str,
    depth: usize,
    vars: Vec<String>,
    ctx: Option<&'c mut AliasCtx<'a>>,
}

fn node_count(e: &Expr) -> usize {
    1 + match e {
        Expr::Literal(_) | Expr::Path(_) => 0,
        Expr::Array(v) => v.len(),
        Expr::Not(x) | Expr::Negate(x) => node_count(x),
        Expr::And(v) | Expr::Or(v) | Expr::Call { args: v, .. } => v.iter().map(node_count).sum(),
        Expr::Compare { left, right, .. } | Expr::Has { left, right } | Expr::Arith { left, right, .. } => {
            node_count(left) + node_count(right)
        }
        Expr::QueryFunction(q) => q.params.iter().map(|(_, v)| node_count(v)).sum(),
        Expr::Lambda(l) => l.predicate.as_deref().map_or(0, node_count),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Cmp(CompareOp),
    Has,
    Arith(ArithOp),
}

fn binop(t: &Token) -> Option<(BinOp, u8)> {
    Some(match t.ident()? {
        "or" => (BinOp::Or, 1),
        "and" => (BinOp::And, 2),
        "eq" => (BinOp::Cmp(CompareOp::Eq), 3),
        "ne" => (BinOp::Cmp(CompareOp::Ne), 3),
        "gt" => (BinOp::Cmp(CompareOp::Gt), 3),
        "ge" => (BinOp::Cmp(CompareOp::Ge), 3),
        "lt" => (BinOp::Cmp(CompareOp::Lt), 3),
        "le" => (BinOp::Cmp(CompareOp::Le), 3),
        "has" => (BinOp::Has, 3),
        "add" => (BinOp::Arith(ArithOp::Add), 4),
        "sub" => (BinOp::Arith(ArithOp::Sub), 4),
        "mul" => (BinOp::Arith(ArithOp::Mul), 5),
        "div" => (BinOp::Arith(ArithOp::Div), 5),
        "mod" => (BinOp::Arith(ArithOp::Mod), 5),
        _ => return None,
    })
}

/// Builds `lhs op rhs`; extends `lhs` in place when it is an `and`/`or` node built by the same
/// chain (`chain` remembers that), so `a or b or c` is one flat node but `(a or b) or c` is not.
fn combine(lhs: Expr, op: BinOp, rhs: Expr, chain: &mut Option<BinOp>) -> Expr {
    let (l, r) = (Box::new(lhs), Box::new(rhs));
    let out = match op {
        BinOp::Or | BinOp::And => {
            let mut lhs = *l;
            if *chain == Some(op)
                && let Expr::Or(v) | Expr::And(v) = &mut lhs
            {
                v.push(*r);
                return lhs;
            }
            *chain = Some(op);
            return if op == BinOp::Or { Expr::Or(vec![lhs, *r]) } else { Expr::And(vec![lhs, *r]) };
        }
        BinOp::Cmp(op) => Expr::Compare { op, left: l, right: r },
        BinOp::Has => Expr::Has { left: l, right: r },
        BinOp::Arith(op) => Expr::Arith { op, left: l, right: r },
    };
    *chain = None;
    out
}

#[inline(never)]
fn duplicate_param(input: &str, at: usize, name: &str) -> ParseError {
    ParseError::new(
        ErrorKind::Syntax,
        input,
        at,
        format!(
            "Parameter names must be unique: '{name}' appears twice at position {} in '{input}'.",
            error::utf16_pos(input, at)
        ),
    )
}

impl<'a, 'c> Parser<'a, 'c> {
    /// `ctx = None` forbids parameter aliases (inside `$expand`).
    pub fn new(input: &'a str, ctx: Option<&'c mut AliasCtx<'a>>, depth: usize) -> Result<Self, ParseError> {
        let mode = if ctx.is_some() { AliasMode::Allowed } else { AliasMode::ForbiddenInExpand };
        Ok(Parser { lx: Lexer::new(input, mode)?, input, depth, vars: Vec::new(), ctx })
    }

    fn cur(&self) -> &Token {
        &self.lx.cur
    }

    fn advance(&mut self) -> Result<(), ParseError> {
        self.lx.advance()
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error::too_deep(self.input, self.cur().start));
        }
        Ok(())
    }

    fn leave(&mut self, n: usize) {
        self.depth = self.depth.saturating_sub(n);
    }

    /// ODataLib's `ValidateToken`: the position reported is just after the current token.
    fn syntax_here(&self) -> ParseError {
        error::syntax(self.input, self.cur().end)
    }

    fn expected_here(&self, what: &str) -> ParseError {
        error::expected(self.input, self.cur().start, what)
    }

    pub fn expect_end(&self) -> Result<(), ParseError> {
        if self.cur().tok == Tok::End { Ok(()) } else { Err(self.syntax_here()) }
    }

    // ---------------------------------------------------------------- expressions
    //
    // Stack economy matters here: the emulator may run in a debug build on a 2 MiB worker
    // stack, so the recursive path (parse_expr → parse_binary → parse_unary → parse_primary →
    // parse_paren/parse_call/parse_lambda → parse_expr) is kept short and its frames small;
    // error construction lives in separate functions.

    pub fn parse_expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let e = self.parse_binary(1)?;
        self.leave(1);
        Ok(e)
    }

    /// Precedence climbing over `or`(1) `and`(2) comparisons(3) `add sub`(4) `mul div mod`(5);
    /// left-associative; `and` / `or` chains are flattened into one node.
    fn parse_binary(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut lhs = self.parse_unary()?;
        let mut chain: Option<BinOp> = None;
        let mut held = 0;
        while let Some((op, prec)) = binop(self.cur()) {
            if prec < min_prec {
                break;
            }
            self.advance()?;
            if prec >= 3 {
                // chained comparison / arithmetic operators nest the tree: count them
                self.enter()?;
                held += 1;
            }
            let rhs = self.parse_binary(prec + 1)?;
            lhs = combine(lhs, op, rhs, &mut chain);
        }
        self.leave(held);
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        let is_minus = self.cur().tok == Tok::Minus;
        if !is_minus && !self.cur().is_ident("not") {
            return self.parse_primary();
        }
        self.advance()?;
        self.enter()?;
        if is_minus && let Some(neg) = self.negated_literal() {
            self.advance()?;
            self.leave(1);
            return Ok(Expr::Literal(neg));
        }
        let operand = Box::new(self.parse_unary()?);
        self.leave(1);
        Ok(if is_minus { Expr::Negate(operand) } else { Expr::Not(operand) })
    }

    /// `- 5` → `-5` (ODataLib glues the sign onto a following number literal).
    fn negated_literal(&self) -> Option<Literal> {
        match &self.cur().tok {
            Tok::Lit(lit) => negate_number(lit),
            _ => None,
        }
    }

    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        match self.cur().tok {
            Tok::LParen => self.parse_paren(),
            Tok::Ident(_) => {
                if self.call_follows()? {
                    self.parse_call()
                } else {
                    self.parse_path()
                }
            }
            _ => self.parse_leaf(),
        }
    }

    /// Is the current identifier immediately followed by `(` (a function call)?
    fn call_follows(&self) -> Result<bool, ParseError> {
        let next = self.lx.peek()?;
        Ok(next.tok == Tok::LParen && next.start == self.cur().end)
    }

    fn parse_paren(&mut self) -> Result<Expr, ParseError> {
        self.advance()?;
        let e = self.parse_expr()?;
        if self.cur().tok != Tok::RParen {
            return Err(self.expected_here("')' or operator"));
        }
        self.advance()?;
        Ok(e)
    }

    /// Literals, arrays and parameter aliases.
    fn parse_leaf(&mut self) -> Result<Expr, ParseError> {
        let at = self.cur().start;
        let tok = std::mem::replace(&mut self.lx.cur.tok, Tok::End);
        let e = match tok {
            Tok::Lit(l) => Expr::Literal(l),
            Tok::Array(items) => Expr::Array(items),
            Tok::Alias(name) => {
                self.advance()?;
                return self.resolve_alias(&name, at);
            }
            other => {
                self.lx.cur.tok = other;
                return Err(self.expected_here("Expression"));
            }
        };
        self.advance()?;
        Ok(e)
    }

    fn take_ident(&mut self) -> String {
        match std::mem::replace(&mut self.lx.cur.tok, Tok::End) {
            Tok::Ident(s) => s,
            other => {
                self.lx.cur.tok = other;
                String::new()
            }
        }
    }

    fn parse_call(&mut self) -> Result<Expr, ParseError> {
        let name = self.take_ident();
        self.advance()?; // name
        self.advance()?; // (
        self.enter()?;
        let mut positional = Vec::new();
        let mut named: Vec<(String, Expr)> = Vec::new();
        if self.cur().tok != Tok::RParen {
            loop {
                let arg_start = self.cur().start;
                if self.cur().ident().is_some() && self.lx.peek()?.tok == Tok::Equals {
                    if !positional.is_empty() {
                        return Err(error::syntax(self.input, arg_start));
                    }
                    let pname = self.take_ident();
                    if named.iter().any(|(n, _)| *n == pname) {
                        return Err(duplicate_param(self.input, arg_start, &pname));
                    }
                    self.advance()?; // name
                    self.advance()?; // =
                    let v = self.parse_expr()?;
                    named.push((pname, v));
                } else {
                    if !named.is_empty() {
                        return Err(error::syntax(self.input, arg_start));
                    }
                    positional.push(self.parse_expr()?);
                }
                match self.cur().tok {
                    Tok::Comma => self.advance()?,
                    Tok::RParen => break,
                    _ => return Err(self.expected_here("')' or ','")),
                }
            }
        }
        self.advance()?; // )
        self.leave(1);
        if !named.is_empty() || (positional.is_empty() && name.contains('.')) {
            Ok(Expr::QueryFunction(QueryFunction { name, params: named }))
        } else {
            Ok(Expr::Call { name, args: positional })
        }
    }

    fn parse_path(&mut self) -> Result<Expr, ParseError> {
        let first = self.take_ident();
        let mut path = if first == "$it" || self.vars.contains(&first) {
            PropertyPath { variable: Some(first), segments: Vec::new() }
        } else {
            PropertyPath { variable: None, segments: vec![first] }
        };
        self.advance()?;
        while self.cur().tok == Tok::Slash {
            self.advance()?;
            let kind = match self.cur().ident() {
                Some("any") => LambdaKind::Any,
                Some("all") => LambdaKind::All,
                Some(_) => {
                    if self.call_follows()? {
                        // a bound function or key segment inside a path: not supported
                        return Err(self.call_in_path());
                    }
                    let seg = self.take_ident();
                    path.segments.push(seg);
                    self.advance()?;
                    continue;
                }
                None => return Err(self.syntax_here()),
            };
            return self.parse_lambda(path, kind);
        }
        Ok(Expr::Path(path))
    }

    #[inline(never)]
    fn call_in_path(&self) -> ParseError {
        match self.lx.peek() {
            Ok(next) => error::syntax(self.input, next.end),
            Err(e) => e,
        }
    }

    fn parse_lambda(&mut self, collection: PropertyPath, kind: LambdaKind) -> Result<Expr, ParseError> {
        self.advance()?; // any / all
        if self.cur().tok != Tok::LParen {
            return Err(self.expected_here("'('"));
        }
        self.advance()?;
        self.enter()?;
        if self.cur().tok == Tok::RParen {
            self.advance()?;
            self.leave(1);
            return Ok(Expr::Lambda(Lambda { collection, kind, variable: None, predicate: None }));
        }
        let var = self.range_variable()?;
        self.advance()?;
        if self.cur().tok != Tok::Colon {
            return Err(self.syntax_here());
        }
        self.advance()?;
        self.vars.push(var.clone());
        let body = self.parse_expr()?;
        self.vars.pop();
        if self.cur().tok != Tok::RParen {
            return Err(self.expected_here("')' or ','"));
        }
        self.advance()?;
        self.leave(1);
        Ok(Expr::Lambda(Lambda { collection, kind, variable: Some(var), predicate: Some(Box::new(body)) }))
    }

    /// The range variable at the current token (not consumed).
    #[inline(never)]
    fn range_variable(&self) -> Result<String, ParseError> {
        let var = match self.cur().ident() {
            Some(v) if !v.contains('.') => v,
            _ => return Err(error::identifier_expected(self.input, self.cur().start)),
        };
        if var == "$it" || self.vars.iter().any(|v| v == var) {
            return Err(ParseError::new(
                ErrorKind::Syntax,
                self.input,
                self.cur().start,
                format!("The range variable '{var}' has already been declared."),
            ));
        }
        Ok(var.to_string())
    }

    fn resolve_alias(&mut self, name: &str, at: usize) -> Result<Expr, ParseError> {
        let input = self.input;
        let depth = self.depth;
        let Some(ctx) = self.ctx.as_deref_mut() else {
            // unreachable: the lexer refuses aliases when there is no context
            return Err(error::syntax(input, at));
        };
        let Some(value) = ctx.aliases.get(name) else {
            return Ok(Expr::Literal(Literal::Null));
        };
        if !ctx.cache.contains_key(name) {
            if ctx.resolving.iter().any(|n| n == name) {
                return Err(ParseError::new(
                    ErrorKind::TooDeep,
                    input,
                    at,
                    format!("Parameter alias '{name}' refers to itself."),
                ));
            }
            if depth + 1 > MAX_DEPTH {
                return Err(error::too_deep(input, at));
            }
            ctx.resolving.push(name.to_string());
            let parsed = {
                let mut p = Parser::new(value, Some(&mut *ctx), depth + 1)?;
                let e = p.parse_expr()?;
                p.expect_end()?;
                e
            };
            ctx.resolving.pop();
            let n = node_count(&parsed);
            ctx.cache.insert(name.to_string(), (parsed, n));
        }
        let (expr, n) = ctx.cache.get(name).cloned().unwrap_or((Expr::Literal(Literal::Null), 1));
        if n > ctx.budget {
            return Err(ParseError::new(ErrorKind::TooDeep, input, at, "Parameter alias expansion is too large."));
        }
        ctx.budget -= n;
        Ok(expr)
    }

    // ---------------------------------------------------------------- $orderby

    pub fn parse_orderby(&mut self) -> Result<Vec<OrderByItem>, ParseError> {
        let mut items = Vec::new();
        loop {
            let expr = self.parse_expr()?;
            let direction = if self.cur().is_ident("asc") {
                self.advance()?;
                Direction::Asc
            } else if self.cur().is_ident("desc") {
                self.advance()?;
                Direction::Desc
            } else {
                Direction::Asc
            };
            items.push(OrderByItem { expr, direction });
            if self.cur().tok != Tok::Comma {
                break;
            }
            self.advance()?;
        }
        self.expect_end()?;
        Ok(items)
    }

    // ---------------------------------------------------------------- $apply

    pub fn parse_apply(&mut self) -> Result<Vec<Transformation>, ParseError> {
        let mut out = Vec::new();
        loop {
            let t = match self.cur().ident() {
                Some("filter") => {
                    self.advance()?;
                    if self.cur().tok != Tok::LParen {
                        return Err(self.expected_here("'('"));
                    }
                    self.advance()?;
                    let e = self.parse_expr()?;
                    if self.cur().tok != Tok::RParen {
                        return Err(self.expected_here("')' or operator"));
                    }
                    self.advance()?;
                    Transformation::Filter(e)
                }
                Some("aggregate") => Transformation::Aggregate(self.parse_aggregate()?),
                Some("groupby") => self.parse_groupby()?,
                _ => return Err(self.expected_here("'aggregate|filter|groupby'")),
            };
            out.push(t);
            if self.cur().tok != Tok::Slash {
                break;
            }
            self.advance()?;
        }
        self.expect_end()?;
        Ok(out)
    }

    fn parse_groupby(&mut self) -> Result<Transformation, ParseError> {
        self.advance()?; // groupby
        for _ in 0..2 {
            if self.cur().tok != Tok::LParen {
                return Err(self.expected_here("'('"));
            }
            self.advance()?;
        }
        let mut properties = Vec::new();
        loop {
            let start = self.cur().start;
            match self.parse_primary()? {
                Expr::Path(p) if p.variable.is_none() => properties.push(p),
                _ => return Err(error::expected(self.input, start, "Expression")),
            }
            if self.cur().tok != Tok::Comma {
                break;
            }
            self.advance()?;
        }
        if self.cur().tok != Tok::RParen {
            return Err(self.expected_here("')' or operator"));
        }
        self.advance()?;
        let mut aggregate = None;
        if self.cur().tok == Tok::Comma {
            self.advance()?;
            if !self.cur().is_ident("aggregate") {
                return Err(self.expected_here("'aggregate'"));
            }
            aggregate = Some(self.parse_aggregate()?);
        }
        if self.cur().tok != Tok::RParen {
            return Err(self.expected_here("')' or ','"));
        }
        self.advance()?;
        Ok(Transformation::GroupBy { properties, aggregate })
    }

    fn parse_aggregate(&mut self) -> Result<Vec<Aggregate>, ParseError> {
        self.advance()?; // aggregate
        if self.cur().tok != Tok::LParen {
            return Err(self.expected_here("'('"));
        }
        self.advance()?;
        let mut out = Vec::new();
        loop {
            out.push(self.parse_aggregate_expr()?);
            if self.cur().tok != Tok::Comma {
                break;
            }
            self.advance()?;
        }
        if self.cur().tok != Tok::RParen {
            return Err(self.expected_here("')' or ','"));
        }
        self.advance()?;
        Ok(out)
    }

    fn parse_aggregate_expr(&mut self) -> Result<Aggregate, ParseError> {
        let start = self.cur().start;
        let expr = self.parse_expr()?;
        let path = match expr {
            Expr::Path(p) if p.variable.is_none() => p,
            _ => {
                return Err(ParseError::new(
                    ErrorKind::Unsupported,
                    self.input,
                    start,
                    format!(
                        "$apply/aggregate expects a property path at position {} in '{}'.",
                        error::utf16_pos(self.input, start),
                        self.input
                    ),
                ));
            }
        };
        if path.single() == Some("$count") {
            let alias = self.parse_as()?;
            return Ok(Aggregate::Count { alias });
        }
        if !self.cur().is_ident("with") {
            return Err(self.expected_here("'with'"));
        }
        self.advance()?;
        let method = match self.cur().ident() {
            Some("sum") => AggregateMethod::Sum,
            Some("average") => AggregateMethod::Average,
            Some("min") => AggregateMethod::Min,
            Some("max") => AggregateMethod::Max,
            Some("countdistinct") => AggregateMethod::CountDistinct,
            _ => {
                let t = &self.input[self.cur().start..self.cur().end];
                return Err(ParseError::new(
                    ErrorKind::Syntax,
                    self.input,
                    self.cur().start,
                    format!(
                        "Unrecognized with '{t}' at '{}' in '{}'.",
                        error::utf16_pos(self.input, self.cur().start),
                        self.input
                    ),
                ));
            }
        };
        self.advance()?;
        let alias = self.parse_as()?;
        Ok(Aggregate::Property { path, method, alias })
    }

    fn parse_as(&mut self) -> Result<String, ParseError> {
        if !self.cur().is_ident("as") {
            return Err(self.expected_here("'as'"));
        }
        self.advance()?;
        match self.cur().ident() {
            Some(a) if !a.contains('.') => {
                let a = a.to_string();
                self.advance()?;
                Ok(a)
            }
            _ => Err(self.syntax_here()),
        }
    }
}
