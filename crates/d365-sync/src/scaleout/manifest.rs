//! The manifest: the plan of a scaled-out export, as JSON lines. It is the contract between
//! `d365 plan`, the workers (`d365 export --manifest`), `d365 commit` and any scheduler (a Spark
//! data source, a Kubernetes Indexed Job, an Airflow task map).
//!
//! ```text
//! {"kind":"manifest","version":1,"id":"…","organization":"https://org.crm.dynamics.com","to":"delta+s3://lake/crm","created":"…","unitRows":200000,"credentials":3}
//! {"kind":"table","table":"account","entitySet":"accounts","primaryKey":"accountid","tracking":{…},"schema":{…}}
//! {"kind":"unit","id":"account-00000","table":"account","index":0,"slot":0,"bounds":{"kind":"range","lo":null,"hi":1700000000},"estimatedRows":199872}
//! …
//! ```
//!
//! A unit is a range of the table's `createdon` (whole seconds, half-open; the first and last
//! ranges open), the rows whose `createdon` is null, or the whole table (one without
//! `createdon`). A unit of a Finance & Operations entity is a range of its entity key
//! (`"keys":{"lo":["usmf","US-001"],"hi":…}`, half-open). Units of a table never overlap and
//! together cover every row.

use std::collections::HashSet;
use std::path::PathBuf;

use d365_client::partition::Bounds;
use d365_client::{EntityInfo, EntityMetadata, KeyRange};
use deltalake_core::kernel::StructType;
use object_store::ObjectStoreExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SyncError;
use crate::store::{TableState, Tracking};

/// The manifest format version this build writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

/// A planned scaled-out export (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The first line.
    pub header: Header,
    /// The tables, in the order planned.
    pub tables: Vec<ManifestTable>,
    /// Every unit of every table; `units[i].index == i`.
    pub units: Vec<Unit>,
}

/// The manifest's first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// This plan's id (a fresh one per `d365 plan`): names the units' files and markers.
    pub id: String,
    /// The organization planned (scheme, host and port of the Web API).
    pub organization: String,
    /// Where the tables land: a Delta location (`delta+s3://bucket/prefix`, `delta:DIR`);
    /// one table per Dataverse table under it. Empty for a plan made for reading only.
    pub to: String,
    /// When the plan was made (RFC 3339, UTC).
    pub created: String,
    /// The rows a unit was sized for.
    pub unit_rows: u64,
    /// Credential slots the units were assigned to, round-robin.
    pub credentials: usize,
}

/// A table of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestTable {
    /// Logical name (the Delta table's name).
    pub table: String,
    /// Entity set (URLs).
    pub entity_set: String,
    /// Primary key column.
    pub primary_key: String,
    /// Where an incremental sync continues after the commit: the change-tracking delta link
    /// taken before any unit was read, or the largest `modifiedon` at planning time.
    pub tracking: TrackingLine,
    /// The columns the units are written with (Delta schema); a worker refuses to read when
    /// the table's columns have changed since.
    pub schema: StructType,
    /// The metadata the table was planned with (Dataverse tables): workers are typed by it,
    /// after one cheap request checks the columns are unchanged, instead of each fetching it
    /// again with a dozen requests of its application user's budget. Absent in older plans and
    /// for F&O entities: workers fetch the metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Box<TableSnapshot>>,
}

/// A table's metadata as the plan read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// The table as listed.
    pub info: EntityInfo,
    /// Its columns, relationships and keys.
    pub entity: EntityMetadata,
}

impl TableSnapshot {
    /// Each column as (logical name, `AttributeType`), sorted, as
    /// [`d365_client::DataverseClient::fetch_attribute_types`] lists them now.
    pub fn attribute_types(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.entity.attributes.iter().map(|a| (a.logical_name.clone(), a.attribute_type.clone())).collect();
        out.sort();
        out
    }
}

/// The sync position of a planned table, as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum TrackingLine {
    /// Change tracking: the delta link.
    Delta {
        /// `@odata.deltaLink` of the keys-only read started before the plan's units.
        #[serde(rename = "deltaLink")]
        delta_link: String,
    },
    /// No change tracking: rows modified at or after the mark are read again.
    Watermark {
        /// The largest `modifiedon` when the plan was made.
        watermark: Option<String>,
    },
}

impl ManifestTable {
    /// The sync state the commit saves with the table.
    pub fn state(&self) -> TableState {
        let tracking = match &self.tracking {
            TrackingLine::Delta { delta_link } => Tracking::Delta { link: delta_link.clone(), next: None },
            TrackingLine::Watermark { watermark } => Tracking::Watermark(watermark.clone()),
        };
        TableState { entity_set: self.entity_set.clone(), primary_key: self.primary_key.clone(), tracking }
    }
}

