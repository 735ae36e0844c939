//! The `metadata` schema: `metadata.entity`, `metadata.attribute` and `metadata.relationship`,
//! built from `EntityDefinitions` when a query runs.
//!
//! `metadata.entity` needs only the table list (already loaded). The other two need each
//! table's columns; a filter on the table name (`WHERE entitylogicalname = 'account'`, `IN`,
//! and for relationships `referencedentity` / `referencingentity`) limits the fetch to those
//! tables, otherwise every table's metadata is fetched (once; it is cached).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use d365_client::{EntityInfo, EntityMetadata, Metadata};
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};

use crate::arrow_schema::table_schema;
use crate::error::SqlError;

/// Which metadata table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// `metadata.entity`.
    Entity,
    /// `metadata.attribute`.
    Attribute,
    /// `metadata.relationship`.
    Relationship,
}

impl MetadataKind {
    /// The table's name in the `metadata` schema.
    pub fn name(self) -> &'static str {
        match self {
            MetadataKind::Entity => "entity",
            MetadataKind::Attribute => "attribute",
            MetadataKind::Relationship => "relationship",
        }
    }

    /// All of them.
    pub const ALL: [MetadataKind; 3] = [MetadataKind::Entity, MetadataKind::Attribute, MetadataKind::Relationship];

    fn schema(self) -> SchemaRef {
        let s = |n: &str| Field::new(n, DataType::Utf8, true);
        let b = |n: &str| Field::new(n, DataType::Boolean, true);
        let fields = match self {
            MetadataKind::Entity => vec![
                s("logicalname"),
                s("schemaname"),
                s("entitysetname"),
                s("primaryidattribute"),
                s("primarynameattribute"),
                Field::new("objecttypecode", DataType::Int32, true),
                s("displayname"),
                s("displaycollectionname"),
                b("iscustomentity"),
                s("ownershiptype"),
                b("isactivity"),
                b("isintersect"),
                b("changetrackingenabled"),
            ],
            MetadataKind::Attribute => vec![
                s("entitylogicalname"),
                s("logicalname"),
                s("schemaname"),
                s("attributetype"),
                s("attributetypename"),
                s("displayname"),
                b("isprimaryid"),
                b("isprimaryname"),
                b("iscustomattribute"),
                b("isvalidforread"),
                b("isvalidforcreate"),
                b("isvalidforupdate"),
                s("requiredlevel"),
                s("attributeof"),
                Field::new("maxlength", DataType::Int64, true),
                Field::new("precision", DataType::Int32, true),
                Field::new("minvalue", DataType::Float64, true),
                Field::new("maxvalue", DataType::Float64, true),
                s("format"),
                s("datetimebehavior"),
                s("targets"),
                s("optionsetname"),
                s("sqltype"),
            ],
            MetadataKind::Relationship => vec![
                s("schemaname"),
                s("referencedentity"),
                s("referencedattribute"),
                s("referencingentity"),
                s("referencingattribute"),
                s("referencednavigationproperty"),
                s("referencingnavigationproperty"),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    /// The columns whose equality filters name the tables to fetch.
    fn entity_columns(self) -> &'static [&'static str] {
        match self {
            MetadataKind::Entity => &[],
            MetadataKind::Attribute => &["entitylogicalname"],
            MetadataKind::Relationship => &["referencedentity", "referencingentity"],
        }
    }
}

/// One `metadata.*` table.
#[derive(Debug)]
pub struct MetadataTable {
    kind: MetadataKind,
    metadata: Arc<Metadata>,
    entities: Arc<Vec<EntityInfo>>,
    schema: SchemaRef,
}

impl MetadataTable {
    /// The `kind` table over `metadata`, whose table list is `entities`.
    pub fn new(kind: MetadataKind, metadata: Arc<Metadata>, entities: Arc<Vec<EntityInfo>>) -> Self {
        Self { kind, metadata, entities, schema: kind.schema() }
    }

    /// Table names named by an equality or `IN` filter on one of `columns`.
    fn names_in(&self, e: &Expr) -> Option<Vec<String>> {
        let cols = self.kind.entity_columns();
        let is_col = |x: &Expr| matches!(x, Expr::Column(c) if cols.contains(&c.name.as_str()));
        let text = |x: &Expr| match x {
            Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
                Some(s.to_ascii_lowercase())
            }
            _ => None,
        };
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) if is_col(left) => Some(vec![text(right)?]),
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) if is_col(right) => Some(vec![text(left)?]),
            Expr::InList(InList { expr, list, negated: false }) if is_col(expr) => list.iter().map(text).collect(),
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
                let mut a = self.names_in(left)?;
                a.extend(self.names_in(right)?);
                Some(a)
            }
            _ => None,
        }
    }
}

#[async_trait]
impl TableProvider for MetadataTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: the filter only narrows which tables are fetched; DataFusion re-checks rows.
        Ok(filters
            .iter()
            .map(|f| match self.names_in(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut only: Option<HashSet<String>> = None;
        for f in filters {
            if let Some(names) = self.names_in(f) {
                let names: HashSet<String> = names.into_iter().collect();
                only = Some(match only {
                    Some(prev) => prev.intersection(&names).cloned().collect(),
                    None => names,
                });
            }
        }
        let partition = MetadataPartition {
            kind: self.kind,
            metadata: self.metadata.clone(),
            entities: self.entities.clone(),
            schema: self.schema.clone(),
            only,
        };
        let exec =
            StreamingTableExec::try_new(self.schema.clone(), vec![Arc::new(partition)], projection, [], false, limit)?;
        Ok(Arc::new(exec))
    }
}

#[derive(Debug)]
struct MetadataPartition {
    kind: MetadataKind,
    metadata: Arc<Metadata>,
    entities: Arc<Vec<EntityInfo>>,
    schema: SchemaRef,
    only: Option<HashSet<String>>,
}

impl PartitionStream for MetadataPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (kind, metadata, entities, schema, only) =
            (self.kind, self.metadata.clone(), self.entities.clone(), self.schema.clone(), self.only.clone());
        let batch = async move {
            let build = async {
                if kind == MetadataKind::Entity {
                    return entity_batch(&schema, &entities);
                }
                let mut metas = Vec::new();
                for e in entities.iter() {
                    if only.as_ref().is_some_and(|o| !o.contains(&e.logical_name)) {
                        continue;
                    }
                    metas.push(metadata.entity(&e.logical_name).await.map_err(SqlError::from)?);
                }
                if kind == MetadataKind::Attribute {
                    attribute_batch(&schema, &metas)
                } else {
                    relationship_batch(&schema, &metas)
                }
            };
            build.await.map_err(SqlError::into_datafusion)
        };
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), futures::stream::once(batch)))
    }
}

