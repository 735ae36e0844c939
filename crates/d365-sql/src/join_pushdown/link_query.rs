//! [`LinkQuery`]: one FetchXML query over a tree of tables joined along lookups — the root
//! `entity` and its `link-entity` elements, each many-to-one from its parent (the parent holds
//! the lookup, the linked table's primary key is the other end), so every root row gives at
//! most one row and the root's key pages the answer exactly. Optionally a `not any` link under
//! the root keeps only the root rows that no row of another table points to (the rows a
//! one-to-many LEFT join adds with NULLs).

use std::sync::Arc;

use d365_client::{FETCHXML_PAGING_COOKIE, FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, MORE_RECORDS};

use super::fetch_filter::{attribute_of, xml_escape};
use crate::arrow_schema::{ColumnRole, ColumnSpec, TableSchema};

/// Rows per FetchXML page unless the engine's page size says otherwise (the service's largest).
pub const FETCH_PAGE_ROWS: u32 = 5000;

/// One table of the tree.
#[derive(Debug, Clone)]
pub struct JoinNode {
    /// The table.
    pub table: Arc<TableSchema>,
    /// Its filter as a FetchXML `<filter>` element, if any.
    pub filter: Option<String>,
    /// How it hangs from its parent; `None` for the root.
    pub link: Option<Link>,
}

/// The edge from a node to its parent: `parent.to = node.from`, where `to` is the parent's
/// lookup and `from` the node's primary key.
#[derive(Debug, Clone)]
pub struct Link {
    /// The parent's index in [`LinkQuery::nodes`] (always smaller than the node's own).
    pub parent: usize,
    /// The node's attribute (its primary key).
    pub from: String,
    /// The parent's attribute (its lookup).
    pub to: String,
    /// `link-type="outer"`: the parent's rows are kept without a match.
    pub outer: bool,
}

/// A `not any` link under the root: the root's rows that no row of `table` (passing `filter`)
/// points to with its lookup `from` (at the root's attribute `to`).
#[derive(Debug, Clone)]
pub struct Unmatched {
    /// The table whose rows must not exist.
    pub table: Arc<TableSchema>,
    /// Its filter, if any.
    pub filter: Option<String>,
    /// Its lookup attribute.
    pub from: String,
    /// The root's attribute the lookup points to (its primary key).
    pub to: String,
}

/// One FetchXML page chain (see the module docs).
#[derive(Debug, Clone)]
pub struct LinkQuery {
    /// The tables: `nodes[0]` is the root, every other node links to an earlier one.
    pub nodes: Vec<JoinNode>,
    /// A `not any` condition under the root, if any.
    pub unmatched: Option<Unmatched>,
    /// The output columns in order: a node and the index of its column in the node's table, or
    /// `None` for a column that is NULL in every row of this query.
    pub columns: Vec<Option<(usize, usize)>>,
    /// Rows per page (FetchXML `count`, at most [`FETCH_PAGE_ROWS`]).
    pub page_rows: u32,
}

impl LinkQuery {
    /// A query of one table: `columns` are indices into its columns.
    pub fn single(table: Arc<TableSchema>, filter: Option<String>, columns: &[usize], page_rows: u32) -> Self {
        Self {
            nodes: vec![JoinNode { table, filter, link: None }],
            unmatched: None,
            columns: columns.iter().map(|&c| Some((0, c))).collect(),
            page_rows,
        }
    }

    /// The `link-entity` alias of node `i` (`i > 0`): its columns come back as
    /// `"<alias>.<attribute>"`. Not the table's name, which another node may have.
    pub fn alias(i: usize) -> String {
        format!("link{i}")
    }

    /// The column spec of output column `c`, if it is not always NULL.
    pub fn column(&self, c: usize) -> Option<&ColumnSpec> {
        let (node, index) = (*self.columns.get(c)?)?;
        self.nodes.get(node)?.table.columns.get(index)
    }

    /// Whether any table of the tree is filtered.
    pub fn filtered(&self) -> bool {
        self.nodes.iter().any(|n| n.filter.is_some())
    }

    /// Whether every link is outer (the tree may then hang from another as an outer link: an
    /// inner link below an outer one would drop the outer link's unmatched rows).
    pub fn all_outer(&self) -> bool {
        self.nodes.iter().all(|n| n.link.as_ref().is_none_or(|l| l.outer))
    }

    /// This tree with `guest`'s tree hung under node `at`: `guest`'s root links to it with
    /// `lookup` (an attribute of node `at`) = its primary key. Output columns are this query's
    /// then `guest`'s.
    pub fn attach(mut self, at: usize, lookup: &str, guest: LinkQuery, outer: bool) -> Self {
        let offset = self.nodes.len();
        for (i, mut node) in guest.nodes.into_iter().enumerate() {
            node.link = Some(match node.link {
                None => {
                    debug_assert_eq!(i, 0);
                    Link { parent: at, from: node.table.primary_key.clone(), to: lookup.to_string(), outer }
                }
                Some(l) => Link { parent: l.parent + offset, ..l },
            });
            self.nodes.push(node);
        }
        self.columns.extend(guest.columns.into_iter().map(|c| c.map(|(n, i)| (n + offset, i))));
        self
    }

