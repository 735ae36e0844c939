use super::*;
use crate::arrow_schema::{Dialect, table_schema};
use d365_client::{AttributeInfo, EntityInfo, EntityMetadata};
use datafusion::prelude::{col, lit};

/// An attribute of type `ty` (a lookup targets `account`).
pub(crate) fn attr(name: &str, ty: &str) -> AttributeInfo {
    AttributeInfo {
        logical_name: name.into(),
        schema_name: name.into(),
        attribute_type: ty.into(),
        attribute_type_name: format!("{ty}Type"),
        display_name: None,
        is_primary_id: false,
        is_primary_name: false,
        is_custom: false,
        is_valid_for_read: true,
        is_valid_for_create: true,
        is_valid_for_update: true,
        required_level: "None".into(),
        attribute_of: None,
        max_length: None,
        precision: if ty == "Decimal" { Some(2) } else { None },
        precision_source: None,
        min_value: None,
        max_value: None,
        format: None,
        datetime_behavior: None,
        targets: if ty == "Lookup" { vec!["account".into()] } else { vec![] },
        option_set_name: None,
        options: vec![],
    }
}

/// A table `thing` (`things`, key `thingid`) with a column of each kind and a lookup `parentid`.
pub(crate) fn table() -> TableSchema {
    table_with(vec![])
}

/// [`table`] with `extra` columns after its own.
pub(crate) fn table_with(extra: Vec<AttributeInfo>) -> TableSchema {
    let mut meta = EntityMetadata {
        entity: EntityInfo {
            logical_name: "thing".into(),
            schema_name: "Thing".into(),
            entity_set_name: Some("things".into()),
            primary_id_attribute: "thingid".into(),
            primary_name_attribute: Some("name".into()),
            object_type_code: None,
            change_tracking_enabled: false,
            display_name: None,
            display_collection_name: None,
            is_custom: false,
            ownership: "UserOwned".into(),
            is_activity: false,
            is_intersect: false,
            data_entity: false,
        },
        attributes: vec![
            attr("thingid", "Uniqueidentifier"),
            attr("name", "String"),
            attr("qty", "Integer"),
            attr("amount", "Money"),
            attr("weight", "Decimal"),
            attr("ratio", "Double"),
            attr("active", "Boolean"),
            attr("state", "Picklist"),
            attr("parentid", "Lookup"),
        ],
        many_to_one: vec![],
        one_to_many: vec![],
        keys: vec![],
    };
    meta.attributes.extend(extra);
    table_schema(&meta)
}

fn tr(e: Expr) -> Option<(String, bool)> {
    translate(&e, &table()).map(|f| (f.text, f.exact))
}

#[test]
fn schema_has_virtual_columns() {
    let t = table();
    let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names[0], "thingid");
    for n in ["parentid", "parentidname", "parentidtype", "activename", "statename"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(t.column("parentid").unwrap().1.property, "_parentid_value");
}

#[test]
fn numbers_are_exact_and_not_is_pushed_inwards() {
    assert_eq!(tr(col("qty").gt(lit(5))), Some(("qty gt 5".into(), true)));
    assert_eq!(tr(lit(5).gt(col("qty"))), Some(("qty lt 5".into(), true)));
    assert_eq!(tr(!col("qty").gt(lit(5))), Some(("qty le 5".into(), true)));
    assert_eq!(
        tr(!(col("qty").eq(lit(1)).or(col("ratio").lt(lit(2.5))))),
        Some(("(qty ne 1 and ratio ge 2.5)".into(), true))
    );
    assert_eq!(tr(col("qty").is_null()), Some(("qty eq null".into(), true)));
    assert_eq!(tr(!col("qty").is_null()), Some(("qty ne null".into(), true)));
    assert_eq!(tr(col("active")), Some(("active eq true".into(), true)));
    assert_eq!(tr(!col("active")), Some(("active eq false".into(), true)));
    assert_eq!(
        tr(col("state").in_list(vec![lit(1), lit(2)], false)),
        Some(("Microsoft.Dynamics.CRM.In(PropertyName='state',PropertyValues=['1','2'])".into(), true))
    );
    assert_eq!(
        tr(col("state").in_list(vec![lit(1), lit(2)], true)),
        Some(("(state ne 1 and state ne 2)".into(), true))
    );
    assert_eq!(
        tr(col("qty").between(lit(1), lit(9))),
        Some(("Microsoft.Dynamics.CRM.Between(PropertyName='qty',PropertyValues=['1','9'])".into(), true))
    );
}