/// One work unit: the rows of a table a worker reads in one go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unit {
    /// `table-NNNNN`, unique in the manifest.
    pub id: String,
    /// The table's logical name.
    pub table: String,
    /// Position in the manifest (shards take `index % N == i`).
    pub index: usize,
    /// Credential slot (`index % credentials`).
    pub slot: usize,
    /// The rows it covers (on `createdon`); `all` for a unit cut by [`keys`](Self::keys).
    pub bounds: Bounds,
    /// Rows estimated when planning (for progress and scheduling; not a check).
    pub estimated_rows: u64,
    /// For a Finance & Operations entity: the range of its entity key the unit covers (read
    /// in key order, never by `$skip` offsets; see [`d365_client::DataverseClient::keyset_scan_ranges`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<KeyRange>,
}

impl Unit {
    /// The OData filter of the unit's rows (`None`: the whole table).
    pub fn filter(&self) -> Option<String> {
        match self.bounds {
            Bounds::All => None,
            _ => d365_client::partition::Partition::new(0, self.bounds)
                .filter(d365_client::partition::DEFAULT_PARTITION_COLUMN),
        }
    }
}

/// Which units a worker runs: `i/N` takes the units whose index is `i` modulo `N` (0-based,
/// like a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` or an Airflow `map_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This worker's index, `0..count`.
    pub index: usize,
    /// Workers in all.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = SyncError;

    fn from_str(text: &str) -> Result<Self, SyncError> {
        let bad = |why: &str| {
            SyncError::InvalidArgument(format!(
                "--shard {text}: {why}; write INDEX/COUNT with a 0-based index, e.g. 0/3, 1/3 and 2/3 for three workers"
            ))
        };
        let (i, n) = text.trim().split_once('/').ok_or_else(|| bad("no '/'"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("the index is not a whole number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("the count is not a whole number"))?;
        if count == 0 {
            return Err(bad("the count must be at least 1"));
        }
        if index >= count {
            return Err(bad(&format!("the index is out of range (0 to {} for {count} workers)", count - 1)));
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Line {
    Manifest(Header),
    Table(ManifestTable),
    Unit(Unit),
}

impl Manifest {
    /// The units `shard` runs (all without one).
    pub fn shard_units(&self, shard: Option<Shard>) -> impl Iterator<Item = &Unit> {
        self.units.iter().filter(move |u| shard.is_none_or(|s| u.index % s.count == s.index))
    }

    /// The unit of that id.
    pub fn unit(&self, id: &str) -> Result<&Unit, SyncError> {
        self.units.iter().find(|u| u.id == id).ok_or_else(|| {
            let first = self.units.first().map_or("", |u| u.id.as_str());
            let last = self.units.last().map_or("", |u| u.id.as_str());
            SyncError::InvalidArgument(format!(
                "the manifest has no unit '{id}' (its {} units are {first} … {last}; `d365 plan --show MANIFEST` lists them)",
                self.units.len()
            ))
        })
    }

    /// The table of that logical name.
    pub fn table(&self, name: &str) -> Option<&ManifestTable> {
        self.tables.iter().find(|t| t.table == name)
    }

    /// The units of `table`.
    pub fn table_units<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a Unit> {
        self.units.iter().filter(move |u| u.table == table)
    }

    /// The manifest as JSON lines.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        let lines = std::iter::once(Line::Manifest(self.header.clone()))
            .chain(self.tables.iter().cloned().map(Line::Table))
            .chain(self.units.iter().cloned().map(Line::Unit));
        for line in lines {
            // Serialising these types cannot fail (string keys, no non-finite floats).
            out.push_str(&serde_json::to_string(&line).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Parses JSON lines; `source` names the manifest in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, SyncError> {
        let bad = |line: usize, why: String| SyncError::Manifest {
            location: source.to_string(),
            message: if line == 0 { why } else { format!("line {line}: {why}") },
        };
        let mut header = None;
        let mut tables: Vec<ManifestTable> = Vec::new();
        let mut units: Vec<Unit> = Vec::new();
        for (n, text) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if text.is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(text)
                .map_err(|e| bad(n, format!("not JSON ({e}); is this a manifest written by `d365 plan`?")))?;
            if header.is_none() && value.get("kind").and_then(Value::as_str) != Some("manifest") {
                return Err(bad(
                    n,
                    "the first line is not a manifest header; is this a manifest written by `d365 plan`?".into(),
                ));
            }
            if let Some(v) = value.get("version").and_then(Value::as_u64)
                && v != u64::from(MANIFEST_VERSION)
            {
                return Err(bad(
                    n,
                    format!(
                        "manifest version {v}; this d365 reads version {MANIFEST_VERSION}: plan again with this version"
                    ),
                ));
            }
            match serde_json::from_value::<Line>(value).map_err(|e| bad(n, e.to_string()))? {
                Line::Manifest(h) if header.is_none() => header = Some(h),
                Line::Manifest(_) => return Err(bad(n, "a second manifest header".into())),
                Line::Table(t) => tables.push(t),
                Line::Unit(u) => units.push(u),
            }
        }
        let header = header.ok_or_else(|| bad(0, "empty: no manifest header".into()))?;
        let known: HashSet<&str> = tables.iter().map(|t| t.table.as_str()).collect();
        if known.len() != tables.len() {
            return Err(bad(0, "a table is listed twice".into()));
        }
        let mut ids = HashSet::new();
        for (i, u) in units.iter().enumerate() {
            if !known.contains(u.table.as_str()) {
                return Err(bad(
                    0,
                    format!("unit {} belongs to table '{}', which the manifest does not list", u.id, u.table),
                ));
            }
            if !ids.insert(u.id.as_str()) {
                return Err(bad(0, format!("unit {} is listed twice", u.id)));
            }
            if u.index != i {
                return Err(bad(
                    0,
                    format!("unit {} has index {} at position {i}: the manifest was edited", u.id, u.index),
                ));
            }
            if !is_plain_id(&u.id) {
                return Err(bad(0, format!("unit id '{}' may hold only letters, digits, '-' and '_'", u.id)));
            }
        }
        if !is_plain_id(&header.id) {
            return Err(bad(0, format!("manifest id '{}' may hold only letters, digits, '-' and '_'", header.id)));
        }
        for t in &tables {
            if !units.iter().any(|u| u.table == t.table) {
                return Err(bad(0, format!("table '{}' has no unit", t.table)));
            }
        }
        Ok(Self { header, tables, units })
    }

    /// Reads the manifest at `location`: a local path or an object-store URL (`s3://…`,
    /// `az://…`, `abfss://…`, `gs://…`, with settings from the environment and `options`).
    pub async fn load(location: &str, options: &[(String, String)]) -> Result<Self, SyncError> {
        let text = match ManifestLocation::parse(location, options)? {
            ManifestLocation::Local(path) => std::fs::read_to_string(&path).map_err(|e| SyncError::Manifest {
                location: path.display().to_string(),
                message: format!("cannot be read ({e}); write one with `d365 plan TABLES --to DEST -o FILE`"),
            })?,
            ManifestLocation::Remote(url) => {
                let bytes = url.read().await?;
                String::from_utf8(bytes.to_vec()).map_err(|_| SyncError::Manifest {
                    location: url.to_string(),
                    message: "not UTF-8 text: not a manifest".into(),
                })?
            }
        };
        Self::parse(&text, location)
    }

    /// Writes the manifest to `location` (see [`Manifest::load`]): a local file is written
    /// to a temporary file and renamed, an object in one put, so a reader never sees half.
    pub async fn save(&self, location: &str, options: &[(String, String)]) -> Result<(), SyncError> {
        let text = self.to_jsonl();
        match ManifestLocation::parse(location, options)? {
            ManifestLocation::Local(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(SyncError::io(dir))?;
                }
                crate::checkpoint::write_atomically(&path, text.as_bytes(), false)
            }
            ManifestLocation::Remote(url) => url.put(bytes::Bytes::from(text)).await,
        }
    }

    /// The Delta location the plan lands in (store settings from the environment and
    /// `options`); an error for a plan made for reading only.
    pub fn destination(&self, options: &[(String, String)]) -> Result<crate::delta::DeltaLocation, SyncError> {
        if self.header.to.is_empty() {
            return Err(SyncError::Manifest {
                location: format!("plan {}", self.header.id),
                message: "it was made for reading only (no destination): plan again with --to DELTA-LOCATION \
                          to run workers and commit"
                    .into(),
            });
        }
        crate::delta::DeltaLocation::parse_with(&self.header.to, options.to_vec())
    }
}

/// Letters, digits, `-` and `_` only (ids become path segments).
fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a manifest is kept.
enum ManifestLocation {
    Local(PathBuf),
    Remote(crate::remote::RemoteUrl),
}

impl ManifestLocation {
    fn parse(text: &str, options: &[(String, String)]) -> Result<Self, SyncError> {
        match crate::destination::parse_destination_with(text, "the manifest", options)? {
            crate::Destination::Local(p) => Ok(Self::Local(p)),
            crate::Destination::Remote(remote) => Ok(Self::Remote(remote)),
            _ => Err(SyncError::InvalidArgument(format!(
                "{text}: a manifest is a local file or an object (s3://, az://, abfss://, gs://), not a Delta table or a database"
            ))),
        }
    }
}

/// Reads a small object of a store (a marker), `None` when it does not exist.
pub(crate) async fn get_optional(
    store: &dyn object_store::ObjectStore,
    path: &object_store::path::Path,
) -> Result<Option<bytes::Bytes>, object_store::Error> {
    match store.get(path).await {
        Ok(got) => Ok(Some(got.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let schema = StructType::try_new([deltalake_core::kernel::StructField::new(
            "accountid",
            deltalake_core::kernel::DataType::STRING,
            true,
        )])
        .unwrap();
        let header = Header {
            version: MANIFEST_VERSION,
            id: "m1".into(),
            organization: "https://org.crm.dynamics.com".into(),
            to: "delta:lake".into(),
            created: "2026-12-06T00:00:00Z".into(),
            unit_rows: 100,
            credentials: 2,
        };
        let table = ManifestTable {
            table: "account".into(),
            entity_set: "accounts".into(),
            primary_key: "accountid".into(),
            tracking: TrackingLine::Delta { delta_link: "https://org/api/data/v9.2/accounts?$deltatoken=1".into() },
            schema,
            metadata: None,
        };
        let units = (0..3)
            .map(|i| Unit {
                id: format!("account-{i:05}"),
                table: "account".into(),
                index: i,
                slot: i % 2,
                bounds: Bounds::Range {
                    lo: (i > 0).then_some(i as i64 * 10),
                    hi: (i < 2).then_some(i as i64 * 10 + 10),
                },
                estimated_rows: 100,
                keys: None,
            })
            .collect();
        Manifest { header, tables: vec![table], units }
    }

    #[test]
    fn round_trips_through_json_lines() {
        let m = sample();
        let text = m.to_jsonl();
        assert_eq!(text.lines().count(), 5);
        assert!(text.starts_with("{\"kind\":\"manifest\""), "{text}");
        assert_eq!(Manifest::parse(&text, "m.jsonl").unwrap(), m);
    }

    #[test]
    fn shards_take_every_nth_unit_and_refuse_bad_indexes() {
        let m = sample();
        let s: Shard = "1/2".parse().unwrap();
        let ids: Vec<&str> = m.shard_units(Some(s)).map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["account-00001"]);
        assert_eq!(m.shard_units(None).count(), 3);
        let err = "3/3".parse::<Shard>().unwrap_err().to_string();
        assert!(err.contains("out of range (0 to 2 for 3 workers)"), "{err}");
        assert!("1".parse::<Shard>().unwrap_err().to_string().contains("0-based"));
        assert!("0/0".parse::<Shard>().is_err());
        assert!("a/2".parse::<Shard>().is_err());
    }

    #[test]
    fn damaged_manifests_are_refused_with_the_line() {
        let m = sample();
        let text = m.to_jsonl();
        let err = Manifest::parse("hello\n", "m").unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("not JSON"), "{err}");
        let no_header: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
        let err = Manifest::parse(&no_header, "m").unwrap_err().to_string();
        assert!(err.contains("not a manifest header"), "{err}");
        let edited = text.replace("\"index\":2", "\"index\":7");
        assert!(Manifest::parse(&edited, "m").unwrap_err().to_string().contains("edited"));
        let newer = text.replace("\"version\":1", "\"version\":9");
        assert!(Manifest::parse(&newer, "m").unwrap_err().to_string().contains("version 9"));
        let orphan = text.replace("\"table\":\"account\",\"index\":1", "\"table\":\"contact\",\"index\":1");
        assert!(Manifest::parse(&orphan, "m").unwrap_err().to_string().contains("does not list"));
        let traversal = text.replace("account-00001", "../../x");
        assert!(Manifest::parse(&traversal, "m").unwrap_err().to_string().contains("may hold only"));
        assert!(Manifest::parse("", "m").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn unit_filters_follow_the_bounds() {
        let m = sample();
        assert_eq!(m.units[0].filter().unwrap(), "createdon lt 1970-01-01T00:00:10Z");
        assert!(m.units[1].filter().unwrap().contains("createdon ge 1970-01-01T00:00:10Z"));
        let all = Unit { bounds: Bounds::All, ..m.units[0].clone() };
        assert_eq!(all.filter(), None);
        let null = Unit { bounds: Bounds::Null, ..m.units[0].clone() };
        assert_eq!(null.filter().unwrap(), "createdon eq null");
    }
}
