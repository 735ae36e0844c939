//! Deterministic sample data: the organization, its business unit, users (interactive and
//! application users), teams and currency, then `rows` accounts with proportional contacts
//! (½), opportunities (¼), leads (¼) and widgets (⅒). The same `rows` always produces the
//! same data, so tests and benchmarks can rely on it. Last come the platform tables
//! (`sdkmessage`, `sdkmessagefilter`), written from the schema's message catalogue
//! ([`crate::schema::messages`]): one row per message, one filter per (message, table) pair
//! the emulator serves.

use super::ddl::q;
use crate::config::Config;
use crate::schema::messages::{self, MESSAGES, UNBOUND, supports_message};
use crate::schema::platform_tables::is_read_only_table;
use crate::schema::{AttrKind, Column, RequiredLevel, Schema, Table};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params_from_iter};
use uuid::Uuid;

/// SplitMix64: tiny, fast and stable forever (unlike `rand`'s StdRng across versions).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The id of seeded row `i` of the table with object type code `otc`. Ids sort in seeding
/// order, like the sequential GUIDs Dataverse hands out.
pub fn seeded_id(otc: i32, i: u64) -> String {
    let h = Rng(i ^ ((otc as u64) << 40)).next();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        i,
        otc as u16,
        (h >> 52) & 0xfff,
        (h >> 40) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

const FIRST: &[&str] = &[
    "Maria", "James", "Aiko", "Olu", "Sven", "Priya", "Diego", "Chloé", "Mei", "Omar", "Ingrid", "Kwame", "Lucía",
    "Noah", "Fatima", "Yuki", "Liam", "Zara", "Mateo", "Anya",
];
const LAST: &[&str] = &[
    "Garcia",
    "Smith",
    "Tanaka",
    "Adeyemi",
    "Larsen",
    "Patel",
    "Fernández",
    "Dubois",
    "Chen",
    "Haddad",
    "Berg",
    "Mensah",
    "Rossi",
    "O'Brien",
    "Khan",
    "Sato",
    "Murphy",
    "Novak",
    "Silva",
    "Ivanova",
];
const WORD1: &[&str] = &[
    "Adventure",
    "Blue",
    "Coho",
    "Contoso",
    "Fabrikam",
    "Fourth",
    "Litware",
    "Northwind",
    "Proseware",
    "Southridge",
    "Tailspin",
    "Trey",
    "Wide World",
    "Wingtip",
    "Alpine",
    "Lucerne",
    "Margie's",
    "Woodgrove",
    "Humongous",
    "Datum",
];
const WORD2: &[&str] = &[
    "Works",
    "Yonder",
    "Winery",
    "Pharmaceuticals",
    "Coffee",
    "Research",
    "Toys",
    "Traders",
    "Bank",
    "Video",
    "Ski House",
    "Travel",
    "Insurance",
    "Importers",
    "Publishing",
];
const SUFFIX: &[&str] = &["Inc.", "Ltd", "LLC", "GmbH", "S.A.", "plc", "Co.", "Group"];
const CITIES: &[(&str, &str, &str)] = &[
    ("Seattle", "WA", "United States"),
    ("Redmond", "WA", "United States"),
    ("Austin", "TX", "United States"),
    ("Chicago", "IL", "United States"),
    ("London", "England", "United Kingdom"),
    ("Dublin", "Leinster", "Ireland"),
    ("Munich", "Bavaria", "Germany"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France"),
    ("Osaka", "Osaka", "Japan"),
    ("São Paulo", "SP", "Brazil"),
    ("Toronto", "ON", "Canada"),
    ("Sydney", "NSW", "Australia"),
];
const JOBS: &[&str] =
    &["Purchasing Manager", "CEO", "IT Director", "Buyer", "Sales Lead", "CFO", "Engineer", "Analyst"];

/// Fixed ids of the singleton rows.
pub const USD_ID: &str = "228f42f8-e646-4111-8eb7-78e7d162ced1";
/// The default (business unit) team.
pub const DEFAULT_TEAM_ID: &str = "7d2e6f10-1c2b-4a3d-9e8f-0a1b2c3d4e50";
/// The sales team.
pub const SALES_TEAM_ID: &str = "7d2e6f10-1c2b-4a3d-9e8f-0a1b2c3d4e51";

/// Seconds of 2021-01-01T00:00:00Z: seeded `createdon` values spread over five years from it.
const EPOCH: i64 = 1_609_459_200;
/// Seconds seeded `createdon` values spread over: five years.
const SEED_SPAN: i64 = 86_400 * 365 * 5;

fn dt(secs: i64) -> Sql {
    Sql::Text(super::codec::format_datetime(time::OffsetDateTime::from_unix_timestamp(secs).expect("valid seed time")))
}

/// The systemuserid of an app's application user.
pub fn application_user_id(client_id: Uuid) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("d365-emulator:appuser:{client_id}").as_bytes())
}

