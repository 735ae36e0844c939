//! Resolving a FetchXML tree against the schema: the tables it reads (each checked for the
//! read privilege, as OData reads are), the aliases of its link-entities, the SQL `JOIN`s and
//! `WHERE` conditions, and the columns a plain query returns.

use super::errors;
use crate::schema::{AttrKind, Column, Table};
use crate::security::Access;
use crate::store::ddl::q;
use crate::webapi::error::DvResult;
use crate::webapi::filter_sql::FilterEnv;
use d365_odata::fetchxml::{Entity, LinkEntity, LinkType, Node};
use rusqlite::types::Value as Sql;

/// Most link-entities one query may hold.
pub const LINK_LIMIT: usize = 15;

/// A table the query joins (the root entity is scope 0).
pub struct Scope<'s> {
    /// The FetchXML alias (`acct`), or the root table's logical name.
    pub alias: String,
    /// The SQL alias (`t`, `l1`, ...).
    pub sql: String,
    /// The table.
    pub table: &'s Table,
    /// The link-entity node (None for the root).
    pub node: Option<&'s Node>,
}

/// A resolved query: scopes, joins and conditions, with their parameters in text order.
pub struct Plan<'s> {
    /// Schema, caller and clock.
    pub env: FilterEnv<'s>,
    /// Joined tables, root first.
    pub scopes: Vec<Scope<'s>>,
    /// ` JOIN … ON …` text.
    pub joins: String,
    /// Parameters of `joins`.
    pub join_params: Vec<Sql>,
    /// `WHERE` conditions (and-ed).
    pub conds: Vec<String>,
    /// Parameters of `conds`.
    pub where_params: Vec<Sql>,
    /// Whether a join may repeat a root row (a one-to-many link-entity).
    pub multiplying: bool,
    /// Counter for subquery aliases.
    next_sub: usize,
}

impl<'s> Plan<'s> {
    /// Resolves the root entity, its joins and its filters.
    pub fn build(env: FilterEnv<'s>, root: &'s Table, entity: &'s Entity) -> DvResult<Self> {
        if entity.node.link_count() > LINK_LIMIT {
            return Err(errors::too_many_links());
        }
        let mut plan = Plan {
            env,
            scopes: vec![Scope { alias: root.logical_name.clone(), sql: "t".into(), table: root, node: None }],
            joins: String::new(),
            join_params: Vec::new(),
            conds: Vec::new(),
            where_params: Vec::new(),
            multiplying: false,
            next_sub: 0,
        };
        plan.join_node(0, &entity.node)?;
        let mut params = Vec::new();
        let conds = plan.node_conditions(root, "t", &entity.node, &mut params)?;
        plan.conds = conds;
        plan.where_params = params;
        Ok(plan)
    }

