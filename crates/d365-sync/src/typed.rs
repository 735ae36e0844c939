//! Typed reads of one table: the SQL engine's shape of the table (exact decimals, UTC
//! timestamps, dates, choice labels, lookup names; see [`d365_sql::arrow_schema`]), optionally
//! narrowed to some columns, the query that reads exactly those columns with the annotations
//! their labels need, and each page body decoded straight into an Arrow batch. Exports and
//! typed sync targets both read through it.

use std::sync::Arc;

use d365_client::{FORMATTED_VALUE, LOOKUP_LOGICAL_NAME, Query, ScanPage, SharedParser};
use d365_sql::arrow_decode::PageDecoder;
use d365_sql::datafusion::arrow::array::BooleanArray;
use d365_sql::datafusion::arrow::compute::filter_record_batch;
use d365_sql::datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use d365_sql::datafusion::arrow::record_batch::RecordBatch;
use d365_sql::scan_pages::ArrowPages;
use d365_sql::{ColumnRole, ColumnSpec, TableSchema};

use crate::error::SyncError;

/// A typed reader of one table's pages.
pub struct TypedReader {
    /// The table's shape, narrowed to the columns read.
    pub schema: Arc<TableSchema>,
    decoder: PageDecoder,
    /// Every column of the table, read or not (a partitioned scan places rows by two of them).
    table_columns: Vec<ColumnSpec>,
}

impl std::fmt::Debug for TypedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedReader").field("table", &self.schema.entity.logical_name).finish()
    }
}

impl TypedReader {
    /// A reader of every column of `schema`.
    pub fn new(schema: TableSchema) -> Self {
        let table_columns = schema.columns.clone();
        Self::with_table_columns(schema, table_columns)
    }

    fn with_table_columns(schema: TableSchema, table_columns: Vec<ColumnSpec>) -> Self {
        let columns: Vec<&ColumnSpec> = schema.columns.iter().collect();
        let decoder = PageDecoder::new(schema.arrow.clone(), &columns, &schema.entity_set);
        Self { schema: Arc::new(schema), decoder, table_columns }
    }

    /// A reader of the columns of `schema` named in `names` (SQL column names such as
    /// `parentaccountid` or `statecodename`, or Web API property names such as
    /// `_parentaccountid_value`; any case), in that order; every column when `names` is empty.
    /// An unknown name is an error naming the nearest column.
    pub fn project(schema: TableSchema, names: &[String]) -> Result<Self, SyncError> {
        if names.is_empty() {
            return Ok(Self::new(schema));
        }
        let mut columns: Vec<ColumnSpec> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.trim();
            let found = schema.column(name).map(|(_, c)| c).or_else(|| {
                schema.columns.iter().find(|c| c.role == ColumnRole::Value && c.property.eq_ignore_ascii_case(name))
            });
            let Some(c) = found else {
                let hint = d365_sql::nearest(name, schema.columns.iter().map(|c| c.name.as_str()))
                    .map(|n| format!(" (did you mean '{n}'?)"))
                    .unwrap_or_default();
                return Err(SyncError::InvalidArgument(format!(
                    "table '{}' has no column '{name}'{hint}",
                    schema.entity.logical_name
                )));
            };
            if !columns.iter().any(|k| k.name == c.name) {
                columns.push(c.clone());
            }
        }
        let fields: Vec<Field> = columns.iter().map(|c| Field::new(&c.name, c.kind.data_type(), true)).collect();
        let table_columns = schema.columns.clone();
        let narrowed = TableSchema { columns, arrow: Arc::new(Schema::new(fields)), ..schema };
        Ok(Self::with_table_columns(narrowed, table_columns))
    }

    /// The Arrow schema of the batches.
    pub fn arrow(&self) -> &SchemaRef {
        &self.schema.arrow
    }

    /// The SQL names of the columns read.
    pub fn column_names(&self) -> Vec<String> {
        self.schema.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The read of these columns (their properties, the primary key, and the annotations the
    /// label columns come from), with `filter` (raw OData) and `page_size`.
    pub fn query(&self, filter: Option<&str>, page_size: Option<u32>) -> Query {
        let t = &self.schema;
        let mut select = vec![t.primary_key.clone()];
        for c in &t.columns {
            if !select.contains(&c.property) {
                select.push(c.property.clone());
            }
        }
        let mut annotations = Vec::new();
        if t.columns.iter().any(|c| c.role == ColumnRole::FormattedValue) {
            annotations.push(FORMATTED_VALUE);
        }
        if t.columns.iter().any(|c| c.role == ColumnRole::LookupLogicalName) {
            annotations.push(LOOKUP_LOGICAL_NAME);
        }
        let mut q = Query::new(t.entity_set.clone()).select(select);
        if !annotations.is_empty() {
            q = q.annotations(annotations);
        }
        q.filter = filter.map(str::to_string);
        if let Some(n) = page_size {
            q = q.max_page_size(n);
        }
        q
    }

    /// The parser that decodes this reader's pages where a partitioned scan receives them,
    /// together with the facts the scan needs (its options' partition `column` and
    /// `primary_key`; see [`d365_sql::scan_pages::ArrowPages`]); `None` when the table's
    /// columns do not allow it.
    pub fn page_parser(&self, column: &str, primary_key: &str) -> Option<SharedParser> {
        let columns: Vec<&ColumnSpec> = self.schema.columns.iter().collect();
        let facts = (column, primary_key);
        ArrowPages::for_table(&self.schema.arrow, &columns, &self.table_columns, facts, &self.schema.entity_set)
            .map(|p| SharedParser(Arc::new(p)))
    }

    /// A page of a partitioned scan as a batch: the one its [`TypedReader::page_parser`]
    /// decoded, else its body decoded now; less the rows an earlier page returned.
    pub fn decode_page(&self, page: &ScanPage) -> Result<RecordBatch, SyncError> {
        match page.decoded.as_ref().and_then(|d| d.downcast_ref::<RecordBatch>()) {
            Some(batch) => self.without(batch.clone(), &page.skipped),
            None => self.decode(&page.body, page.rows.len() + page.skipped.len(), &page.skipped),
        }
    }

    /// The first `rows` rows of the page `body`, decoded, less the positions in `skip` (rows
    /// an earlier page returned, deleted-row entries).
    pub fn decode(&self, body: &[u8], rows: usize, skip: &[usize]) -> Result<RecordBatch, SyncError> {
        let table = &self.schema.entity.logical_name;
        let decoded = self
            .decoder
            .decode(body, rows, rows)
            .map_err(|e| SyncError::InvalidArgument(format!("{table}: a page could not be decoded: {e}")))?;
        self.without(decoded, skip)
    }

    /// `decoded` less the rows at the positions in `skip`.
    fn without(&self, decoded: RecordBatch, skip: &[usize]) -> Result<RecordBatch, SyncError> {
        let table = &self.schema.entity.logical_name;
        if skip.is_empty() {
            return Ok(decoded);
        }
        let mut mask = vec![true; decoded.num_rows()];
        for &i in skip {
            if let Some(m) = mask.get_mut(i) {
                *m = false;
            }
        }
        filter_record_batch(&decoded, &BooleanArray::from(mask))
            .map_err(|e| SyncError::InvalidArgument(format!("{table}: internal: {e}")))
    }
}
