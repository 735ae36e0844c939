//! Differential test: generated queries (random filters over every column type of
//! `new_widget` and `account`, projections, limits, orderings, aggregates) run twice against
//! the emulator — with pushdown, and with pushdown off (every filter, limit and sort local) —
//! and must give identical results.

use crate::common;

use std::collections::HashMap;

use common::{Recorder, rows, start};
use d365_sql::datafusion::arrow::datatypes::DataType;
use d365_sql::{ColumnRole, SqlEngine, ValueKind};
use serde_json::json;

/// SplitMix64: deterministic and stable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A column of a table under test, with sample values (as SQL literals) from its data.
struct Col {
    name: String,
    kind: ValueKind,
    is_virtual: bool,
    is_guid: bool,
    samples: Vec<String>,
}

struct Table {
    name: &'static str,
    pk: &'static str,
    cols: Vec<Col>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn flip_case(rng: &mut Rng, s: &str) -> String {
    match rng.below(4) {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        _ => s.to_string(),
    }
}

async fn load_table(engine: &SqlEngine, name: &'static str, pk: &'static str) -> Table {
    let shape = engine.describe(name).await.unwrap();
    let batches = engine.collect(&format!("SELECT * FROM {name}")).await.unwrap();
    let data = rows(&batches);
    let cols = shape
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut samples: Vec<String> = data.iter().map(|r| r[i].clone()).filter(|v| v != "NULL").collect();
            samples.sort();
            samples.dedup();
            Col {
                name: c.name.clone(),
                kind: c.kind,
                is_virtual: c.role != ColumnRole::Value,
                is_guid: matches!(c.attribute_type.as_str(), "Uniqueidentifier" | "Lookup" | "Customer" | "Owner")
                    && c.role == ColumnRole::Value,
                samples,
            }
        })
        .collect();
    Table { name, pk, cols }
}

/// A SQL literal for a sample of column `c`.
fn literal(rng: &mut Rng, c: &Col) -> Option<String> {
    if c.samples.is_empty() {
        return None;
    }
    let v = rng.pick(&c.samples).clone();
    Some(match c.kind {
        ValueKind::Utf8 if c.is_guid && rng.chance(20) => quote(&v.to_uppercase()),
        ValueKind::Utf8 => quote(&flip_case(rng, &v)),
        ValueKind::Timestamp => format!("'{v}'"),
        ValueKind::Date32 => format!("DATE '{v}'"),
        ValueKind::Decimal { .. } if rng.chance(20) => {
            // A float literal (CAST of the column to DOUBLE on DataFusion's side).
            let f: f64 = v.parse().ok()?;
            format!("{:e}", f.round())
        }
        _ => v,
    })
}

fn predicate(rng: &mut Rng, t: &Table, depth: u32) -> Option<String> {
    if depth < 2 && rng.chance(30) {
        let a = predicate(rng, t, depth + 1)?;
        let b = predicate(rng, t, depth + 1)?;
        let op = if rng.chance(50) { "AND" } else { "OR" };
        let p = format!("({a} {op} {b})");
        return Some(if rng.chance(15) { format!("NOT {p}") } else { p });
    }
    let c = rng.pick(&t.cols);
    let name = &c.name;
    if rng.chance(8) {
        return Some(format!("{name} IS {}NULL", if rng.chance(50) { "NOT " } else { "" }));
    }
    let v = literal(rng, c)?;
    let cmp = *rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
    Some(match c.kind {
        ValueKind::Boolean => match rng.below(4) {
            0 => name.clone(),
            1 => format!("NOT {name}"),
            2 => format!("{name} IS NOT TRUE"),
            _ => format!("{name} = {v}"),
        },
        ValueKind::Utf8 if !c.is_guid && !c.is_virtual && rng.chance(45) => {
            let raw = v.trim_matches('\'').replace("''", "'");
            let chars: Vec<char> = raw.chars().collect();
            let n = chars.len();
            let k = 1 + rng.below(n.clamp(1, 4));
            let start: String = chars.iter().take(k).collect();
            let end: String = chars.iter().skip(n.saturating_sub(k)).collect();
            let mid: String = chars.iter().skip(n / 3).take(k).collect();
            let pat = match rng.below(5) {
                0 => format!("{start}%"),
                1 => format!("%{end}"),
                2 => format!("%{mid}%"),
                3 => format!("{start}_%"),
                _ => format!("%{}%", mid.to_lowercase()),
            };
            let not = if rng.chance(15) { "NOT " } else { "" };
            format!("{name} {not}LIKE {}", quote(&pat))
        }
        _ if rng.chance(15) => {
            let w = literal(rng, c)?;
            let not = if rng.chance(30) { "NOT " } else { "" };
            format!("{name} {not}IN ({v}, {w})")
        }
        _ if rng.chance(10) && !matches!(c.kind, ValueKind::Utf8) => {
            let w = literal(rng, c)?;
            format!("{name} BETWEEN {v} AND {w}")
        }
        _ => format!("{name} {cmp} {v}"),
    })
}