/// The Entra object id of an app's service principal.
pub fn service_principal_id(client_id: Uuid) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("d365-emulator:sp:{client_id}").as_bytes())
}

struct Ctx {
    owners: Vec<(String, &'static str)>,
    creator: String,
    bu: String,
    counts: std::collections::HashMap<&'static str, u64>,
    version: i64,
}

struct Inserter<'a> {
    stmt: rusqlite::Statement<'a>,
    /// Column name → parameter position.
    index: std::collections::HashMap<String, usize>,
    row: Vec<Sql>,
}

impl<'a> Inserter<'a> {
    fn new(c: &'a Connection, table: &'a Table) -> rusqlite::Result<Self> {
        let mut cols = Vec::new();
        for col in &table.columns {
            cols.push(col.logical_name.clone());
            if col.kind.is_lookup() && col.is_polymorphic() {
                cols.push(format!("{}_type", col.logical_name));
            }
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            q(&table.logical_name),
            cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", "),
            vec!["?"; cols.len()].join(", ")
        );
        let index = cols.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Ok(Self { stmt: c.prepare(&sql)?, index, row: vec![Sql::Null; cols.len()] })
    }

    /// Inserts a row given as (column, value) pairs; unnamed columns are NULL.
    fn insert(&mut self, values: &[(&str, Sql)]) -> rusqlite::Result<()> {
        self.row.iter_mut().for_each(|v| *v = Sql::Null);
        for (name, v) in values {
            if let Some(&i) = self.index.get(*name) {
                self.row[i] = v.clone();
            }
        }
        self.stmt.execute(params_from_iter(self.row.iter()))?;
        Ok(())
    }
}

