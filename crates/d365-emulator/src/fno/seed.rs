//! The deterministic seed of the F&O store, from `rows` = N (the same N always gives the same
//! data):
//!
//! | entity | rows |
//! |---|---|
//! | LegalEntities | 4 (`usmf`, `usrt`, `demf`, `gbsi`) |
//! | CustomerGroups | 5 per company (`10`, `20`, `30`, `40`, `90`) = 20 |
//! | CustomersV3 | N |
//! | VendorsV2 | N/4 |
//! | ReleasedProductsV2 | N/4 |
//! | SalesOrderHeadersV2 | N/2 (only in companies with customers and products; the rest go to usmf) |
//! | SalesOrderLines | 2 per order header |
//! | Workers | N/10 (not company-scoped) |
//!
//! A company-scoped count `n` is split [`split`]: usrt n·2/10, demf n/10, gbsi n/10 (rounded
//! down), usmf the rest (so most rows are in usmf). Account numbers run per company:
//! customers `US-001` (usmf), `RT-001` (usrt), `DE-001` (demf), `GB-001` (gbsi); vendors
//! `US-V001`; items `P00001` in every company; orders `US-SO000001`; lines `US-LOT0000001`;
//! workers `000001`. Timestamps fall in 2024 (fixed, not the start time).

use super::model::{ENTITIES, Entity};
use super::store::FIRST_REC_ID;
use super::values::{default_sql, midday};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params_from_iter};

/// A company (legal entity) of the seed.
#[derive(Debug, Clone, Copy)]
pub struct Company {
    /// `dataAreaId`.
    pub id: &'static str,
    /// Name.
    pub name: &'static str,
    /// Country/region.
    pub country: &'static str,
    /// Prefix of account numbers.
    pub prefix: &'static str,
    /// Currency.
    pub currency: &'static str,
}

/// The four companies, in seed order.
pub const COMPANIES: [Company; 4] = [
    Company { id: "usmf", name: "Contoso Entertainment System USA", country: "USA", prefix: "US", currency: "USD" },
    Company { id: "usrt", name: "Contoso Retail USA", country: "USA", prefix: "RT", currency: "USD" },
    Company { id: "demf", name: "Contoso Entertainment System Germany", country: "DEU", prefix: "DE", currency: "EUR" },
    Company { id: "gbsi", name: "Contoso Europe", country: "GBR", prefix: "GB", currency: "GBP" },
];

/// The customer groups of every company: (id, description, terms of payment, prices include tax).
pub const CUSTOMER_GROUPS: [(&str, &str, &str, i64); 5] = [
    ("10", "Wholesale customers", "Net30", 0),
    ("20", "Major customers", "Net45", 0),
    ("30", "Retail customers", "Net10", 1),
    ("40", "Internet customers", "Net10", 1),
    ("90", "Other customers", "Net30", 0),
];

/// Splits `n` company-scoped rows over [`COMPANIES`]: usrt 20 %, demf 10 %, gbsi 10 % (rounded
/// down), usmf the rest.
pub fn split(n: usize) -> [usize; 4] {
    let (rt, de, gb) = (n * 2 / 10, n / 10, n / 10);
    [n - rt - de - gb, rt, de, gb]
}

/// 2024-01-01T00:00:00Z.
const BASE: i64 = 1_704_067_200;
const DAY: i64 = 86_400;

fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const FIRST: [&str; 12] =
    ["Avery", "Jordan", "Casey", "Riley", "Morgan", "Quinn", "Harper", "Rowan", "Emerson", "Sage", "Parker", "Blake"];
const LAST: [&str; 12] =
    ["Smith", "Garcia", "Chen", "Müller", "Okafor", "Novak", "Silva", "Tanaka", "Kowalski", "Dubois", "Haddad", "Berg"];
const WORDS: [&str; 10] =
    ["Northwind", "Fabrikam", "Adventure", "Litware", "Proseware", "Tailspin", "Wingtip", "Alpine", "Coho", "Lucerne"];