    /// The FetchXML of page `page` (1-based), after the page whose cookie is `cookie`.
    pub fn fetch_xml(&self, page: u32, cookie: Option<&str>) -> String {
        let mut x = format!("<fetch mapping=\"logical\" count=\"{}\" page=\"{page}\"", self.page_rows);
        if let Some(c) = cookie {
            x.push_str(&format!(" paging-cookie=\"{}\"", xml_escape(c)));
        }
        x.push('>');
        let root = &self.nodes[0].table;
        x.push_str(&format!("<entity name=\"{}\">", xml_escape(&root.entity.logical_name)));
        self.attributes(0, &mut x);
        x.push_str(&format!("<order attribute=\"{}\"/>", xml_escape(&root.primary_key)));
        match (&self.nodes[0].filter, &self.unmatched) {
            (f, None) => x.push_str(f.as_deref().unwrap_or("")),
            (f, Some(u)) => {
                x.push_str("<filter type=\"and\">");
                x.push_str(f.as_deref().unwrap_or(""));
                x.push_str(&format!(
                    "<link-entity name=\"{}\" from=\"{}\" to=\"{}\" link-type=\"not any\">{}</link-entity></filter>",
                    xml_escape(&u.table.entity.logical_name),
                    xml_escape(&u.from),
                    xml_escape(&u.to),
                    u.filter.as_deref().unwrap_or("")
                ));
            }
        }
        self.links_under(0, &mut x);
        x.push_str("</entity></fetch>");
        x
    }

    /// `<attribute>` elements for node `node`'s output columns (each attribute once).
    fn attributes(&self, node: usize, out: &mut String) {
        let mut seen: Vec<&str> = Vec::new();
        for c in (0..self.columns.len()).filter(|&c| matches!(self.columns[c], Some((n, _)) if n == node)) {
            let Some(spec) = self.column(c) else { continue };
            let a = attribute_of(&spec.property);
            if !seen.contains(&a) {
                seen.push(a);
                out.push_str(&format!("<attribute name=\"{}\"/>", xml_escape(a)));
            }
        }
    }

