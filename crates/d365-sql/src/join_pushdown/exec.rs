//! [`DataverseLinkJoinExec`]: a join of two tables computed by the service — one FetchXML
//! query whose root entity is the table holding the lookup and whose `link-entity` is the
//! table it points to, paged with FetchXML paging cookies, each page decoded into a batch of
//! the join's columns (the root's, then the linked table's, in the join's order).

use std::fmt;
use std::sync::Arc;

use d365_client::{DataverseClient, FETCHXML_PAGING_COOKIE, FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, MORE_RECORDS};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use super::fetch_filter::{attribute_of, xml_escape};
use crate::arrow_decode::PageDecoder;
use crate::arrow_schema::{ColumnRole, ColumnSpec, TableSchema};

/// Rows per FetchXML page unless the engine's page size says otherwise (the service's largest).
pub const FETCH_PAGE_ROWS: u32 = 5000;

/// One table of the join: its columns in the join's output and its pushed filter.
#[derive(Debug, Clone)]
pub struct JoinSide {
    /// The table.
    pub table: Arc<TableSchema>,
    /// Its columns in the join's output, as indices into the table's columns.
    pub projection: Vec<usize>,
    /// Its filter as a FetchXML `<filter>` element, if any.
    pub filter: Option<String>,
}

impl JoinSide {
    fn columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.projection.iter().filter_map(|&i| self.table.columns.get(i))
    }

    /// `<attribute>` elements for the projected columns (each attribute once).
    fn attributes(&self, out: &mut String) {
        let mut seen: Vec<&str> = Vec::new();
        for c in self.columns() {
            let a = attribute_of(&c.property);
            if !seen.contains(&a) {
                seen.push(a);
                out.push_str(&format!("<attribute name=\"{}\"/>", xml_escape(a)));
            }
        }
    }
}

/// The join: the root table (holding the lookup), the linked table (its primary key is the
/// other end), and how they meet.
#[derive(Debug, Clone)]
pub struct LinkJoin {
    /// The table holding the lookup: FetchXML's `entity`.
    pub root: JoinSide,
    /// The table the lookup points to: the `link-entity`.
    pub linked: JoinSide,
    /// The root's lookup attribute (`to`).
    pub lookup: String,
    /// `link-type="outer"` (a LEFT join keeping root rows without a match) rather than inner.
    pub outer: bool,
    /// Whether the root's columns come first in the join's output.
    pub root_first: bool,
    /// Rows per page (FetchXML `count`, at most [`FETCH_PAGE_ROWS`]).
    pub page_rows: u32,
}

impl LinkJoin {
    /// The `link-entity` alias: linked columns come back as `"<alias>.<attribute>"`. Not the
    /// table's name, which the root has when a table is joined to itself.
    pub fn alias(&self) -> &str {
        "link1"
    }

    /// The FetchXML of page `page` (1-based), after the page whose cookie is `cookie`.
    pub fn fetch_xml(&self, page: u32, cookie: Option<&str>) -> String {
        let mut x = format!("<fetch mapping=\"logical\" count=\"{}\" page=\"{page}\"", self.page_rows);
        if let Some(c) = cookie {
            x.push_str(&format!(" paging-cookie=\"{}\"", xml_escape(c)));
        }
        x.push('>');
        let root = &self.root.table;
        x.push_str(&format!("<entity name=\"{}\">", xml_escape(&root.entity.logical_name)));
        self.root.attributes(&mut x);
        x.push_str(&format!("<order attribute=\"{}\"/>", xml_escape(&root.primary_key)));
        if let Some(f) = &self.root.filter {
            x.push_str(f);
        }
        let linked = &self.linked.table;
        x.push_str(&format!(
            "<link-entity name=\"{}\" from=\"{}\" to=\"{}\" link-type=\"{}\" alias=\"{}\">",
            xml_escape(&linked.entity.logical_name),
            xml_escape(&linked.primary_key),
            xml_escape(&self.lookup),
            if self.outer { "outer" } else { "inner" },
            xml_escape(self.alias()),
        ));
        self.linked.attributes(&mut x);
        if let Some(f) = &self.linked.filter {
            x.push_str(f);
        }
        x.push_str("</link-entity></entity></fetch>");
        x
    }

    /// The `Prefer` header: the paging annotations, and the formatted values and lookup
    /// targets when a virtual column needs them.
    pub fn prefer(&self) -> String {
        let mut annotations = vec![FETCHXML_PAGING_COOKIE, MORE_RECORDS];
        let roles: Vec<ColumnRole> = self.root.columns().chain(self.linked.columns()).map(|c| c.role).collect();
        if roles.contains(&ColumnRole::FormattedValue) {
            annotations.push(FORMATTED_VALUE);
        }
        if roles.contains(&ColumnRole::LookupLogicalName) {
            annotations.push(LOOKUP_LOGICAL_NAME);
        }
        format!("odata.include-annotations=\"{}\"", annotations.join(","))
    }