    /// A table by logical name, checked for the read privilege.
    pub fn table(&self, name: &str) -> DvResult<&'s Table> {
        let t = self.env.schema.table(name).ok_or_else(|| errors::no_entity(name))?;
        self.env.caller.check(t, Access::Read)?;
        Ok(t)
    }

    /// A fresh SQL alias for a subquery.
    pub fn sub_alias(&mut self) -> String {
        self.next_sub += 1;
        format!("s{}", self.next_sub)
    }

    /// The scope with FetchXML alias `alias`.
    pub fn scope_by_alias(&self, alias: &str) -> DvResult<&Scope<'s>> {
        self.scopes.iter().find(|s| s.alias == alias).ok_or_else(|| errors::no_alias(alias))
    }

    /// The `from` column (of the linked table) and `to` column (of the parent) of a link.
    /// When one is omitted, it is found from the relationship between the two tables.
    pub fn join_columns(
        &self,
        parent: &'s Table,
        linked: &'s Table,
        l: &LinkEntity,
    ) -> DvResult<(&'s Column, &'s Column)> {
        let col = |t: &'s Table, name: &str| t.column(name).ok_or_else(|| errors::no_attribute(&t.logical_name, name));
        let schema = self.env.schema;
        let (from, to) = match (&l.from, &l.to) {
            (Some(f), Some(t)) => (f.clone(), t.clone()),
            (f, t) => {
                // N:1 (the parent's lookup to the linked table) or 1:N (the linked table's lookup to the parent).
                let n1 = schema.many_to_one(&parent.logical_name).find(|r| {
                    r.referenced_entity == linked.logical_name
                        && t.as_ref().is_none_or(|t| *t == r.referencing_attribute)
                });
                let one_n = schema.many_to_one(&linked.logical_name).find(|r| {
                    r.referenced_entity == parent.logical_name
                        && f.as_ref().is_none_or(|f| *f == r.referencing_attribute)
                });
                match (n1, one_n) {
                    (Some(r), _) => (
                        f.clone().unwrap_or(linked.primary_id.clone()),
                        t.clone().unwrap_or(r.referencing_attribute.clone()),
                    ),
                    (None, Some(r)) => (
                        f.clone().unwrap_or(r.referencing_attribute.clone()),
                        t.clone().unwrap_or(parent.primary_id.clone()),
                    ),
                    _ => {
                        (f.clone().unwrap_or(linked.primary_id.clone()), t.clone().unwrap_or(parent.primary_id.clone()))
                    }
                }
            }
        };
        Ok((col(linked, &from)?, col(parent, &to)?))
    }

    /// Adds the inner / outer link-entities under scope `parent` as SQL joins.
    fn join_node(&mut self, parent: usize, node: &'s Node) -> DvResult<()> {
        for l in &node.links {
            if matches!(l.link_type, LinkType::Exists | LinkType::In) {
                continue;
            }
            let parent_table = self.scopes[parent].table;
            let parent_sql = self.scopes[parent].sql.clone();
            let table = self.table(&l.name)?;
            let (from, to) = self.join_columns(parent_table, table, l)?;
            let idx = self.scopes.len();
            let sql = format!("l{idx}");
            let alias = self.default_alias(l, table, from);
            if self.scopes.iter().any(|s| s.alias == alias) {
                return Err(errors::duplicate_alias(&alias));
            }
            if !from.is_primary_id {
                self.multiplying = true;
            }
            self.scopes.push(Scope { alias, sql: sql.clone(), table, node: Some(&l.node) });
            let link_eq = |a: &str| format!("{a}.{} = {parent_sql}.{}", q(&from.logical_name), q(&to.logical_name));
            let mut params = Vec::new();
            let join = match l.link_type {
                LinkType::MatchFirstRowUsingCrossApply => {
                    // At most one linked row: the first (by key) that matches.
                    let m = self.sub_alias();
                    let mut conds = vec![link_eq(&m)];
                    conds.extend(self.node_conditions(table, &m, &l.node, &mut params)?);
                    format!(
                        " LEFT JOIN {tbl} {sql} ON {sql}.{pk} = (SELECT {m}.{pk} FROM {tbl} {m} WHERE {} ORDER BY {m}.{pk} LIMIT 1)",
                        conds.join(" AND "),
                        tbl = q(&table.logical_name),
                        pk = q(&table.primary_id)
                    )
                }
                _ => {
                    let mut conds = vec![link_eq(&sql)];
                    conds.extend(self.node_conditions(table, &sql, &l.node, &mut params)?);
                    let kind = if l.link_type == LinkType::Outer { "LEFT JOIN" } else { "JOIN" };
                    format!(" {kind} {} {sql} ON {}", q(&table.logical_name), conds.join(" AND "))
                }
            };
            self.joins.push_str(&join);
            self.join_params.extend(params);
            self.join_node(idx, &l.node)?;
        }
        Ok(())
    }

    /// The alias of a link-entity: its `alias`, else (as documented) the linked table's
    /// logical name for a many-to-one link, or `{LogicalName}{N}` (N = how many links to that
    /// table so far) otherwise, or when the logical name is taken.
    fn default_alias(&self, l: &LinkEntity, table: &Table, from: &Column) -> String {
        if let Some(a) = &l.alias {
            return a.clone();
        }
        let name = &table.logical_name;
        if from.is_primary_id && !self.scopes.iter().any(|s| s.alias == *name) {
            return name.clone();
        }
        let n = self.scopes.iter().filter(|s| s.table.logical_name == *name).count() + 1;
        let mut candidate = format!("{name}{n}");
        let mut k = n;
        while self.scopes.iter().any(|s| s.alias == candidate) {
            k += 1;
            candidate = format!("{name}{k}");
        }
        candidate
    }

    /// The conditions a node adds: its filters (and-ed) and its `exists` / `in` links, over
    /// `table` at SQL alias `sql`.
    pub fn node_conditions(
        &mut self,
        table: &'s Table,
        sql: &str,
        node: &'s Node,
        params: &mut Vec<Sql>,
    ) -> DvResult<Vec<String>> {
        let mut out = Vec::new();
        for f in &node.filters {
            out.push(self.filter_sql(table, sql, f, params)?);
        }
        for l in &node.links {
            if matches!(l.link_type, LinkType::Exists | LinkType::In) {
                let (body, _) = self.link_subquery(table, sql, l, params)?;
                out.push(format!("EXISTS (SELECT 1 {body})"));
            }
        }
        Ok(out)
    }

    /// `FROM <linked> x WHERE x.from = parent.to AND <its conditions>` for the subquery link
    /// types (`exists`, `in`, `any`, ...), and the linked table with its SQL alias. Columns
    /// cannot be selected from such links.
    pub fn link_subquery(
        &mut self,
        parent: &'s Table,
        parent_sql: &str,
        l: &'s LinkEntity,
        params: &mut Vec<Sql>,
    ) -> DvResult<(String, String)> {
        let table = self.table(&l.name)?;
        if !l.node.attributes.is_empty() || l.node.all_attributes {
            return Err(errors::subquery_columns(l.link_type.as_str()));
        }
        let (from, to) = self.join_columns(parent, table, l)?;
        let x = self.sub_alias();
        let mut conds = vec![format!("{x}.{} = {parent_sql}.{}", q(&from.logical_name), q(&to.logical_name))];
        conds.extend(self.node_conditions(table, &x, &l.node, params)?);
        // Joined tables inside a subquery link restrict it like inner joins.
        for nested in &l.node.links {
            if matches!(nested.link_type, LinkType::Inner | LinkType::MatchFirstRowUsingCrossApply) {
                let (body, _) = self.link_subquery(table, &x, nested, params)?;
                conds.push(format!("EXISTS (SELECT 1 {body})"));
            }
        }
        Ok((format!("FROM {} {x} WHERE {}", q(&table.logical_name), conds.join(" AND ")), x))
    }
}