const KINDS: [&str; 6] = ["Traders", "Outfitters", "Supplies", "Electronics", "Foods", "Works"];

struct Inserter<'c> {
    stmt: rusqlite::Statement<'c>,
    entity: &'static Entity,
    rec_id: i64,
}

impl<'c> Inserter<'c> {
    fn new(conn: &'c Connection, entity: &'static Entity, rec_id: i64) -> rusqlite::Result<Self> {
        let cols: Vec<String> = entity.fields.iter().map(|f| format!("\"{}\"", f.name)).collect();
        let marks = vec!["?"; entity.fields.len() + 2].join(", ");
        let sql =
            format!("INSERT INTO \"{}\" ({}, RecId, RecVersion) VALUES ({marks})", entity.table(), cols.join(", "));
        Ok(Self { stmt: conn.prepare(&sql)?, entity, rec_id })
    }

    /// Inserts a row from (property, value) pairs; other properties get their defaults.
    fn row(&mut self, values: &[(&str, Sql)]) -> rusqlite::Result<()> {
        let mut row: Vec<Sql> = self
            .entity
            .fields
            .iter()
            .map(|f| values.iter().find(|(n, _)| *n == f.name).map_or_else(|| default_sql(f), |(_, v)| v.clone()))
            .collect();
        self.rec_id += 1;
        row.push(Sql::Integer(self.rec_id));
        row.push(Sql::Integer(1));
        self.stmt.execute(params_from_iter(row))?;
        Ok(())
    }
}

fn text(s: impl Into<String>) -> Sql {
    Sql::Text(s.into())
}

fn entity(name: &str) -> &'static Entity {
    ENTITIES.iter().find(|e| e.name == name).unwrap_or(&ENTITIES[0])
}

fn price(item: usize) -> f64 {
    (mix(item as u64, 7) % 500) as f64 + 0.99
}

/// Seeds an empty store with `rows` customers and the rows that go with them.
pub fn seed(conn: &Connection, rows: usize) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    let result = seed_all(conn, rows);
    conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    result
}