fn sortable(c: &Col) -> bool {
    matches!(
        c.kind,
        ValueKind::Int32
            | ValueKind::Int64
            | ValueKind::Decimal { .. }
            | ValueKind::Timestamp
            | ValueKind::Date32
            | ValueKind::Float64
    ) && !c.is_virtual
}

/// One generated query and whether its result order is fully determined.
fn query(rng: &mut Rng, t: &Table) -> (String, bool) {
    if rng.chance(20) {
        // Aggregates over a filtered table (pushed as $apply where the service can compute
        // them exactly, local otherwise).
        let nums: Vec<&Col> =
            t.cols.iter().filter(|c| matches!(c.kind, ValueKind::Int32 | ValueKind::Decimal { .. })).collect();
        let n = rng.pick(&nums).name.clone();
        let filter = predicate(rng, t, 0).map(|p| format!(" WHERE {p}")).unwrap_or_default();
        let aggs = match rng.below(3) {
            0 => format!("COUNT(*), SUM({n}), MIN({n}), MAX({n})"),
            1 => format!("COUNT({n}), AVG({n}), SUM({n})"),
            _ => format!("COUNT(*), AVG({n}), MAX({n}), COUNT({n})"),
        };
        let groups: Vec<String> = (0..rng.below(3)).map(|_| rng.pick(&t.cols).name.clone()).collect();
        if groups.is_empty() {
            return (format!("SELECT {aggs} FROM {}{filter}", t.name), false);
        }
        let group = groups.join(", ");
        return (format!("SELECT {group}, {aggs} FROM {}{filter} GROUP BY {group}", t.name), false);
    }
    let k = 1 + rng.below(5);
    let mut cols: Vec<String> = Vec::new();
    for _ in 0..k {
        let c = rng.pick(&t.cols).name.clone();
        if !cols.contains(&c) {
            cols.push(c);
        }
    }
    let projection = if rng.chance(8) { "*".to_string() } else { cols.join(", ") };
    let mut sql = format!("SELECT {projection} FROM {}", t.name);
    let preds = rng.below(4);
    let ps: Vec<String> = (0..preds).filter_map(|_| predicate(rng, t, 0)).collect();
    if !ps.is_empty() {
        sql.push_str(&format!(" WHERE {}", ps.join(" AND ")));
    }
    let mut ordered = false;
    match rng.below(3) {
        0 => {
            let sortables: Vec<&Col> = t.cols.iter().filter(|c| sortable(c)).collect();
            let c = if rng.chance(75) { rng.pick(&sortables) } else { rng.pick(&t.cols) };
            let dir = if rng.chance(50) { " DESC" } else { "" };
            // versionnumber is unique: the order is total.
            sql.push_str(&format!(" ORDER BY {}{dir}, versionnumber", c.name));
            ordered = true;
            if rng.chance(70) {
                sql.push_str(&format!(" LIMIT {}", 1 + rng.below(40)));
            }
        }
        1 if rng.chance(50) => sql.push_str(&format!(" LIMIT {}", 1 + rng.below(30))),
        _ => {}
    }
    let _ = t.pk;
    (sql, ordered)
}

