//! [`DataverseTable`]: the DataFusion `TableProvider` of one Dataverse table.
//!
//! It says which filters the service can evaluate (see [`crate::filter_pushdown`]) and turns a
//! scan — projection, pushed filters, limit — into a [`DataverseScanExec`]. No request is sent
//! while planning.

use std::sync::Arc;

use async_trait::async_trait;
use d365_client::DataverseClient;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::arrow_schema::TableSchema;
use crate::filter_pushdown::{classify, translate_all};
use crate::scan::{DataverseScanExec, ScanRequest};

/// One Dataverse table as a SQL table.
#[derive(Debug)]
pub struct DataverseTable {
    client: DataverseClient,
    table: Arc<TableSchema>,
    pushdown: bool,
    page_size: Option<u32>,
    parallel: bool,
    parallelism: Option<usize>,
}

impl DataverseTable {
    /// The provider of `table`, read through `client`. With `pushdown` off every filter is
    /// evaluated locally and no limit or sort reaches the service (projection still does).
    pub fn new(client: DataverseClient, table: Arc<TableSchema>, pushdown: bool, page_size: Option<u32>) -> Self {
        Self { client, table, pushdown, page_size, parallel: false, parallelism: None }
    }

    /// Whole-table scans read `createdon` ranges concurrently (see [`DataverseScanExec`]),
    /// with `parallelism` requests at once if given (else adapting from the DOP hint).
    pub fn with_parallel(mut self, parallel: bool, parallelism: Option<usize>) -> Self {
        self.parallel = parallel;
        self.parallelism = parallelism;
        self
    }

    /// The table's SQL shape.
    pub fn table_schema(&self) -> &Arc<TableSchema> {
        &self.table
    }
}

#[async_trait]
impl TableProvider for DataverseTable {
    fn schema(&self) -> SchemaRef {
        self.table.arrow.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| if self.pushdown { classify(f, &self.table) } else { TableProviderFilterPushDown::Unsupported })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = projection.cloned().unwrap_or_else(|| (0..self.table.columns.len()).collect());
        let filter = if self.pushdown { translate_all(filters, &self.table) } else { None };
        // DataFusion passes a limit only when every filter was Exact; check anyway, since a
        // limit under an inexact filter would cut rows the local filter still needs.
        let fetch = limit.filter(|_| self.pushdown && filter.as_ref().is_none_or(|f| f.exact));
        let request = ScanRequest { projection, filter, order_by: Vec::new(), fetch };
        Ok(Arc::new(
            DataverseScanExec::new(self.client.clone(), self.table.clone(), request, self.pushdown, self.page_size)
                .with_parallel(self.parallel)
                .with_parallelism(self.parallelism),
        ))
    }
}