fn seed_all<'c>(conn: &'c Connection, rows: usize) -> rusqlite::Result<()> {
    // Each entity's RecIds start in their own range, so they stay unique across the store.
    let next = |e: &'static str| -> rusqlite::Result<Inserter<'c>> {
        let slot = ENTITIES.iter().position(|x| x.name == e).unwrap_or(0) as i64;
        Inserter::new(conn, entity(e), FIRST_REC_ID - 1 + slot * 1_000_000_000)
    };
    let mut legal = next("LegalEntity")?;
    for c in COMPANIES {
        legal.row(&[
            ("LegalEntityId", text(c.id)),
            ("Name", text(c.name)),
            ("AddressCountryRegionId", text(c.country)),
        ])?;
    }
    let mut groups = next("CustomerGroup")?;
    for c in COMPANIES {
        for (id, desc, terms, tax) in CUSTOMER_GROUPS {
            groups.row(&[
                ("dataAreaId", text(c.id)),
                ("CustomerGroupId", text(id)),
                ("Description", text(desc)),
                ("PaymentTermId", text(terms)),
                ("IsSalesTaxIncludedInPrice", Sql::Integer(tax)),
            ])?;
        }
    }
    let customers = split(rows);
    let mut cust = next("CustomerV3")?;
    for (ci, c) in COMPANIES.iter().enumerate() {
        for k in 1..=customers[ci] {
            let h = mix(k as u64, ci as u64 + 11);
            let created = BASE + (h % 300) as i64 * DAY + (h % 86_000) as i64;
            let hold = match h % 20 {
                0 => 1,
                1 => 2,
                _ => 0,
            };
            cust.row(&[
                ("dataAreaId", text(c.id)),
                ("CustomerAccount", text(format!("{}-{k:03}", c.prefix))),
                (
                    "OrganizationName",
                    text(format!("{} {} {k}", WORDS[(h % 10) as usize], KINDS[(h / 10 % 6) as usize])),
                ),
                ("CustomerGroupId", text(CUSTOMER_GROUPS[(h / 60 % 5) as usize].0)),
                ("SalesCurrencyCode", text(c.currency)),
                ("CreditLimit", Sql::Real(((h / 300) % 100) as f64 * 1000.0)),
                ("CustomerType", Sql::Integer(i64::from(!h.is_multiple_of(5)))),
                ("OnHoldStatus", Sql::Integer(hold)),
                ("IsSalesTaxIncludedInPrice", Sql::Integer(i64::from((h / 7).is_multiple_of(3)))),
                ("AddressCountryRegionId", text(c.country)),
                ("CreatedDateTime", Sql::Integer(created)),
                ("ModifiedDateTime", Sql::Integer(created + (h / 11 % 60) as i64 * DAY)),
            ])?;
        }
    }
    let mut vend = next("VendorV2")?;
    for (ci, c) in COMPANIES.iter().enumerate() {
        for k in 1..=split(rows / 4)[ci] {
            let h = mix(k as u64, ci as u64 + 21);
            vend.row(&[
                ("dataAreaId", text(c.id)),
                ("VendorAccountNumber", text(format!("{}-V{k:03}", c.prefix))),
                (
                    "VendorOrganizationName",
                    text(format!("{} {} Vendor {k}", WORDS[(h % 10) as usize], KINDS[(h / 10 % 6) as usize])),
                ),
                ("VendorGroupId", text(["10", "20", "30"][(h / 60 % 3) as usize])),
                ("CurrencyCode", text(c.currency)),
                ("OnHoldStatus", Sql::Integer(if h.is_multiple_of(25) { 2 } else { 0 })),
                ("ModifiedDateTime", Sql::Integer(BASE + (h % 330) as i64 * DAY + (h % 80_000) as i64)),
            ])?;
        }
    }
    let products = split(rows / 4);
    let mut prod = next("ReleasedProductV2")?;
    for (ci, c) in COMPANIES.iter().enumerate() {
        for k in 1..=products[ci] {
            let h = mix(k as u64, 31);
            prod.row(&[
                ("dataAreaId", text(c.id)),
                ("ItemNumber", text(format!("P{k:05}"))),
                (
                    "ProductName",
                    text(format!("{} {} item {k}", WORDS[(h % 10) as usize], KINDS[(h / 10 % 6) as usize])),
                ),
                ("ProductType", Sql::Integer(if h.is_multiple_of(5) { 2 } else { 1 })),
                ("SalesPrice", Sql::Real(price(k))),
                ("ItemModelGroupId", text(if h.is_multiple_of(2) { "FIFO" } else { "STD" })),
            ])?;
        }
    }
    let mut orders = split(rows / 2);
    for ci in 1..4 {
        if customers[ci] == 0 || products[ci] == 0 {
            orders[0] += orders[ci];
            orders[ci] = 0;
        }
    }
    if customers[0] == 0 || products[0] == 0 {
        orders[0] = 0;
    }
    let mut head = next("SalesOrderHeaderV2")?;
    let mut line = next("SalesOrderLine")?;
    for (ci, c) in COMPANIES.iter().enumerate() {
        let mut lot = 0;
        for k in 1..=orders[ci] {
            let h = mix(k as u64, ci as u64 + 41);
            let status = [3, 3, 3, 2, 1, 0, 4][(h % 7) as usize];
            let created = BASE + (h % 330) as i64 * DAY + (h % 80_000) as i64;
            let number = format!("{}-SO{k:06}", c.prefix);
            head.row(&[
                ("dataAreaId", text(c.id)),
                ("SalesOrderNumber", text(number.clone())),
                ("OrderingCustomerAccountNumber", text(format!("{}-{:03}", c.prefix, 1 + h as usize % customers[ci]))),
                ("SalesOrderStatus", Sql::Integer(status)),
                ("CurrencyCode", text(c.currency)),
                ("RequestedShippingDate", Sql::Integer(midday_of(created + (h / 9 % 30) as i64 * DAY))),
                ("OrderCreationDateTime", Sql::Integer(created)),
                ("ModifiedDateTime", Sql::Integer(created + (h / 13 % 20) as i64 * DAY)),
            ])?;
            for n in 1..=2u64 {
                lot += 1;
                let hl = mix(lot as u64, ci as u64 + 51);
                let item = 1 + hl as usize % products[ci];
                let qty = (hl / 7 % 10 + 1) as f64;
                line.row(&[
                    ("dataAreaId", text(c.id)),
                    ("InventoryLotId", text(format!("{}-LOT{lot:07}", c.prefix))),
                    ("SalesOrderNumber", text(number.clone())),
                    ("LineNumber", Sql::Real(n as f64)),
                    ("ItemNumber", text(format!("P{item:05}"))),
                    ("OrderedSalesQuantity", Sql::Real(qty)),
                    ("SalesPrice", Sql::Real(price(item))),
                    ("LineAmount", Sql::Real((qty * price(item) * 100.0).round() / 100.0)),
                    ("SalesOrderLineStatus", Sql::Integer(status)),
                ])?;
            }
        }
    }
    let mut workers = next("Worker")?;
    for k in 1..=rows / 10 {
        let h = mix(k as u64, 61);
        let (first, last) = (FIRST[(h % 12) as usize], LAST[(h / 12 % 12) as usize]);
        workers.row(&[
            ("PersonnelNumber", text(format!("{k:06}"))),
            ("Name", text(format!("{first} {last}"))),
            ("FirstName", text(first)),
            ("LastName", text(last)),
            ("BirthDate", Sql::Integer(midday_of(-315_619_200 + (h % 14_600) as i64 * DAY))),
            ("Gender", Sql::Integer((h / 144 % 4) as i64)),
            ("WorkerType", Sql::Integer(i64::from(h.is_multiple_of(6)))),
            ("ModifiedDateTime", Sql::Integer(BASE + (h % 330) as i64 * DAY + (h % 80_000) as i64)),
        ])?;
    }
    Ok(())
}