pub(super) fn seed(c: &Connection, schema: &Schema, config: &Config, rows: usize) -> rusqlite::Result<()> {
    c.execute_batch("BEGIN")?;
    let r = seed_in_tx(c, schema, config, rows as u64);
    match r {
        Ok(()) => c.execute_batch("COMMIT"),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn seed_in_tx(c: &Connection, schema: &Schema, config: &Config, n: u64) -> rusqlite::Result<()> {
    let t = |name: &str| schema.table(name).expect("built-in table");
    let bu = config.dataverse.business_unit_id.to_string();
    let org = config.dataverse.organization_id.to_string();
    let mut ctx =
        Ctx { owners: vec![], creator: String::new(), bu: bu.clone(), counts: Default::default(), version: 0 };
    let created = dt(EPOCH - 86_400 * 30);

    let mut v = || {
        ctx.version += 1;
        Sql::Integer(ctx.version)
    };
    Inserter::new(c, t("businessunit"))?.insert(&[
        ("businessunitid", Sql::Text(bu.clone())),
        ("name", Sql::Text("contoso".into())),
        ("isdisabled", Sql::Integer(0)),
        ("createdon", created.clone()),
        ("modifiedon", created.clone()),
        ("versionnumber", v()),
    ])?;
    Inserter::new(c, t("transactioncurrency"))?.insert(&[
        ("transactioncurrencyid", Sql::Text(USD_ID.into())),
        ("currencyname", Sql::Text("US Dollar".into())),
        ("isocurrencycode", Sql::Text("USD".into())),
        ("currencysymbol", Sql::Text("$".into())),
        ("exchangerate", Sql::Integer(10_000_000_000)),
        ("currencyprecision", Sql::Integer(2)),
        ("createdon", created.clone()),
        ("modifiedon", created.clone()),
        ("versionnumber", v()),
    ])?;
    Inserter::new(c, t("organization"))?.insert(&[
        ("organizationid", Sql::Text(org)),
        ("name", Sql::Text("contoso".into())),
        ("basecurrencyid", Sql::Text(USD_ID.into())),
        ("expirechangetrackingindays", Sql::Integer(config.dataverse.expire_change_tracking_days as i64)),
        ("createdon", created.clone()),
        ("modifiedon", created.clone()),
        ("versionnumber", v()),
    ])?;
    let mut users = Inserter::new(c, t("systemuser"))?;
    let mut user_ids = Vec::new();
    for u in &config.users {
        let (first, last) = u.display_name.split_once(' ').unwrap_or(("", &u.display_name));
        let id = u.systemuser_id.to_string();
        users.insert(&[
            ("systemuserid", Sql::Text(id.clone())),
            ("firstname", Sql::Text(first.into())),
            ("lastname", Sql::Text(last.into())),
            ("fullname", Sql::Text(u.display_name.clone())),
            ("domainname", Sql::Text(u.username.clone())),
            ("internalemailaddress", Sql::Text(u.username.clone())),
            ("azureactivedirectoryobjectid", Sql::Text(u.object_id.to_string())),
            ("businessunitid", Sql::Text(bu.clone())),
            ("isdisabled", Sql::Integer(0)),
            ("accessmode", Sql::Integer(0)),
            ("createdon", created.clone()),
            ("modifiedon", created.clone()),
            ("versionnumber", v()),
        ])?;
        user_ids.push(id);
    }
    for app in config.apps.iter().filter(|a| !a.application_user_roles.is_empty()) {
        let name = format!("# {}", app.name);
        users.insert(&[
            ("systemuserid", Sql::Text(application_user_id(app.client_id).to_string())),
            ("firstname", Sql::Text("#".into())),
            ("lastname", Sql::Text(app.name.clone())),
            ("fullname", Sql::Text(name)),
            ("domainname", Sql::Text(format!("{}@{}", app.client_id, config.tenant.domain))),
            ("azureactivedirectoryobjectid", Sql::Text(service_principal_id(app.client_id).to_string())),
            ("applicationid", Sql::Text(app.client_id.to_string())),
            ("businessunitid", Sql::Text(bu.clone())),
            ("isdisabled", Sql::Integer(0)),
            ("accessmode", Sql::Integer(4)),
            ("createdon", created.clone()),
            ("modifiedon", created.clone()),
            ("versionnumber", v()),
        ])?;
    }
    drop(users);
    let mut teams = Inserter::new(c, t("team"))?;
    for (id, name, default) in [(DEFAULT_TEAM_ID, "contoso", 1), (SALES_TEAM_ID, "Sales Team", 0)] {
        teams.insert(&[
            ("teamid", Sql::Text(id.into())),
            ("name", Sql::Text(name.into())),
            ("businessunitid", Sql::Text(bu.clone())),
            ("teamtype", Sql::Integer(0)),
            ("isdefault", Sql::Integer(default)),
            ("createdon", created.clone()),
            ("modifiedon", created.clone()),
            ("versionnumber", v()),
        ])?;
    }
    drop(teams);

    ctx.creator = user_ids.first().cloned().unwrap_or_else(|| Uuid::nil().to_string());
    ctx.owners = user_ids.iter().map(|u| (u.clone(), "systemuser")).collect();
    ctx.owners.push((SALES_TEAM_ID.to_string(), "team"));
    let plan: [(&'static str, u64); 5] =
        [("account", n), ("contact", n / 2), ("opportunity", n / 4), ("lead", n / 4), ("new_widget", n.div_ceil(10))];
    for (name, count) in plan {
        ctx.counts.insert(name, count);
    }
    for (name, count) in plan {
        let table = t(name);
        let mut ins = Inserter::new(c, table)?;
        // Rows are generated on a second thread while this one inserts (SQLite writes are
        // single-threaded); batches keep the channel cheap.
        const BATCH: u64 = 512;
        let result = std::thread::scope(|scope| -> rusqlite::Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<(&str, Sql)>>>(8);
            let ctx_ref = &mut ctx;
            let producer = scope.spawn(move || {
                let mut i = 0;
                while i < count {
                    let end = (i + BATCH).min(count);
                    let batch: Vec<Vec<(&str, Sql)>> = (i..end)
                        .map(|k| {
                            let mut row = Vec::with_capacity(table.columns.len() + 4);
                            generate(table, k, ctx_ref, &mut row);
                            row
                        })
                        .collect();
                    if tx.send(batch).is_err() {
                        return;
                    }
                    i = end;
                }
            });
            let mut outcome = Ok(());
            for batch in rx {
                if outcome.is_ok() {
                    for row in &batch {
                        if let Err(e) = ins.insert(row) {
                            outcome = Err(e);
                            break;
                        }
                    }
                }
            }
            let _ = producer.join();
            outcome
        });
        result?;
    }
    let org = config.dataverse.organization_id.to_string();
    platform_rows(c, schema, &org, &mut ctx.version)
}

/// Writes the rows of the platform tables: one `sdkmessage` per message of the catalogue and
/// one `sdkmessagefilter` per (message, table) pair the emulator serves (one `none` filter per
/// unbound message). Row versions continue from `version`.
fn platform_rows(c: &Connection, schema: &Schema, org: &str, version: &mut i64) -> rusqlite::Result<()> {
    let (Some(message_table), Some(filter_table)) = (schema.table("sdkmessage"), schema.table("sdkmessagefilter"))
    else {
        return Ok(());
    };
    let created = dt(EPOCH - 86_400 * 30);
    let mut next = || {
        *version += 1;
        Sql::Integer(*version)
    };
    let flag = |b: bool| Sql::Integer(i64::from(b));
    let text = |s: &str| Sql::Text(s.to_string());
    let mut rows = Inserter::new(c, message_table)?;
    for m in MESSAGES {
        rows.insert(&[
            ("sdkmessageid", Sql::Text(messages::message_id(m.name).to_string())),
            ("name", text(m.name)),
            ("categoryname", text(m.name)),
            ("availability", Sql::Integer(0)),
            ("autotransact", flag(!m.read_only)),
            ("expand", flag(false)),
            ("isactive", flag(true)),
            ("isprivate", flag(false)),
            ("isreadonly", flag(m.read_only)),
            ("template", flag(false)),
            ("isvalidforexecuteasync", flag(false)),
            ("workflowsdkstepenabled", flag(false)),
            ("organizationid", text(org)),
            ("createdon", created.clone()),
            ("modifiedon", created.clone()),
            ("versionnumber", next()),
        ])?;
    }
    drop(rows);
    let mut rows = Inserter::new(c, filter_table)?;
    for m in MESSAGES {
        let targets: Vec<&str> = if m.bound {
            schema.tables.iter().filter(|t| supports_message(t, m.name)).map(|t| t.logical_name.as_str()).collect()
        } else {
            vec![UNBOUND]
        };
        for target in targets {
            rows.insert(&[
                ("sdkmessagefilterid", Sql::Text(messages::filter_id(m.name, target).to_string())),
                ("sdkmessageid", Sql::Text(messages::message_id(m.name).to_string())),
                ("primaryobjecttypecode", text(target)),
                ("secondaryobjecttypecode", text(UNBOUND)),
                ("availability", Sql::Integer(0)),
                ("iscustomprocessingstepallowed", flag(m.bound && !is_read_only_table(target))),
                ("isvisible", flag(true)),
                ("restrictionlevel", Sql::Integer(0)),
                ("workflowsdkstepenabled", flag(false)),
                ("organizationid", text(org)),
                ("createdon", created.clone()),
                ("modifiedon", created.clone()),
                ("versionnumber", next()),
            ])?;
        }
    }
    Ok(())
}

/// Adds the platform tables to a database seeded by a build that did not have them (a
/// `--data` file kept across upgrades): creates them with their indexes and writes their
/// rows, with versions after the newest one in the file. Does nothing when they exist.
pub(super) fn add_platform_tables(c: &Connection, schema: &Schema, config: &Config) -> rusqlite::Result<()> {
    let present: i64 =
        c.query_row("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='sdkmessage'", [], |r| r.get(0))?;
    if present > 0 {
        return Ok(());
    }
    super::ddl::create(c, schema)?;
    let mut version = super::ddl::max_version(c, schema)?;
    let org = config.dataverse.organization_id.to_string();
    c.execute_batch("BEGIN")?;
    match platform_rows(c, schema, &org, &mut version) {
        Ok(()) => c.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    super::ddl::create_indexes(c, schema)
}

/// The `createdon` (Unix seconds) of seeded row `i` of a table of `rows` rows. Rows are created
/// in seeding order, as records are in an organisation: `createdon` grows with the row (and
/// with its sequential id), so a `createdon` range is a run of neighbouring rows, as a range of
/// the clustered key is in Dataverse's own SQL. Steps of 7919 s (about two hours) while five
/// years hold the table, closer steps for larger tables.
fn created_at(i: u64, rows: u64) -> i64 {
    let step = (SEED_SPAN / rows.max(1) as i64).clamp(1, 7919);
    EPOCH + (i as i64 * step) % SEED_SPAN
}

/// Fills `row` with the values of seeded row `i` of `table`.
fn generate<'t>(table: &'t Table, i: u64, ctx: &mut Ctx, row: &mut Vec<(&'t str, Sql)>) {
    let mut rng = Rng(i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ table.object_type_code as u64);
    let name = table.logical_name.as_str();
    let count = |t: &str| ctx.counts.get(t).copied().unwrap_or(0);
    let ref_id = |t: &str, rng: &mut Rng, schema_otc: i32| -> Option<String> {
        let n = ctx.counts.get(t).copied().unwrap_or(0);
        (n > 0).then(|| seeded_id(schema_otc, rng.below(n)))
    };
    let created = created_at(i, count(name));
    let modified = created + rng.below(86_400 * 90) as i64;
    ctx.version += 1;
    let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
    let (city, st, country) = CITIES[rng.below(CITIES.len() as u64) as usize];
    let company = format!("{} {} {}", rng.pick(WORD1), rng.pick(WORD2), rng.pick(SUFFIX));
    for col in &table.columns {
        let cn = col.logical_name.as_str();
        let value: Sql = match (name, cn) {
            (_, _) if col.is_primary_id => Sql::Text(seeded_id(table.object_type_code, i)),
            (_, "versionnumber") => Sql::Integer(ctx.version),
            (_, "createdon") => dt(created),
            (_, "modifiedon") => dt(modified),
            (_, "createdby" | "modifiedby") => Sql::Text(ctx.creator.clone()),
            (_, "createdonbehalfby" | "modifiedonbehalfby" | "overriddencreatedon" | "importsequencenumber") => {
                Sql::Null
            }
            (_, "timezoneruleversionnumber") => Sql::Integer(4),
            (_, "utcconversiontimezonecode") => Sql::Null,
            (_, "owningbusinessunit") => Sql::Text(ctx.bu.clone()),
            (_, "ownerid" | "owninguser" | "owningteam") => {
                let (id, kind) = &ctx.owners[(i % ctx.owners.len() as u64) as usize];
                match cn {
                    "ownerid" => {
                        row.push(("ownerid_type", Sql::Text(kind.to_string())));
                        Sql::Text(id.clone())
                    }
                    "owninguser" if *kind == "systemuser" => Sql::Text(id.clone()),
                    "owningteam" if *kind == "team" => Sql::Text(id.clone()),
                    _ => Sql::Null,
                }
            }
            (_, "transactioncurrencyid") => Sql::Text(USD_ID.into()),
            (_, "exchangerate") => Sql::Integer(10_000_000_000),
            (_, "statecode") => Sql::Integer(if rng.chance(80) { 0 } else { 1 }),
            (_, "statuscode") => {
                let state = match row.iter().find(|(n, _)| *n == "statecode") {
                    Some((_, Sql::Integer(s))) => *s as i32,
                    _ => 0,
                };
                let opts: Vec<i32> = col.options.iter().filter(|o| o.state == Some(state)).map(|o| o.value).collect();
                Sql::Integer(opts.get(rng.below(opts.len() as u64) as usize).copied().unwrap_or(1) as i64)
            }
            (_, c) if c.ends_with("_base") => {
                let src = c.trim_end_matches("_base");
                row.iter().find(|(n, _)| *n == src).map(|(_, v)| v.clone()).unwrap_or(Sql::Null)
            }
            ("account" | "new_widget", "name" | "new_name") => Sql::Text(if name == "account" {
                format!("{company} #{i}")
            } else {
                format!("{} {} W-{i}", rng.pick(WORD1), rng.pick(&["Gadget", "Gizmo", "Sprocket", "Widget"]))
            }),
            ("account", "accountnumber") => Sql::Text(format!("ACC-{i:07}")),
            ("account", "parentaccountid") if i > 0 && rng.chance(10) => Sql::Text(seeded_id(1, rng.below(i))),
            ("account", "primarycontactid") if i < count("contact") => Sql::Text(seeded_id(2, i)),
            ("account", "revenue") => Sql::Integer(rng.below(5_000_000_000) as i64 * 100),
            ("account", "numberofemployees") => Sql::Integer(1 + rng.below(50_000) as i64),
            ("account", "address1_latitude") => Sql::Real((rng.below(180_000_000) as f64 / 1_000_000.0) - 90.0),
            ("contact" | "lead", "firstname") => Sql::Text(first.into()),
            ("contact" | "lead", "lastname") => Sql::Text(last.into()),
            ("contact" | "lead", "fullname") => Sql::Text(format!("{first} {last}")),
            ("contact", "emailaddress1") => Sql::Text(format!("{}.{}{i}@example.com", ascii(first), ascii(last))),
            ("contact", "parentcustomerid") => {
                if i > 0 && rng.chance(10) {
                    row.push(("parentcustomerid_type", Sql::Text("contact".into())));
                    Sql::Text(seeded_id(2, rng.below(i)))
                } else if let Some(a) = ref_id("account", &mut rng, 1) {
                    row.push(("parentcustomerid_type", Sql::Text("account".into())));
                    Sql::Text(a)
                } else {
                    Sql::Null
                }
            }
            ("contact", "jobtitle") => Sql::Text(rng.pick(JOBS).into()),
            ("contact", "birthdate") => {
                Sql::Text(format!("{}-{:02}-{:02}", 1950 + rng.below(55), 1 + rng.below(12), 1 + rng.below(28)))
            }
            ("contact", "annualincome") => Sql::Integer(rng.below(30_000_000) as i64 * 100),
            ("lead", "subject") => Sql::Text(format!("Interested in {} ({i})", rng.pick(WORD2))),
            ("lead", "companyname") => Sql::Text(company.clone()),
            ("lead", "emailaddress1") => Sql::Text(format!("{}@{}.example", ascii(first), ascii(last))),
            ("lead", "parentaccountid") => ref_id("account", &mut rng, 1).map(Sql::Text).unwrap_or(Sql::Null),
            ("opportunity", "name") => Sql::Text(format!("{} units of {} ({i})", 1 + rng.below(500), rng.pick(WORD2))),
            ("opportunity", "customerid") => {
                if rng.chance(20) && count("contact") > 0 {
                    row.push(("customerid_type", Sql::Text("contact".into())));
                    Sql::Text(seeded_id(2, rng.below(count("contact"))))
                } else if let Some(a) = ref_id("account", &mut rng, 1) {
                    row.push(("customerid_type", Sql::Text("account".into())));
                    Sql::Text(a)
                } else {
                    Sql::Null
                }
            }
            ("opportunity", "parentaccountid") => ref_id("account", &mut rng, 1).map(Sql::Text).unwrap_or(Sql::Null),
            ("opportunity", "originatingleadid") if rng.chance(30) => {
                ref_id("lead", &mut rng, 4).map(Sql::Text).unwrap_or(Sql::Null)
            }
            ("opportunity", "estimatedvalue") => Sql::Integer(rng.below(100_000_000) as i64 * 100),
            ("opportunity", "closeprobability") => Sql::Integer(rng.below(101) as i64),
            ("new_widget", "new_accountid" | "new_customerid") => match ref_id("account", &mut rng, 1) {
                Some(a) => {
                    if cn == "new_customerid" {
                        row.push(("new_customerid_type", Sql::Text("account".into())));
                    }
                    Sql::Text(a)
                }
                None => Sql::Null,
            },
            (_, "address1_city") => Sql::Text(city.into()),
            (_, "address1_stateorprovince") => Sql::Text(st.into()),
            (_, "address1_country") => Sql::Text(country.into()),
            _ => generic(col, &mut rng, i),
        };
        row.push((cn, value));
    }
}

fn ascii(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase()
}

/// A plausible value of any type for columns without a specific rule; optional columns are
/// null about one time in eight.
fn generic(col: &Column, rng: &mut Rng, i: u64) -> Sql {
    if col.required == RequiredLevel::None && rng.chance(12) {
        return Sql::Null;
    }
    if col.kind.is_lookup() {
        return Sql::Null;
    }
    match col.kind {
        AttrKind::String => Sql::Text(format!("{} {}", col.display_name, rng.below(10_000))),
        AttrKind::Memo => Sql::Text(format!("Notes for record {i}.\nLine two with \"quotes\" and a tab\tcharacter.")),
        AttrKind::Integer => Sql::Integer(rng.below(10_000) as i64 - 100),
        AttrKind::BigInt => Sql::Integer((rng.next() >> 12) as i64),
        AttrKind::Decimal => {
            let scale = super::codec::storage_scale(col).unwrap_or(2);
            Sql::Integer(rng.below(10_000_000) as i64 * 10i64.pow(scale.saturating_sub(2)))
        }
        AttrKind::Money => Sql::Integer(rng.below(100_000_000) as i64 * 100),
        AttrKind::Double => Sql::Real((rng.below(2_000_000) as f64 - 1_000_000.0) / 1024.0),
        AttrKind::Boolean => Sql::Integer(rng.chance(50) as i64),
        AttrKind::DateTime => dt(EPOCH + rng.below(SEED_SPAN as u64) as i64),
        AttrKind::DateOnly => {
            Sql::Text(format!("{}-{:02}-{:02}", 2021 + rng.below(5), 1 + rng.below(12), 1 + rng.below(28)))
        }
        AttrKind::Uniqueidentifier => Sql::Text(Uuid::from_u64_pair(rng.next(), rng.next()).to_string()),
        AttrKind::Picklist => Sql::Integer(
            col.options.get(rng.below(col.options.len() as u64) as usize).map(|o| o.value).unwrap_or(0) as i64,
        ),
        AttrKind::MultiSelectPicklist => {
            let picked: Vec<String> =
                col.options.iter().filter(|_| rng.chance(35)).map(|o| o.value.to_string()).collect();
            if picked.is_empty() { Sql::Null } else { Sql::Text(picked.join(",")) }
        }
        _ => Sql::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn createdon_grows_with_the_row_within_five_years() {
        // Small tables: two-hour steps from 2021-01-01.
        assert_eq!(created_at(0, 100), EPOCH);
        assert_eq!(created_at(1, 100), EPOCH + 7919);
        assert_eq!(created_at(19_910, 19_911), EPOCH + 19_910 * 7919);
        // A million rows: closer steps, still in order and inside the five years.
        let n = 1_000_000;
        let all: Vec<i64> = (0..n).step_by(997).chain([n - 1]).map(|i| created_at(i, n)).collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "createdon grows with the row");
        assert!(*all.last().unwrap() < EPOCH + SEED_SPAN);
        assert!(*all.last().unwrap() > EPOCH + SEED_SPAN - 86_400 * 30, "the rows fill the five years");
    }
}
