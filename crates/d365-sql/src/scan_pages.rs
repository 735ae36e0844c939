//! [`ArrowPages`]: a partitioned scan's pages decoded into Arrow where they arrive, once, with
//! the facts the scan needs of each row (see [`d365_client::PageParser`]). Without it the scan
//! read every page twice: once for those facts, once into Arrow.

use std::sync::Arc;

use d365_client::partition::format_instant;
use d365_client::{PageParser, ParsedPage};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef, TimestampMicrosecondType};
use serde_json::{Map, Value};

use crate::arrow_decode::PageDecoder;
use crate::arrow_schema::{ColumnRole, ColumnSpec, ValueKind};

/// Decodes pages into the scan's output batches (the [`ParsedPage::decoded`] is a
/// `RecordBatch` of `schema`) and reads each row's partition column and primary key from the
/// same pass.
pub struct ArrowPages {
    decoder: PageDecoder,
    /// Output columns: the first of the decoded batch.
    outputs: usize,
    /// Batch column of the partition column (a UTC timestamp) and of the primary key (text).
    instant: usize,
    key: usize,
    /// Their names in the facts of a row.
    instant_name: String,
    key_name: String,
}

impl ArrowPages {
    /// A parser producing batches of `schema` (whose fields are `columns`), or `None` when the
    /// partition column or the key is not of the expected type (the scan then reads the facts
    /// on its own).
    pub fn new<'a>(
        schema: &SchemaRef,
        columns: &[&'a ColumnSpec],
        (instant, instant_name): (&'a ColumnSpec, &str),
        (key, key_name): (&'a ColumnSpec, &str),
        entity_set: &str,
    ) -> Option<Self> {
        if instant.kind != ValueKind::Timestamp || key.kind != ValueKind::Utf8 {
            return None;
        }
        let mut specs: Vec<&'a ColumnSpec> = columns.to_vec();
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        let mut position =
            |spec: &'a ColumnSpec, hidden: &str| match columns.iter().position(|c| c.json_key == spec.json_key) {
                Some(i) if columns[i].kind == spec.kind => Some(i),
                Some(_) => None,
                None => {
                    specs.push(spec);
                    fields.push(Arc::new(Field::new(hidden, spec.kind.data_type(), true)));
                    Some(specs.len() - 1)
                }
            };
        let instant = position(instant, "__d365_partition")?;
        let key = position(key, "__d365_key")?;
        let decoder = PageDecoder::new(Arc::new(Schema::new(fields)), &specs, entity_set);
        Some(Self {
            decoder,
            outputs: schema.fields().len(),
            instant,
            key,
            instant_name: instant_name.to_string(),
            key_name: key_name.to_string(),
        })
    }
}

impl ArrowPages {
    /// [`ArrowPages::new`] for a scan partitioned on the property `column` of a table whose
    /// columns are `table_columns` (the partition column and the `primary_key` are looked up
    /// there by property, read or not).
    pub fn for_table<'a>(
        schema: &SchemaRef,
        columns: &[&'a ColumnSpec],
        table_columns: &'a [ColumnSpec],
        (column, primary_key): (&str, &str),
        entity_set: &str,
    ) -> Option<Self> {
        let value =
            |property: &str| table_columns.iter().find(|c| c.property == property && c.role == ColumnRole::Value);
        Self::new(schema, columns, (value(column)?, column), (value(primary_key)?, primary_key), entity_set)
    }
}

impl PageParser for ArrowPages {
    fn parse(&self, body: &[u8], rows_hint: usize) -> Result<ParsedPage, String> {
        let (batch, next_link) = self.decoder.decode_page(body, usize::MAX, rows_hint).map_err(|e| e.to_string())?;
        let instants = batch
            .column(self.instant)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or("the partition column did not decode as a timestamp")?;
        let keys = batch.column(self.key).as_string_opt::<i32>().ok_or("the primary key did not decode as text")?;
        let rows = (0..batch.num_rows())
            .map(|i| {
                let mut row = Map::new();
                if instants.is_valid(i) {
                    let secs = instants.value(i).div_euclid(1_000_000);
                    row.insert(self.instant_name.clone(), Value::String(format_instant(secs)));
                }
                if keys.is_valid(i) {
                    row.insert(self.key_name.clone(), Value::String(keys.value(i).to_string()));
                }
                row
            })
            .collect();
        let decoded = batch.project(&(0..self.outputs).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
        Ok(ParsedPage { decoded: Arc::new(decoded), rows, next_link })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter_pushdown::tests::{attr, table_with};
    use datafusion::arrow::array::StringArray;

    const BODY: &[u8] = br#"{"@odata.context":"x","value":[
        {"thingid":"00000001-0000-0000-0000-000000000000","name":"a","createdon":"2024-05-01T10:00:00Z"},
        {"thingid":"00000002-0000-0000-0000-000000000000","name":"b","createdon":null}
    ],"@odata.nextLink":"https://org/api/data/v9.2/things?$skiptoken=2"}"#;

