//! [`DataverseLinkJoinExec`]: a join of tables computed by the service — one FetchXML query
//! ([`LinkQuery`]) per page chain, paged with FetchXML paging cookies, each page decoded into a
//! batch of the join's columns. A one-to-many LEFT join is two chains: the joined rows, then the
//! rows of the kept table that nothing points to.

use std::fmt;
use std::sync::Arc;

use d365_client::DataverseClient;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use futures::StreamExt;

use super::link_query::LinkQuery;
use crate::arrow_decode::PageDecoder;
use crate::arrow_schema::ColumnSpec;

/// The physical plan node (see the module docs).
#[derive(Debug, Clone)]
pub struct DataverseLinkJoinExec {
    client: DataverseClient,
    queries: Vec<LinkQuery>,
    schema: SchemaRef,
    /// Each output column's spec (names and Arrow kinds: the NULL columns of a chain decode as
    /// these).
    columns: Vec<ColumnSpec>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DataverseLinkJoinExec {
    /// The rows of `queries`, one after the other, as batches of `schema` (the join's schema
    /// before any projection), whose fields are `columns`.
    pub fn new(client: DataverseClient, queries: Vec<LinkQuery>, schema: SchemaRef, columns: Vec<ColumnSpec>) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self { client, queries, schema, columns, properties, metrics: ExecutionPlanMetricsSet::new() }
    }

    /// The page chains, in the order they run.
    pub fn queries(&self) -> &[LinkQuery] {
        &self.queries
    }

    /// The client the chains read with.
    pub fn client(&self) -> &DataverseClient {
        &self.client
    }

    /// The output columns' specs.
    pub fn columns(&self) -> &[ColumnSpec] {
        &self.columns
    }

    /// The first request of each chain, as `--explain` prints it.
    pub fn request_text(&self) -> std::result::Result<String, crate::SqlError> {
        let mut out = Vec::new();
        for q in &self.queries {
            let url = self.client.fetch_xml_url(&q.nodes[0].table.entity_set, &q.fetch_xml(1, None))?;
            out.push(format!("GET {url}\nPrefer: {}", q.prefer()));
        }
        Ok(out.join("\nthen\n"))
    }
}

impl DisplayAs for DataverseLinkJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DataverseLinkJoinExec: ")?;
        for (i, q) in self.queries.iter().enumerate() {
            if i > 0 {
                write!(f, "; then ")?;
            }
            write!(f, "{}, fetch_xml={}", q.describe(), q.fetch_xml(1, None))?;
        }
        Ok(())
    }
}

#[allow(deprecated)] // `with_new_children` is still required by the trait in DataFusion 55.
impl ExecutionPlan for DataverseLinkJoinExec {
    crate::leaf_exec::leaf_exec_methods!("DataverseLinkJoinExec");

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        crate::leaf_exec::one_partition("DataverseLinkJoinExec", partition)?;
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let pages = MetricBuilder::new(&self.metrics).counter("pages", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_received", partition);
        let chains: Vec<Paging> = self
            .queries
            .iter()
            .map(|q| {
                let columns = q.output_columns(&self.columns);
                let refs: Vec<&ColumnSpec> = columns.iter().collect();
                Paging {
                    client: self.client.clone(),
                    decoder: PageDecoder::new(self.schema.clone(), &refs, &q.nodes[0].table.entity_set),
                    prefer: q.prefer(),
                    query: q.clone(),
                    rows: rows.clone(),
                    pages: pages.clone(),
                    bytes: bytes.clone(),
                    page: 1,
                    cookie: None,
                    done: false,
                }
            })
            .collect();
        let stream = futures::stream::iter(chains).flat_map(|chain| {
            futures::stream::try_unfold(chain, |mut s| async move {
                if s.done {
                    return Ok(None);
                }
                let xml = s.query.fetch_xml(s.page, s.cookie.as_deref());
                let page = s
                    .client
                    .fetch_xml_page(&s.query.nodes[0].table.entity_set, &xml, &s.prefer)
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
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Where one page chain stands.
struct Paging {
    client: DataverseClient,
    query: LinkQuery,
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