async fn seed_case_variants(env: &common::Env) {
    let admin = env.client(None);
    for (i, name) in [
        "ALPHA Gadget",
        "alpha gadget",
        "Alpha gadget",
        "O'Brien Widget",
        "o'brien widget",
        "Élan Gizmo",
        "élan gizmo",
        "Alpha%Gadget_1",
        "Zed",
    ]
    .iter()
    .enumerate()
    {
        env.create(
            &admin,
            "new_widgets",
            json!({"new_name": name, "new_quantity": i as i64 * 7 - 10, "new_isactive": i % 2 == 0,
                   "new_description": name.to_lowercase(), "new_price": 10.5 * i as f64}),
        )
        .await;
    }
    for name in ["Zeta Corp", "zeta corp", "ZETA CORP", "zeta Corp #1"] {
        env.create(
            &admin,
            "accounts",
            json!({"name": name, "telephone1": name.to_uppercase(), "numberofemployees": 42}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_and_local_evaluation_agree() {
    let env = start(500).await;
    seed_case_variants(&env).await;
    // Small pages, so full scans follow several nextLinks.
    let pushed = env.engine(true, Some(170)).await;
    let local = env.engine(false, Some(170)).await;
    let rec = Recorder::attach(pushed.client());
    let tables =
        [load_table(&local, "new_widget", "new_widgetid").await, load_table(&local, "account", "accountid").await];
    let mut rng = Rng(0x5EED_D365);
    let mut stats: HashMap<&str, usize> = HashMap::new();
    let total = 300;
    for i in 0..total {
        let t = &tables[if i % 5 < 2 { 1 } else { 0 }];
        let (sql, ordered) = query(&mut rng, t);
        rec.take();
        let a = pushed.collect(&sql).await.unwrap_or_else(|e| panic!("pushdown: {sql}: {e}"));
        let b = local.collect(&sql).await.unwrap_or_else(|e| panic!("local: {sql}: {e}"));
        let events = rec.take();
        for (key, needle) in [("filter", "$filter="), ("top", "$top="), ("orderby", "$orderby="), ("apply", "$apply=")]
        {
            if events.iter().any(|e| e.path.contains(needle)) {
                *stats.entry(key).or_default() += 1;
            }
        }
        let (mut ra, mut rb) = (rows(&a), rows(&b));
        let limited_unordered = sql.contains(" LIMIT ") && !ordered;
        if limited_unordered {
            // Any n rows are a correct answer: same count, and every row is a row of the full
            // result.
            let full_sql = sql.rsplit_once(" LIMIT ").map(|(s, _)| s.to_string()).unwrap_or_default();
            let full = rows(&local.collect(&full_sql).await.unwrap());
            assert_eq!(ra.len(), rb.len(), "{sql}");
            for r in &ra {
                assert!(full.contains(r), "{sql}: row {r:?} is not in the full result");
            }
            continue;
        }
        if !ordered {
            ra.sort();
            rb.sort();
        }
        assert_eq!(ra, rb, "results differ for {sql}");
        *stats.entry("compared").or_default() += 1;
        if !ra.is_empty() {
            *stats.entry("non_empty").or_default() += 1;
        }
    }
    println!("differential: {total} queries, {stats:?}");
    // The test is only meaningful if pushdown actually happened, and results were not trivial.
    assert!(stats.get("filter").copied().unwrap_or(0) >= 80, "{stats:?}");
    assert!(stats.get("orderby").copied().unwrap_or(0) >= 15, "{stats:?}");
    assert!(stats.get("top").copied().unwrap_or(0) >= 20, "{stats:?}");
    assert!(stats.get("non_empty").copied().unwrap_or(0) >= 60, "{stats:?}");
    assert!(stats.get("apply").copied().unwrap_or(0) >= 10, "{stats:?}");
    let _ = DataType::Null;
}