fn midday_of(secs: i64) -> i64 {
    time::OffsetDateTime::from_unix_timestamp(secs).map_or(super::values::EMPTY_DATE, midday)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_documented_split() {
        assert_eq!(split(50), [30, 10, 5, 5]);
        assert_eq!(split(3), [3, 0, 0, 0]);
        let store = super::super::store::FnoStore::open(None, 60).unwrap();
        let count = |t: &str| -> i64 {
            store
                .with_conn(|c| c.query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0)))
                .unwrap()
                .unwrap()
        };
        assert_eq!(count("CustomerV3"), 60);
        assert_eq!(count("SalesOrderHeaderV2"), 30);
        assert_eq!(count("SalesOrderLine"), 60);
        assert_eq!(count("VendorV2"), 15);
        assert_eq!(count("Worker"), 6);
        assert_eq!(count("CustomerGroup"), 20);
        let usmf: i64 = store
            .with_conn(|c| c.query_row("SELECT count(*) FROM CustomerV3 WHERE dataAreaId = 'USMF'", [], |r| r.get(0)))
            .unwrap()
            .unwrap();
        assert_eq!(usmf, 36, "keys compare case-insensitively");
        // Every order's customer and every line's item exist in the order's company.
        let orphans: i64 = store
            .with_conn(|c| {
                c.query_row(
                    "SELECT count(*) FROM SalesOrderHeaderV2 h WHERE NOT EXISTS (SELECT 1 FROM CustomerV3 c \
                     WHERE c.dataAreaId = h.dataAreaId AND c.CustomerAccount = h.OrderingCustomerAccountNumber) \
                     OR 0 < (SELECT count(*) FROM SalesOrderLine l WHERE l.dataAreaId = h.dataAreaId AND \
                     l.SalesOrderNumber = h.SalesOrderNumber AND NOT EXISTS (SELECT 1 FROM ReleasedProductV2 p \
                     WHERE p.dataAreaId = l.dataAreaId AND p.ItemNumber = l.ItemNumber))",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap()
            .unwrap();
        assert_eq!(orphans, 0);
    }
}