    /// The `link-entity` elements of the children of `parent`, each with its own children.
    fn links_under(&self, parent: usize, out: &mut String) {
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(link) = node.link.as_ref().filter(|l| l.parent == parent) else { continue };
            out.push_str(&format!(
                "<link-entity name=\"{}\" from=\"{}\" to=\"{}\" link-type=\"{}\" alias=\"{}\">",
                xml_escape(&node.table.entity.logical_name),
                xml_escape(&link.from),
                xml_escape(&link.to),
                if link.outer { "outer" } else { "inner" },
                Self::alias(i),
            ));
            self.attributes(i, out);
            out.push_str(node.filter.as_deref().unwrap_or(""));
            self.links_under(i, out);
            out.push_str("</link-entity>");
        }
    }

    /// The `Prefer` header: the paging annotations, and the formatted values and lookup
    /// targets when a virtual column needs them.
    pub fn prefer(&self) -> String {
        let mut annotations = vec![FETCHXML_PAGING_COOKIE, MORE_RECORDS];
        let roles: Vec<ColumnRole> = (0..self.columns.len()).filter_map(|c| self.column(c)).map(|c| c.role).collect();
        if roles.contains(&ColumnRole::FormattedValue) {
            annotations.push(FORMATTED_VALUE);
        }
        if roles.contains(&ColumnRole::LookupLogicalName) {
            annotations.push(LOOKUP_LOGICAL_NAME);
        }
        format!("odata.include-annotations=\"{}\"", annotations.join(","))
    }

    /// The output columns, each with the key its value has in a row of the answer (a linked
    /// node's as `"<alias>.<attribute>"`). `null_like` stands for the columns that are NULL in
    /// every row: they get the empty key, which no row of a Web API answer holds.
    pub fn output_columns(&self, null_like: &[ColumnSpec]) -> Vec<ColumnSpec> {
        self.columns
            .iter()
            .zip(null_like)
            .map(|(at, like)| match *at {
                None => ColumnSpec { json_key: String::new(), ..like.clone() },
                Some((0, index)) => self.nodes[0].table.columns[index].clone(),
                Some((node, index)) => {
                    let c = &self.nodes[node].table.columns[index];
                    let key = format!("{}.{}", Self::alias(node), attribute_of(&c.property));
                    let json_key = match c.role {
                        ColumnRole::Value => key,
                        ColumnRole::FormattedValue => format!("{key}@{FORMATTED_VALUE}"),
                        ColumnRole::LookupLogicalName => format!("{key}@{LOOKUP_LOGICAL_NAME}"),
                    };
                    ColumnSpec { json_key, ..c.clone() }
                }
            })
            .collect()
    }

    /// One line for plans: the tables and how they meet.
    pub fn describe(&self) -> String {
        let name = |i: usize| self.nodes[i].table.entity.logical_name.as_str();
        let mut s = name(0).to_string();
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            if let Some(l) = &n.link {
                s.push_str(&format!(
                    " {} JOIN {} ON {}.{} = {}.{}",
                    if l.outer { "LEFT" } else { "INNER" },
                    name(i),
                    name(l.parent),
                    l.to,
                    name(i),
                    l.from
                ));
            }
        }
        if let Some(u) = &self.unmatched {
            s.push_str(&format!(
                " WITHOUT {} ON {}.{} = {}.{}",
                u.table.entity.logical_name,
                u.table.entity.logical_name,
                u.from,
                name(0),
                u.to
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_pushdown::tests::table;

    /// `thing` renamed `name` (primary key `{name}id`).
    fn named(name: &str) -> Arc<TableSchema> {
        let mut t = table();
        t.entity.logical_name = name.into();
        t.primary_key = format!("{name}id");
        Arc::new(t)
    }

    fn column(t: &TableSchema, name: &str) -> usize {
        t.columns.iter().position(|c| c.name == name).unwrap()
    }

    #[test]
    fn trees_nest_links_under_the_table_holding_the_lookup() {
        let (a, b, c) = (named("a"), named("b"), named("c"));
        let filter = Some(
            "<filter type=\"and\"><condition attribute=\"qty\" operator=\"gt\" value=\"1\"/></filter>".to_string(),
        );
        let qa = LinkQuery::single(a.clone(), None, &[column(&a, "name")], 500);
        let qb = LinkQuery::single(b.clone(), filter.clone(), &[column(&b, "name"), column(&b, "parentid")], 5000);
        let qc = LinkQuery::single(c.clone(), None, &[column(&c, "amount")], 5000);
        // a.parentid -> b, then b.parentid -> c (outer), under b.
        let q = qa.attach(0, "parentid", qb, false).attach(1, "parentid", qc, true);
        let name = column(&a, "name");
        assert_eq!(
            q.columns,
            vec![Some((0, name)), Some((1, name)), Some((1, column(&b, "parentid"))), Some((2, column(&c, "amount")))]
        );
        assert_eq!(
            q.fetch_xml(2, Some("<cookie page=\"1\"/>")),
            "<fetch mapping=\"logical\" count=\"500\" page=\"2\" paging-cookie=\"&lt;cookie page=&quot;1&quot;/&gt;\">\
             <entity name=\"a\"><attribute name=\"name\"/><order attribute=\"aid\"/>\
             <link-entity name=\"b\" from=\"bid\" to=\"parentid\" link-type=\"inner\" alias=\"link1\">\
             <attribute name=\"name\"/><attribute name=\"parentid\"/>\
             <filter type=\"and\"><condition attribute=\"qty\" operator=\"gt\" value=\"1\"/></filter>\
             <link-entity name=\"c\" from=\"cid\" to=\"parentid\" link-type=\"outer\" alias=\"link2\">\
             <attribute name=\"amount\"/></link-entity></link-entity></entity></fetch>"
        );
        assert!(q.filtered() && !q.all_outer());
        let like: Vec<ColumnSpec> = (0..4).map(|i| q.column(i).unwrap().clone()).collect();
        let keys: Vec<String> = q.output_columns(&like).into_iter().map(|c| c.json_key).collect();
        assert_eq!(keys, ["name", "link1.name", "link1.parentid", "link2.amount"]);
        assert_eq!(q.describe(), "a INNER JOIN b ON a.parentid = b.bid LEFT JOIN c ON b.parentid = c.cid");
    }

    #[test]
    fn unmatched_rows_are_a_not_any_link_inside_the_root_filter() {
        let (a, b) = (named("a"), named("b"));
        let mut q = LinkQuery::single(a.clone(), None, &[column(&a, "name")], 5000);
        q.unmatched = Some(Unmatched {
            table: b.clone(),
            filter: Some(
                "<filter type=\"and\"><condition attribute=\"state\" operator=\"eq\" value=\"1\"/></filter>".into(),
            ),
            from: "parentid".into(),
            to: "aid".into(),
        });
        q.columns.push(None);
        let xml = q.fetch_xml(1, None);
        assert!(
            xml.contains(
                "<order attribute=\"aid\"/><filter type=\"and\"><link-entity name=\"b\" from=\"parentid\" \
                 to=\"aid\" link-type=\"not any\"><filter type=\"and\"><condition attribute=\"state\" \
                 operator=\"eq\" value=\"1\"/></filter></link-entity></filter></entity>"
            ),
            "{xml}"
        );
        // The NULL column decodes from a key no row holds.
        let like = vec![q.column(0).unwrap().clone(), b.columns[column(&b, "name")].clone()];
        let keys: Vec<String> = q.output_columns(&like).into_iter().map(|c| c.json_key).collect();
        assert_eq!(keys, ["name", ""]);
        assert!(!q.filtered(), "the root has no filter of its own");
    }
}