fn strs<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

fn bools(v: impl IntoIterator<Item = bool>) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(v.into_iter().map(Some)))
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, SqlError> {
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| SqlError::Execution(e.to_string()))
}

fn entity_batch(schema: &SchemaRef, es: &[EntityInfo]) -> Result<RecordBatch, SqlError> {
    batch(
        schema,
        vec![
            strs(es.iter().map(|e| Some(e.logical_name.as_str()))),
            strs(es.iter().map(|e| Some(e.schema_name.as_str()))),
            strs(es.iter().map(|e| e.entity_set_name.as_deref())),
            strs(es.iter().map(|e| Some(e.primary_id_attribute.as_str()))),
            strs(es.iter().map(|e| e.primary_name_attribute.as_deref())),
            Arc::new(Int32Array::from_iter(es.iter().map(|e| e.object_type_code))),
            strs(es.iter().map(|e| e.display_name.as_deref())),
            strs(es.iter().map(|e| e.display_collection_name.as_deref())),
            bools(es.iter().map(|e| e.is_custom)),
            strs(es.iter().map(|e| Some(e.ownership.as_str()))),
            bools(es.iter().map(|e| e.is_activity)),
            bools(es.iter().map(|e| e.is_intersect)),
            bools(es.iter().map(|e| e.change_tracking_enabled)),
        ],
    )
}

fn attribute_batch(schema: &SchemaRef, metas: &[Arc<EntityMetadata>]) -> Result<RecordBatch, SqlError> {
    let mut rows = Vec::new();
    for m in metas {
        let shape = table_schema(m);
        for a in &m.attributes {
            let sql = shape.column(&a.logical_name).map(|(_, c)| c.kind.data_type().to_string());
            rows.push((m.entity.logical_name.as_str(), a, sql));
        }
    }
    let targets: Vec<Option<String>> =
        rows.iter().map(|(_, a, _)| (!a.targets.is_empty()).then(|| a.targets.join(","))).collect();
    batch(
        schema,
        vec![
            strs(rows.iter().map(|r| Some(r.0))),
            strs(rows.iter().map(|r| Some(r.1.logical_name.as_str()))),
            strs(rows.iter().map(|r| Some(r.1.schema_name.as_str()))),
            strs(rows.iter().map(|r| Some(r.1.attribute_type.as_str()))),
            strs(rows.iter().map(|r| Some(r.1.attribute_type_name.as_str()))),
            strs(rows.iter().map(|r| r.1.display_name.as_deref())),
            bools(rows.iter().map(|r| r.1.is_primary_id)),
            bools(rows.iter().map(|r| r.1.is_primary_name)),
            bools(rows.iter().map(|r| r.1.is_custom)),
            bools(rows.iter().map(|r| r.1.is_valid_for_read)),
            bools(rows.iter().map(|r| r.1.is_valid_for_create)),
            bools(rows.iter().map(|r| r.1.is_valid_for_update)),
            strs(rows.iter().map(|r| Some(r.1.required_level.as_str()))),
            strs(rows.iter().map(|r| r.1.attribute_of.as_deref())),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1.max_length))),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.1.precision))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.1.min_value))),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.1.max_value))),
            strs(rows.iter().map(|r| r.1.format.as_deref())),
            strs(rows.iter().map(|r| r.1.datetime_behavior.as_deref())),
            strs(targets.iter().map(|t| t.as_deref())),
            strs(rows.iter().map(|r| r.1.option_set_name.as_deref())),
            strs(rows.iter().map(|r| r.2.as_deref())),
        ],
    )
}

fn relationship_batch(schema: &SchemaRef, metas: &[Arc<EntityMetadata>]) -> Result<RecordBatch, SqlError> {
    let mut seen = HashSet::new();
    let mut rels = Vec::new();
    for m in metas {
        for r in m.one_to_many.iter().chain(&m.many_to_one) {
            // One row per relationship and lookup (ownerid has one per target table).
            if seen.insert((r.schema_name.clone(), r.referencing_attribute.clone(), r.referenced_entity.clone())) {
                rels.push(r);
            }
        }
    }
    rels.sort_by(|a, b| a.schema_name.cmp(&b.schema_name));
    batch(
        schema,
        vec![
            strs(rels.iter().map(|r| Some(r.schema_name.as_str()))),
            strs(rels.iter().map(|r| Some(r.referenced_entity.as_str()))),
            strs(rels.iter().map(|r| Some(r.referenced_attribute.as_str()))),
            strs(rels.iter().map(|r| Some(r.referencing_entity.as_str()))),
            strs(rels.iter().map(|r| Some(r.referencing_attribute.as_str()))),
            strs(rels.iter().map(|r| r.referenced_navigation_property.as_deref())),
            strs(rels.iter().map(|r| r.referencing_navigation_property.as_deref())),
        ],
    )
}