    fn parse(columns: &[&str]) -> (ParsedPage, usize) {
        let t = table_with(vec![attr("createdon", "DateTime")]);
        let specs: Vec<&ColumnSpec> =
            columns.iter().map(|n| t.columns.iter().find(|c| c.name == *n).unwrap()).collect();
        let schema = Arc::new(Schema::new(
            specs.iter().map(|c| Field::new(&c.name, c.kind.data_type(), true)).collect::<Vec<_>>(),
        ));
        let pages = ArrowPages::for_table(&schema, &specs, &t.columns, ("createdon", "thingid"), "things")
            .expect("a timestamp and a text key");
        (pages.parse(BODY, 2).unwrap(), columns.len())
    }

    #[test]
    fn one_pass_gives_the_batch_the_next_link_and_each_rows_facts() {
        // The columns the scan needs are not selected: decoded, read, then left out.
        let (page, n) = parse(&["name"]);
        let batch = page.decoded.downcast::<datafusion::arrow::record_batch::RecordBatch>().unwrap();
        assert_eq!(batch.num_columns(), n);
        assert_eq!(batch.column(0).as_any().downcast_ref::<StringArray>().unwrap().value(1), "b");
        assert_eq!(page.next_link.as_deref(), Some("https://org/api/data/v9.2/things?$skiptoken=2"));
        assert_eq!(page.rows.len(), 2);
        assert_eq!(page.rows[0]["createdon"], "2024-05-01T10:00:00Z");
        assert_eq!(page.rows[0]["thingid"], "00000001-0000-0000-0000-000000000000");
        assert!(!page.rows[1].contains_key("createdon"), "a null instant is absent, as the scan reads it");
        assert_eq!(d365_client::partition::row_instant(&page.rows[0], "createdon"), Some(Some(1_714_557_600)));
    }

    #[test]
    fn selected_columns_serve_as_the_facts() {
        let (page, n) = parse(&["createdon", "thingid"]);
        let batch = page.decoded.downcast::<datafusion::arrow::record_batch::RecordBatch>().unwrap();
        assert_eq!(batch.num_columns(), n, "no hidden column added");
        assert_eq!(page.rows[1]["thingid"], "00000002-0000-0000-0000-000000000000");
        assert_eq!(page.rows[0]["createdon"], "2024-05-01T10:00:00Z");
    }

    #[test]
    fn a_page_that_is_not_a_collection_is_an_error() {
        let t = table_with(vec![attr("createdon", "DateTime")]);
        let spec = |n: &str| t.columns.iter().find(|c| c.name == n).unwrap();
        let schema = Arc::new(Schema::new(vec![datafusion::arrow::datatypes::Field::new(
            "name",
            spec("name").kind.data_type(),
            true,
        )]));
        let pages = ArrowPages::new(
            &schema,
            &[spec("name")],
            (spec("createdon"), "createdon"),
            (spec("thingid"), "thingid"),
            "things",
        )
        .unwrap();
        let err = pages.parse(b"{\"error\":{}}", 10).err().unwrap();
        assert!(err.contains("value"), "{err}");
        // A partition column that is not a date-time: no parser (the scan reads the facts itself).
        assert!(
            ArrowPages::new(&schema, &[spec("name")], (spec("name"), "name"), (spec("thingid"), "thingid"), "things")
                .is_none()
        );
    }
}