#[test]
fn decimals_keep_their_scale() {
    let d = |v: i128, s: i8| lit(ScalarValue::Decimal128(Some(v), 38, s));
    assert_eq!(tr(col("amount").gt(d(15, 1))), Some(("amount gt 1.5000".into(), true)));
    assert_eq!(tr(col("weight").eq(d(12345, 3))), None, "finer than the column's scale");
    assert_eq!(tr(col("weight").eq(d(12340, 3))), Some(("weight eq 12.34".into(), true)));
}

#[test]
fn text_is_a_superset_and_never_negated() {
    assert_eq!(tr(col("name").eq(lit("O'Brien"))), Some(("name eq 'O''Brien'".into(), false)));
    assert_eq!(tr(col("name").not_eq(lit("a"))), None);
    assert_eq!(tr(col("name").gt(lit("a"))), None);
    assert_eq!(tr(!col("name").not_eq(lit("a"))), Some(("name eq 'a'".into(), false)));
    assert_eq!(tr(col("name").like(lit("ab%"))), Some(("startswith(name,'ab')".into(), false)));
    assert_eq!(tr(col("name").like(lit("%ab"))), Some(("endswith(name,'ab')".into(), false)));
    assert_eq!(tr(col("name").like(lit("%a'b%"))), Some(("contains(name,'a''b')".into(), false)));
    assert_eq!(tr(col("name").like(lit("a_b%"))), None);
    assert_eq!(tr(col("name").like(lit("a%b%"))), None);
    assert_eq!(tr(col("name").not_like(lit("a%"))), None);
    assert_eq!(tr(col("name").ilike(lit("a%"))), None);
    // AND keeps the pushable half as a superset; OR needs both.
    assert_eq!(tr(col("qty").gt(lit(1)).and(col("name").not_eq(lit("x")))), Some(("qty gt 1".into(), false)));
    assert_eq!(tr(col("qty").gt(lit(1)).or(col("name").not_eq(lit("x")))), None);
    // Virtual columns stay local.
    assert_eq!(tr(col("parentidname").eq(lit("x"))), None);
}

#[test]
fn guids_are_exact_only_in_canonical_form() {
    let g = "0000000a-0001-4abc-8def-0123456789ab";
    assert_eq!(tr(col("parentid").eq(lit(g))), Some((format!("_parentid_value eq {g}"), true)));
    assert_eq!(tr(col("parentid").eq(lit(g.to_uppercase()))), Some((format!("_parentid_value eq {g}"), false)));
    assert_eq!(tr(col("parentid").not_eq(lit(g.to_uppercase()))), None);
    assert_eq!(tr(col("thingid").not_eq(lit(g))), Some((format!("thingid ne {g}"), true)));
    assert_eq!(tr(col("parentid").eq(lit("not a guid"))), None);
    assert_eq!(tr(col("parentid").gt(lit(g))), None);
}