    /// The join's columns in output order, each with the key its value has in a row of the
    /// answer (linked columns as `"<alias>.<attribute>"`).
    fn output_columns(&self) -> Vec<ColumnSpec> {
        let root: Vec<ColumnSpec> = self.root.columns().cloned().collect();
        let linked: Vec<ColumnSpec> = self
            .linked
            .columns()
            .map(|c| {
                let key = format!("{}.{}", self.alias(), attribute_of(&c.property));
                let json_key = match c.role {
                    ColumnRole::Value => key,
                    ColumnRole::FormattedValue => format!("{key}@{FORMATTED_VALUE}"),
                    ColumnRole::LookupLogicalName => format!("{key}@{LOOKUP_LOGICAL_NAME}"),
                };
                ColumnSpec { json_key, ..c.clone() }
            })
            .collect();
        if self.root_first { [root, linked].concat() } else { [linked, root].concat() }
    }
}

/// The physical plan node (see the module docs).
#[derive(Debug, Clone)]
pub struct DataverseLinkJoinExec {
    client: DataverseClient,
    join: LinkJoin,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DataverseLinkJoinExec {
    /// The join `join` producing `schema` (the join's schema before any projection: the
    /// root's and the linked table's columns in the join's order).
    pub fn new(client: DataverseClient, join: LinkJoin, schema: SchemaRef) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self { client, join, schema, properties, metrics: ExecutionPlanMetricsSet::new() }
    }

    /// The join computed.
    pub fn join(&self) -> &LinkJoin {
        &self.join
    }

    /// The first request, as `--explain` prints it.
    pub fn request_text(&self) -> std::result::Result<String, crate::SqlError> {
        let url = self.client.fetch_xml_url(&self.join.root.table.entity_set, &self.join.fetch_xml(1, None))?;
        Ok(format!("GET {url}\nPrefer: {}", self.join.prefer()))
    }
}

impl DisplayAs for DataverseLinkJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let j = &self.join;
        write!(
            f,
            "DataverseLinkJoinExec: {} {} JOIN {} ON {}.{} = {}.{}, fetch_xml={}",
            j.root.table.entity.logical_name,
            if j.outer { "LEFT" } else { "INNER" },
            j.linked.table.entity.logical_name,
            j.root.table.entity.logical_name,
            j.lookup,
            j.linked.table.entity.logical_name,
            j.linked.table.primary_key,
            j.fetch_xml(1, None)
        )
    }
}

#[allow(deprecated)] // `with_new_children` is still required by the trait in DataFusion 55.
impl ExecutionPlan for DataverseLinkJoinExec {
    crate::leaf_exec::leaf_exec_methods!("DataverseLinkJoinExec");

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        crate::leaf_exec::one_partition("DataverseLinkJoinExec", partition)?;
        let columns = self.join.output_columns();
        let refs: Vec<&ColumnSpec> = columns.iter().collect();
        let decoder = PageDecoder::new(self.schema.clone(), &refs, &self.join.root.table.entity_set);
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let pages = MetricBuilder::new(&self.metrics).counter("pages", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let state = Paging {
            client: self.client.clone(),
            join: self.join.clone(),
            prefer: self.join.prefer(),
            decoder,
            rows,
            pages,
            bytes,
            page: 1,
            cookie: None,
            done: false,
        };
        let stream = futures::stream::try_unfold(state, |mut s| async move {
            if s.done {
                return Ok(None);
            }
            let xml = s.join.fetch_xml(s.page, s.cookie.as_deref());
            let page = s
                .client
                .fetch_xml_page(&s.join.root.table.entity_set, &xml, &s.prefer)
                .await
                .map_err(|e| crate::SqlError::from(e).into_datafusion())?;
            let batch = s.decoder.decode(&page.body, page.rows, page.rows).map_err(|e| e.into_datafusion())?;
            s.rows.add(batch.num_rows());
            s.pages.add(1);
            s.bytes.add(page.body.len());
            s.done = !page.more_records || page.rows == 0;
            s.page += 1;
            s.cookie = page.paging_cookie;
            Ok(Some((batch, s)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Where the page chain stands.
struct Paging {
    client: DataverseClient,
    join: LinkJoin,
    /// The `Prefer` header of every page.
    prefer: String,
    decoder: PageDecoder,
    rows: Count,
    pages: Count,
    bytes: Count,
    page: u32,
    cookie: Option<String>,
    done: bool,
}