/// One column a plain (non-aggregate) query returns.
pub struct Output<'s> {
    /// The JSON property name (`name`, `_ownerid_value`, `acct.name`, or the attribute's alias).
    pub key: String,
    /// The column.
    pub column: &'s Column,
    /// SQL alias of the table it is read from.
    pub sql: String,
    /// The table it belongs to.
    pub table: &'s Table,
}

/// The columns of a plain query: the root's `attribute`s (all columns when it names none
/// or has `all-attributes`), its primary key and, for money, the transaction currency
/// (as Dataverse adds them; not with `distinct`), then each joined table's attributes as
/// `<alias>.<column>`.
pub fn outputs<'s>(plan: &Plan<'s>, root_node: &'s Node, distinct: bool) -> DvResult<Vec<Output<'s>>> {
    let mut out: Vec<Output<'s>> = Vec::new();
    let root = plan.scopes[0].table;
    let push =
        |out: &mut Vec<Output<'s>>, key: String, column: &'s Column, sql: &str, table: &'s Table| -> DvResult<()> {
            if out.iter().any(|o| o.key == key) {
                return Err(errors::duplicate_alias(&key));
            }
            out.push(Output { key, column, sql: sql.to_string(), table });
            Ok(())
        };
    if root_node.all_attributes || root_node.attributes.is_empty() {
        for c in &root.columns {
            push(&mut out, c.property_name(), c, "t", root)?;
        }
    } else {
        for a in &root_node.attributes {
            let c = root.column(&a.name).ok_or_else(|| errors::no_attribute(&root.logical_name, &a.name))?;
            let key = a.alias.clone().unwrap_or_else(|| c.property_name());
            if a.alias.is_none() && out.iter().any(|o| o.key == key) {
                continue;
            }
            push(&mut out, key, c, "t", root)?;
        }
        if !distinct {
            let pk = root.primary_id_column();
            if !out.iter().any(|o| o.sql == "t" && o.column.is_primary_id) {
                push(&mut out, pk.property_name(), pk, "t", root)?;
            }
            if out.iter().any(|o| o.sql == "t" && o.column.kind == AttrKind::Money)
                && let Some(cur) = root.column("transactioncurrencyid")
                && !out.iter().any(|o| o.sql == "t" && o.column.logical_name == cur.logical_name)
            {
                push(&mut out, cur.property_name(), cur, "t", root)?;
            }
        }
    }
    for s in &plan.scopes[1..] {
        let Some(node) = s.node else { continue };
        let columns: Vec<(&'s Column, Option<String>)> = if node.all_attributes {
            s.table.columns.iter().map(|c| (c, None)).collect()
        } else {
            node.attributes
                .iter()
                .map(|a| {
                    let c =
                        s.table.column(&a.name).ok_or_else(|| errors::no_attribute(&s.table.logical_name, &a.name))?;
                    Ok((c, a.alias.clone()))
                })
                .collect::<DvResult<_>>()?
        };
        for (c, alias) in columns {
            let key = alias.unwrap_or_else(|| format!("{}.{}", s.alias, c.logical_name));
            push(&mut out, key, c, &s.sql, s.table)?;
        }
    }
    Ok(out)
}