/// A Finance & Operations entity: text key, enum, date, UTC date-time, real.
fn finops_table() -> TableSchema {
    let mut blocked = attr("OnHoldStatus", "Enum");
    blocked.option_set_name = Some("CustVendorBlocked".into());
    blocked.options = ["No", "Invoice", "All"]
        .iter()
        .enumerate()
        .map(|(i, n)| d365_client::OptionInfo {
            value: i as i32,
            label: (*n).into(),
            state: None,
            default_status: None,
        })
        .collect();
    let mut ship = attr("RequestedShippingDate", "DateTime");
    ship.format = Some("DateOnly".into());
    let mut limit = attr("CreditLimit", "Decimal");
    limit.precision = Some(16);
    let mut key = attr("CustomerAccount", "String");
    key.is_primary_id = true;
    let mut meta_table = table();
    meta_table.entity.logical_name = "CustomersV3".into();
    let meta = EntityMetadata {
        entity: EntityInfo {
            logical_name: "CustomersV3".into(),
            schema_name: "CustomerV3".into(),
            entity_set_name: Some("CustomersV3".into()),
            primary_id_attribute: "CustomerAccount".into(),
            data_entity: true,
            ..meta_table.entity
        },
        attributes: vec![key, attr("dataAreaId", "String"), blocked, ship, limit, attr("ModifiedDateTime", "DateTime")],
        many_to_one: vec![],
        one_to_many: vec![],
        keys: vec![],
    };
    table_schema(&meta)
}

fn fo(e: Expr) -> Option<(String, bool)> {
    translate(&e, &finops_table()).map(|f| (f.text, f.exact))
}

#[test]
fn finance_and_operations_filters_use_its_dialect() {
    let t = finops_table();
    assert_eq!(t.dialect, Dialect::FinOps);
    // SQL names are lower-case; the service's names keep their case.
    assert_eq!(t.column("customeraccount").unwrap().1.property, "CustomerAccount");
    // enums: member names, eq/ne only, exact
    assert_eq!(
        fo(col("onholdstatus").eq(lit("All"))),
        Some(("OnHoldStatus eq Microsoft.Dynamics.DataEntities.CustVendorBlocked'All'".into(), true))
    );
    assert_eq!(
        fo(col("onholdstatus").not_eq(lit("No"))),
        Some(("OnHoldStatus ne Microsoft.Dynamics.DataEntities.CustVendorBlocked'No'".into(), true))
    );
    assert_eq!(fo(col("onholdstatus").eq(lit("all"))), None, "not a member: SQL finds nothing, the service refuses it");
    assert_eq!(fo(col("onholdstatus").gt(lit("All"))), None);
    // no `in`: a chain of eq
    assert_eq!(
        fo(col("onholdstatus").in_list(vec![lit("All"), lit("Invoice")], false)),
        Some((
            "(OnHoldStatus eq Microsoft.Dynamics.DataEntities.CustVendorBlocked'All' or OnHoldStatus eq Microsoft.Dynamics.DataEntities.CustVendorBlocked'Invoice')".into(),
            true
        ))
    );
    assert_eq!(
        fo(col("dataareaid").in_list(vec![lit("usmf"), lit("usrt")], false)),
        Some(("(dataAreaId eq 'usmf' or dataAreaId eq 'usrt')".into(), false))
    );
    assert_eq!(fo(col("dataareaid").in_list(vec![lit("usmf")], true)), None);
    // LIKE becomes a wildcard; a literal `*` is never sent (it would be a wildcard)
    assert_eq!(fo(col("customeraccount").like(lit("US-%"))), Some(("CustomerAccount eq 'US-*'".into(), false)));
    assert_eq!(fo(col("customeraccount").like(lit("%01%"))), Some(("CustomerAccount eq '*01*'".into(), false)));
    assert_eq!(fo(col("customeraccount").like(lit("%01"))), Some(("CustomerAccount eq '*01'".into(), false)));
    assert_eq!(fo(col("customeraccount").eq(lit("A*"))), None);
    assert_eq!(fo(col("customeraccount").like(lit("%A*%"))), None);
    // dates are midday UTC; BETWEEN is a range
    let day = lit(ScalarValue::Date32(Some(19_782)));
    assert_eq!(
        fo(col("requestedshippingdate").eq(day.clone())),
        Some(("RequestedShippingDate eq 2024-02-29T12:00:00Z".into(), true))
    );
    let d = |v: i128| lit(ScalarValue::Decimal128(Some(v), 38, 0));
    assert_eq!(
        fo(col("creditlimit").between(d(1000), d(5000))),
        Some(("(CreditLimit ge 1000.0000000000000000 and CreditLimit le 5000.0000000000000000)".into(), true))
    );
}
