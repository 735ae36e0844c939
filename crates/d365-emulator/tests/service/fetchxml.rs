//! FetchXML over HTTPS (`GET <set>?fetchXml=…`). Results are checked differentially: the rows
//! a FetchXML query returns must be exactly those a Rust predicate selects from the whole
//! table read through OData.

use crate::common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};

const ALL: &str = "odata.include-annotations=\"*\"";

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn fetch(env: &Env, token: &str, set: &str, xml: &str, prefer: Option<&str>) -> (StatusCode, Value) {
    let mut r = env.http.get(env.url(&format!("{set}?fetchXml={}", enc(xml)))).bearer_auth(token);
    if let Some(p) = prefer {
        r = r.header("Prefer", p);
    }
    let r = r.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap())
}

async fn ok(env: &Env, token: &str, set: &str, xml: &str) -> Vec<Value> {
    let (s, body) = fetch(env, token, set, xml, None).await;
    assert_eq!(s, StatusCode::OK, "{xml}: {body}");
    body["value"].as_array().unwrap().clone()
}

/// Every row of `set` through OData with the given `$select`.
async fn all_rows(env: &Env, token: &str, set: &str, select: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = env.url(&format!("{set}?$select={select}"));
    loop {
        let r = env.http.get(&url).bearer_auth(token).header("Prefer", "odata.maxpagesize=5000").send().await.unwrap();
        let body = json_of(r).await;
        out.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => return out,
        }
    }
}

fn ids(rows: &[Value], key: &str) -> BTreeSet<String> {
    rows.iter().map(|r| r[key].as_str().unwrap().to_string()).collect()
}

fn ids_where(rows: &[Value], key: &str, pred: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    rows.iter().filter(|r| pred(r)).map(|r| r[key].as_str().unwrap().to_string()).collect()
}

fn account_filter(filter: &str) -> String {
    format!("<fetch><entity name='account'><attribute name='accountid'/>{filter}</entity></fetch>")
}

fn s<'a>(r: &'a Value, k: &str) -> Option<&'a str> {
    r[k].as_str()
}

fn n(r: &Value, k: &str) -> Option<f64> {
    r[k].as_f64()
}

type Pred<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

#[tokio::test]
async fn conditions_select_exactly_the_rows_a_predicate_selects() {
    let env = start(300).await;
    let t = env.admin_app();
    let r = env.http.post(env.url("accounts")).bearer_auth(&t).json(&json!({"name": "No City"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let rows = all_rows(
        &env,
        &t,
        "accounts",
        "accountid,name,revenue,numberofemployees,statecode,address1_city,_ownerid_value,_owningbusinessunit_value,industrycode",
    )
    .await;
    let me = json_of(env.get(&t, "WhoAmI").await).await;
    let (user, bu) = (me["UserId"].as_str().unwrap().to_string(), me["BusinessUnitId"].as_str().unwrap().to_string());
    let mut emp: Vec<i64> = rows.iter().filter_map(|r| r["numberofemployees"].as_i64()).collect();
    emp.sort();
    let mid = emp[emp.len() / 2];
    let (e1, e2, e3) = (emp[1], emp[10], emp[20]);
    let first_name = s(&rows[3], "name").unwrap().to_string();
    let tail: String = s(&rows[5], "name")
        .unwrap()
        .to_lowercase()
        .chars()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let tail = tail.as_str();
    let lower = |r: &Value, k: &str| s(r, k).map(|x| x.to_lowercase());
    let some_owner = s(&rows[0], "_ownerid_value").unwrap().to_string();
    let cases: Vec<(String, Pred<'_>)> = vec![
        (format!("<condition attribute='name' operator='eq' value='{}'/>", first_name.to_uppercase()), Box::new(|r| lower(r, "name") == Some(first_name.to_lowercase()))),
        ("<condition attribute='statecode' operator='ne' value='0'/>".into(), Box::new(|r| r["statecode"] != 0)),
        ("<condition attribute='statecode' operator='neq' value='1'/>".into(), Box::new(|r| r["statecode"] != 1)),
        (format!("<condition attribute='numberofemployees' operator='gt' value='{mid}'/>"), Box::new(|r| r["numberofemployees"].as_i64().is_some_and(|v| v > mid))),
        (format!("<condition attribute='numberofemployees' operator='ge' value='{mid}'/>"), Box::new(|r| r["numberofemployees"].as_i64().is_some_and(|v| v >= mid))),
        (format!("<condition attribute='numberofemployees' operator='lt' value='{mid}'/>"), Box::new(|r| r["numberofemployees"].as_i64().is_some_and(|v| v < mid))),
        (format!("<condition attribute='numberofemployees' operator='le' value='{mid}'/>"), Box::new(|r| r["numberofemployees"].as_i64().is_some_and(|v| v <= mid))),
        ("<condition attribute='name' operator='like' value='%a%'/>".into(), Box::new(|r| lower(r, "name").is_some_and(|x| x.contains('a')))),
        ("<condition attribute='name' operator='not-like' value='%a%'/>".into(), Box::new(|r| lower(r, "name").is_some_and(|x| !x.contains('a')))),
        ("<condition attribute='name' operator='begins-with' value='c'/>".into(), Box::new(|r| lower(r, "name").is_some_and(|x| x.starts_with('c')))),
        ("<condition attribute='name' operator='not-begin-with' value='c'/>".into(), Box::new(|r| lower(r, "name").is_some_and(|x| !x.starts_with('c')))),
        (format!("<condition attribute='name' operator='ends-with' value='{tail}'/>"), Box::new(|r| lower(r, "name").is_some_and(|x| x.ends_with(tail)))),
        (format!("<condition attribute='name' operator='not-end-with' value='{tail}'/>"), Box::new(|r| lower(r, "name").is_some_and(|x| !x.ends_with(tail)))),
        (format!("<condition attribute='numberofemployees' operator='in'><value>{e1}</value><value>{e2}</value><value>{e3}</value></condition>"), Box::new(|r| r["numberofemployees"].as_i64().is_some_and(|v| [e1, e2, e3].contains(&v)))),
        (format!("<condition attribute='numberofemployees' operator='not-in'><value>{e1}</value><value>{e2}</value></condition>"), Box::new(|r| r["numberofemployees"].as_i64().is_some_and(|v| ![e1, e2].contains(&v)))),
        ("<condition attribute='revenue' operator='between'><value>1000000.5</value><value>25000000</value></condition>".into(), Box::new(|r| n(r, "revenue").is_some_and(|v| (1_000_000.5..=25_000_000.0).contains(&v)))),
        ("<condition attribute='revenue' operator='not-between'><value>1000000</value><value>25000000</value></condition>".into(), Box::new(|r| n(r, "revenue").is_some_and(|v| !(1_000_000.0..=25_000_000.0).contains(&v)))),
        ("<condition attribute='address1_city' operator='null'/>".into(), Box::new(|r| r["address1_city"].is_null())),
        ("<condition attribute='numberofemployees' operator='not-null'/>".into(), Box::new(|r| !r["numberofemployees"].is_null())),
        ("<condition attribute='ownerid' operator='eq-userid'/>".into(), Box::new(|r| s(r, "_ownerid_value") == Some(user.as_str()))),
        ("<condition attribute='ownerid' operator='ne-userid'/>".into(), Box::new(|r| s(r, "_ownerid_value").is_some_and(|o| o != user))),
        ("<condition attribute='owningbusinessunit' operator='eq-businessid'/>".into(), Box::new(|r| s(r, "_owningbusinessunit_value") == Some(bu.as_str()))),
        ("<condition attribute='owningbusinessunit' operator='ne-businessid'/>".into(), Box::new(|r| s(r, "_owningbusinessunit_value").is_some_and(|o| o != bu))),
        (format!("<condition attribute='ownerid' operator='eq' value='{{{}}}'/>", some_owner.to_uppercase()), Box::new(|r| s(r, "_ownerid_value") == Some(some_owner.as_str()))),
        ("<condition attribute='name' operator='eq' valueof='name'/>".into(), Box::new(|r| !r["name"].is_null())),
        // Nested filters: statecode = 1 or (industry in (1,2) and employees > mid)
        (format!("<filter type='or'><condition attribute='statecode' operator='eq' value='1'/><filter type='and'><condition attribute='industrycode' operator='in'><value>1</value><value>2</value></condition><condition attribute='numberofemployees' operator='gt' value='{mid}'/></filter></filter>"),
            Box::new(|r| r["statecode"] == 1 || ([1, 2].contains(&r["industrycode"].as_i64().unwrap_or(0)) && r["numberofemployees"].as_i64().is_some_and(|v| v > mid)))),
    ];
    for (cond, pred) in &cases {
        let body = if cond.starts_with("<filter") { cond.clone() } else { format!("<filter>{cond}</filter>") };
        let got = ids(&ok(&env, &t, "accounts", &account_filter(&body)).await, "accountid");
        let want = ids_where(&rows, "accountid", pred);
        assert_eq!(got, want, "{cond}");
        assert!(!want.is_empty() || cond.contains("businessid") || cond.contains("userid"), "vacuous case {cond}");
    }
}

#[tokio::test]
async fn date_operators_use_the_emulator_clock() {
    let env = start(20).await;
    let t = env.admin_app();
    let r =
        env.http.post(env.url("contacts")).bearer_auth(&t).json(&json!({"lastname": "Recent"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let total = all_rows(&env, &t, "contacts", "contactid").await.len();
    let today = env.emu.state().clock.now().date().to_string();
    let count = |op: String| {
        let env = &env;
        let t = t.clone();
        async move {
            let xml = format!(
                "<fetch><entity name='contact'><attribute name='contactid'/><filter><condition attribute='createdon' {op}/></filter></entity></fetch>"
            );
            ok(env, &t, "contacts", &xml).await.len()
        }
    };
    for (op, want) in [
        ("operator='today'".to_string(), 1),
        ("operator='last-x-days' value='1'".into(), 1),
        ("operator='last-x-hours' value='1'".into(), 1),
        ("operator='this-year'".into(), 1),
        ("operator='this-month'".into(), 1),
        ("operator='this-week'".into(), 1),
        ("operator='yesterday'".into(), 0),
        ("operator='tomorrow'".into(), 0),
        ("operator='last-seven-days'".into(), 1),
        (format!("operator='on' value='{today}'"), 1),
        (format!("operator='on-or-after' value='{today}'"), 1),
        (format!("operator='on-or-before' value='{today}'"), total),
        ("operator='olderthan-x-days' value='2'".into(), total - 1),
    ] {
        assert_eq!(count(op.clone()).await, want, "{op}");
    }
    env.emu.state().clock.advance(3 * 86_400);
    let t = env.admin_app();
    let xml = |op: &str| {
        format!(
            "<fetch><entity name='contact'><attribute name='contactid'/><filter><condition attribute='createdon' operator='{op}'/></filter></entity></fetch>"
        )
    };
    assert_eq!(ok(&env, &t, "contacts", &xml("today")).await.len(), 0);
    assert_eq!(ok(&env, &t, "contacts", &xml("last-seven-days")).await.len(), 1);
    let (st, e) = fetch(&env, &t, "contacts", &xml("in-fiscal-year' value='2023"), None).await;
    assert_eq!(st, StatusCode::NOT_IMPLEMENTED, "{e}");
}

#[tokio::test]
async fn rows_omit_nulls_and_carry_annotations() {
    let env = start(50).await;
    let t = env.admin_app();
    let xml = "<fetch top='50'><entity name='account'><attribute name='name'/><attribute name='address1_city'/><attribute name='revenue'/><attribute name='ownerid'/><attribute name='industrycode'/><order attribute='name'/></entity></fetch>";
    let (st, body) = fetch(&env, &t, "accounts", xml, Some(ALL)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body["@odata.context"].as_str().unwrap().contains("$metadata#accounts("));
    let rows = body["value"].as_array().unwrap();
    assert_eq!(rows.len(), 50);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|a| a.to_lowercase());
    assert_eq!(names, sorted);
    let mut saw_null = false;
    for r in rows {
        let o = r.as_object().unwrap();
        assert!(o.values().all(|v| !v.is_null()), "{r}");
        assert!(o["@odata.etag"].as_str().unwrap().starts_with("W/\""));
        assert!(
            o.contains_key("accountid") && o.contains_key("_transactioncurrencyid_value") == o.contains_key("revenue")
                || o.contains_key("_transactioncurrencyid_value")
        );
        saw_null |= !o.contains_key("address1_city") || !o.contains_key("revenue") || !o.contains_key("industrycode");
        assert!(o.contains_key("_ownerid_value@OData.Community.Display.V1.FormattedValue"));
        assert!(o.contains_key("_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"));
        if o.contains_key("revenue") {
            assert!(o["revenue@OData.Community.Display.V1.FormattedValue"].as_str().unwrap().starts_with('$'));
        }
        if o.contains_key("industrycode") {
            assert!(o.contains_key("industrycode@OData.Community.Display.V1.FormattedValue"));
        }
    }
    assert!(saw_null, "the seed has null columns; they must be omitted");
    // distinct: no primary key, no etag, no duplicates
    let rows = ok(
        &env,
        &t,
        "accounts",
        "<fetch distinct='true'><entity name='account'><attribute name='statecode'/></entity></fetch>",
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.get("accountid").is_none() && r.get("@odata.etag").is_none()));
}

#[tokio::test]
async fn link_entities_join_filter_and_check_privileges() {
    let env = start(120).await;
    let t = env.admin_app();
    let accounts = all_rows(&env, &t, "accounts", "accountid,name,_ownerid_value").await;
    let contacts = all_rows(&env, &t, "contacts", "contactid,fullname,_parentcustomerid_value").await;
    let users = all_rows(&env, &t, "systemusers", "systemuserid,fullname").await;
    let acc: BTreeMap<&str, &Value> = accounts.iter().map(|a| (a["accountid"].as_str().unwrap(), a)).collect();
    let parent = |c: &Value| c["_parentcustomerid_value"].as_str().and_then(|p| acc.get(p).copied());
    // inner, with an alias and a nested link
    let xml = "<fetch><entity name='contact'><attribute name='contactid'/>\
        <link-entity name='account' from='accountid' to='parentcustomerid' alias='acct' link-type='inner'><attribute name='name'/>\
          <link-entity name='systemuser' from='systemuserid' to='ownerid' alias='own'><attribute name='fullname'/></link-entity>\
        </link-entity></entity></fetch>";
    let rows = ok(&env, &t, "contacts", xml).await;
    assert_eq!(
        ids(&rows, "contactid"),
        ids_where(&contacts, "contactid", |c| parent(c)
            .is_some_and(|a| users.iter().any(|u| u["systemuserid"] == a["_ownerid_value"])))
    );
    assert!(!rows.is_empty());
    for r in &rows {
        let c = contacts.iter().find(|c| c["contactid"] == r["contactid"]).unwrap();
        let a = parent(c).unwrap();
        assert_eq!(r["acct.name"], a["name"]);
        let owner = users.iter().find(|u| u["systemuserid"] == a["_ownerid_value"]).unwrap();
        assert_eq!(r["own.fullname"], owner["fullname"]);
    }
    // outer: every contact; linked columns only where the account exists
    let xml = "<fetch><entity name='contact'><attribute name='contactid'/><link-entity name='account' from='accountid' to='parentcustomerid' link-type='outer'><attribute name='name'/></link-entity></entity></fetch>";
    let rows = ok(&env, &t, "contacts", xml).await;
    assert_eq!(rows.len(), contacts.len());
    for r in &rows {
        let c = contacts.iter().find(|c| c["contactid"] == r["contactid"]).unwrap();
        assert_eq!(
            r.get("account.name"),
            parent(c).map(|a| &a["name"]),
            "default alias of a many-to-one link is the table name"
        );
    }
    // condition inside the link, and a root condition on the outer link's alias (contacts without such account)
    let xml = "<fetch><entity name='contact'><attribute name='contactid'/>\
        <link-entity name='account' from='accountid' to='parentcustomerid' alias='a' link-type='outer'><filter><condition attribute='name' operator='begins-with' value='c'/></filter></link-entity>\
        <filter><condition entityname='a' attribute='accountid' operator='null'/></filter></entity></fetch>";
    let got = ids(&ok(&env, &t, "contacts", xml).await, "contactid");
    let starts_c = |c: &Value| parent(c).is_some_and(|a| a["name"].as_str().unwrap().to_lowercase().starts_with('c'));
    assert_eq!(got, ids_where(&contacts, "contactid", |c| !starts_c(c)));
    // exists / any / not any
    let with_c = ids_where(&contacts, "contactid", starts_c);
    assert!(!with_c.is_empty());
    let xml = "<fetch><entity name='contact'><attribute name='contactid'/><link-entity name='account' from='accountid' to='parentcustomerid' link-type='exists'><filter><condition attribute='name' operator='begins-with' value='c'/></filter></link-entity></entity></fetch>";
    assert_eq!(ids(&ok(&env, &t, "contacts", xml).await, "contactid"), with_c);
    let any = |ty: &str| {
        format!(
            "<fetch><entity name='contact'><attribute name='contactid'/><filter><link-entity name='account' from='accountid' to='parentcustomerid' link-type='{ty}'><filter><condition attribute='name' operator='begins-with' value='c'/></filter></link-entity></filter></entity></fetch>"
        )
    };
    assert_eq!(ids(&ok(&env, &t, "contacts", &any("any")).await, "contactid"), with_c);
    assert_eq!(
        ids(&ok(&env, &t, "contacts", &any("not any")).await, "contactid"),
        ids_where(&contacts, "contactid", |c| !starts_c(c))
    );
    // one-to-many without alias: generated `{table}{N}` alias; one row per contact
    let xml = "<fetch><entity name='account'><attribute name='accountid'/><link-entity name='contact' from='parentcustomerid' to='accountid'><attribute name='fullname'/></link-entity></entity></fetch>";
    let rows = ok(&env, &t, "accounts", xml).await;
    assert_eq!(rows.len(), contacts.iter().filter(|c| parent(c).is_some()).count());
    assert!(
        rows.iter().all(|r| r.get("contact1.fullname").is_some() || contacts.iter().any(|c| c["fullname"].is_null()))
    );
    // A linked table the caller may not read is a 403, as on OData reads.
    let i = env.integration();
    let xml = "<fetch><entity name='contact'><attribute name='contactid'/><link-entity name='new_widget' from='new_customerid' to='contactid' link-type='outer'><attribute name='new_name'/></link-entity></entity></fetch>";
    let (st, e) = fetch(&env, &i, "contacts", xml, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["code"], "0x80040220");
    let (st, _) = fetch(&env, &i, "contacts", &any("any"), None).await;
    assert_eq!(st, StatusCode::OK);
    // 16 link-entities: the documented limit error
    let links = "<link-entity name='account' from='accountid' to='parentcustomerid' link-type='exists'/>".repeat(16);
    let (st, e) =
        fetch(&env, &t, "contacts", &format!("<fetch><entity name='contact'>{links}</entity></fetch>"), None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("0x8004430D")));
}

#[tokio::test]
async fn aggregates_match_the_data() {
    let env = start(300).await;
    let t = env.admin_app();
    let r = env
        .http
        .post(env.url("accounts"))
        .bearer_auth(&t)
        .json(&json!({"name": "No City", "numberofemployees": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let rows =
        all_rows(&env, &t, "accounts", "accountid,numberofemployees,revenue,address1_city,statecode,createdon").await;
    let emp: Vec<i64> = rows.iter().filter_map(|r| r["numberofemployees"].as_i64()).collect();
    let xml = "<fetch aggregate='true'><entity name='account'>\
        <attribute name='numberofemployees' alias='Average' aggregate='avg'/>\
        <attribute name='numberofemployees' alias='Count' aggregate='count'/>\
        <attribute name='numberofemployees' alias='ColumnCount' aggregate='countcolumn'/>\
        <attribute name='numberofemployees' alias='Distinct' aggregate='countcolumn' distinct='true'/>\
        <attribute name='numberofemployees' alias='Maximum' aggregate='max'/>\
        <attribute name='numberofemployees' alias='Minimum' aggregate='min'/>\
        <attribute name='numberofemployees' alias='Sum' aggregate='sum'/>\
        <attribute name='revenue' alias='Revenue' aggregate='sum'/></entity></fetch>";
    let (st, body) = fetch(&env, &t, "accounts", xml, Some(ALL)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let r = &body["value"][0];
    let sum: i64 = emp.iter().sum();
    assert_eq!(r["Count"].as_u64().unwrap() as usize, rows.len());
    assert_eq!(r["ColumnCount"].as_u64().unwrap() as usize, emp.len());
    assert_eq!(r["Distinct"].as_u64().unwrap() as usize, emp.iter().collect::<BTreeSet<_>>().len());
    assert_eq!(r["Sum"].as_i64().unwrap(), sum);
    assert_eq!(r["Average"].as_i64().unwrap(), sum / emp.len() as i64);
    assert_eq!(r["Maximum"].as_i64(), emp.iter().max().copied());
    assert_eq!(r["Minimum"].as_i64(), emp.iter().min().copied());
    let revenue: f64 = rows.iter().filter_map(|r| n(r, "revenue")).sum();
    assert!((r["Revenue"].as_f64().unwrap() - revenue).abs() < 0.01);
    assert!(r["Revenue@OData.Community.Display.V1.FormattedValue"].as_str().unwrap().starts_with('$'));
    assert!(r.get("@odata.etag").is_none());
    // groupby with a null group, ordered by alias
    let xml = "<fetch aggregate='true'><entity name='account'><attribute name='address1_city' alias='City' groupby='true'/>\
        <attribute name='accountid' alias='Count' aggregate='count'/><attribute name='numberofemployees' alias='Total' aggregate='sum'/><order alias='City'/></entity></fetch>";
    let groups = ok(&env, &t, "accounts", xml).await;
    let mut want: BTreeMap<Option<String>, (usize, i64)> = BTreeMap::new();
    for r in &rows {
        let e = want.entry(r["address1_city"].as_str().map(|s| s.to_lowercase())).or_default();
        e.0 += 1;
        e.1 += r["numberofemployees"].as_i64().unwrap_or(0);
    }
    assert!(want.contains_key(&None), "the seed has accounts without a city");
    assert_eq!(groups.len(), want.len());
    assert!(groups[0].get("City").is_none(), "the null group comes first and has no City key");
    for g in &groups {
        let k = g["City"].as_str().map(|s| s.to_lowercase());
        assert_eq!((g["Count"].as_u64().unwrap() as usize, g["Total"].as_i64().unwrap()), want[&k], "{g}");
    }
    // date grouping
    let xml = "<fetch aggregate='true'><entity name='account'><attribute name='accountid' alias='n' aggregate='count'/>\
        <attribute name='createdon' alias='y' groupby='true' dategrouping='year'/><attribute name='createdon' alias='q' groupby='true' dategrouping='quarter'/>\
        <attribute name='createdon' alias='m' groupby='true' dategrouping='month'/><attribute name='createdon' alias='w' groupby='true' dategrouping='week'/>\
        <attribute name='createdon' alias='d' groupby='true' dategrouping='day'/></entity></fetch>";
    let groups = ok(&env, &t, "accounts", xml).await;
    let mut want: BTreeMap<(i64, i64, i64, i64, i64), u64> = BTreeMap::new();
    for r in &rows {
        let c = time::OffsetDateTime::parse(
            r["createdon"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let jan1 = time::Date::from_calendar_date(c.year(), time::Month::January, 1).unwrap();
        let week = (i64::from(c.ordinal()) - 1 + i64::from(jan1.weekday().number_days_from_sunday())) / 7 + 1;
        let m = i64::from(u8::from(c.month()));
        *want.entry((i64::from(c.year()), (m + 2) / 3, m, week, i64::from(c.day()))).or_default() += 1;
    }
    let got: BTreeMap<(i64, i64, i64, i64, i64), u64> = groups
        .iter()
        .map(|g| {
            (
                (
                    g["y"].as_i64().unwrap(),
                    g["q"].as_i64().unwrap(),
                    g["m"].as_i64().unwrap(),
                    g["w"].as_i64().unwrap(),
                    g["d"].as_i64().unwrap(),
                ),
                g["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    // a lower aggregatelimit is enforced; errors for malformed aggregates
    let (st, e) = fetch(&env, &t, "accounts", "<fetch aggregate='true' aggregatelimit='10'><entity name='account'><attribute name='accountid' alias='c' aggregate='count'/></entity></fetch>", None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("0x8004E023")));
    assert_eq!(e["error"]["message"], "AggregateQueryRecordLimit exceeded. Cannot perform this operation.");
    for bad in [
        "<attribute name='name' alias='c'/>",
        "<attribute name='name' aggregate='sum' alias='s'/>",
        "<attribute name='numberofemployees' aggregate='sum'/>",
        "<all-attributes/>",
    ] {
        let (st, e) = fetch(
            &env,
            &t,
            "accounts",
            &format!("<fetch aggregate='true'><entity name='account'>{bad}</entity></fetch>"),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {e}");
    }
}

#[tokio::test]
async fn paging_cookies_walk_every_row_once() {
    let env = start(300).await;
    let t = env.admin_app();
    let accounts = all_rows(&env, &t, "accounts", "accountid").await;
    let prefer =
        "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\"";
    let (mut page, mut cookie, mut seen, mut order) = (1, None::<String>, BTreeSet::new(), Vec::new());
    loop {
        let pc = cookie
            .as_ref()
            .map(|c: &String| {
                format!(
                    " paging-cookie='{}'",
                    c.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;")
                )
            })
            .unwrap_or_default();
        let xml = format!(
            "<fetch count='7' page='{page}'{pc}><entity name='account'><attribute name='name'/><order attribute='name' descending='true'/></entity></fetch>"
        );
        let (st, body) = fetch(&env, &t, "accounts", &xml, Some(prefer)).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let rows = body["value"].as_array().unwrap();
        for r in rows {
            assert!(seen.insert(r["accountid"].as_str().unwrap().to_string()), "row repeated on page {page}");
            order.push(r["name"].as_str().unwrap().to_lowercase());
        }
        if page == 2 {
            // A row of an earlier page deleted: keyset paging neither skips nor repeats.
            let first = rows[0]["accountid"].as_str().unwrap();
            let r = env.http.delete(env.url(&format!("accounts({first})"))).bearer_auth(&t).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
        match body.get("@Microsoft.Dynamics.CRM.morerecords") {
            Some(Value::Bool(true)) => {
                assert_eq!(rows.len(), 7);
                let c = body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"].as_str().unwrap();
                assert!(
                    c.starts_with(&format!(
                        "<cookie pagenumber=\"{}\" pagingcookie=\"%253ccookie%2520page%253d%2522{page}%2522%253e",
                        page + 1
                    )),
                    "{c}"
                );
                assert!(c.ends_with("istracking=\"False\" />"));
                let attr = c.split("pagingcookie=\"").nth(1).unwrap().split('"').next().unwrap();
                let once = percent_encoding::percent_decode_str(attr).decode_utf8().unwrap().into_owned();
                cookie = Some(percent_encoding::percent_decode_str(&once).decode_utf8().unwrap().into_owned());
                page += 1;
            }
            None => {
                assert!(body.get("@Microsoft.Dynamics.CRM.fetchxmlpagingcookie").is_none());
                break;
            }
            other => panic!("morerecords {other:?}"),
        }
    }
    assert_eq!(seen, ids(&accounts, "accountid"));
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted);
    assert_eq!(page, accounts.len().div_ceil(7));
    // Simple paging (no cookie) gives the same pages.
    let xml = "<fetch count='7' page='3'><entity name='account'><attribute name='name'/><order attribute='name' descending='true'/></entity></fetch>";
    let rows = ok(&env, &t, "accounts", xml).await;
    let names: Vec<String> = rows.iter().map(|r| r["name"].as_str().unwrap().to_lowercase()).collect();
    let full = ok(&env, &t, "accounts", "<fetch><entity name='account'><attribute name='name'/><order attribute='name' descending='true'/></entity></fetch>").await;
    let full: Vec<String> = full.iter().map(|r| r["name"].as_str().unwrap().to_lowercase()).collect();
    assert_eq!(full.len(), accounts.len() - 1);
    assert_eq!(names, full[14..21]);
    // Without the Prefer annotations there are none; count above 5000 is capped.
    let (_, body) = fetch(&env, &t, "accounts", "<fetch count='7'><entity name='account'/></fetch>", None).await;
    assert!(body.get("@Microsoft.Dynamics.CRM.morerecords").is_none());
    assert_eq!(
        ok(
            &env,
            &t,
            "accounts",
            "<fetch count='9000'><entity name='account'><attribute name='name'/></entity></fetch>"
        )
        .await
        .len(),
        accounts.len() - 1
    );
    // $count=true: the total on every page
    let r = env
        .http
        .get(env.url(&format!(
            "accounts?fetchXml={}&$count=true",
            enc("<fetch count='5'><entity name='account'/></fetch>")
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["@odata.count"].as_u64().unwrap() as usize, accounts.len() - 1);
}

/// Every page of `<fetch count='{count}'>{inner}</fetch>`, each after the previous page's cookie.
async fn cookie_pages(env: &Env, token: &str, set: &str, inner: &str, count: usize) -> Vec<Vec<Value>> {
    let prefer =
        "odata.include-annotations=\"Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords\"";
    let (mut pages, mut cookie) = (Vec::new(), None::<String>);
    loop {
        let page = pages.len() + 1;
        let pc = cookie
            .as_ref()
            .map(|c| {
                format!(" paging-cookie='{}'", c.replace('&', "&amp;").replace('<', "&lt;").replace('\'', "&apos;"))
            })
            .unwrap_or_default();
        let xml = format!("<fetch count='{count}' page='{page}'{pc}>{inner}</fetch>");
        let (st, body) = fetch(env, token, set, &xml, Some(prefer)).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        pages.push(body["value"].as_array().unwrap().clone());
        if body.get("@Microsoft.Dynamics.CRM.morerecords") != Some(&Value::Bool(true)) {
            return pages;
        }
        let c = body["@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"].as_str().expect("a cookie for a many-to-one link");
        let attr = c.split("pagingcookie=\"").nth(1).unwrap().split('"').next().unwrap();
        let once = percent_encoding::percent_decode_str(attr).decode_utf8().unwrap().into_owned();
        cookie = Some(percent_encoding::percent_decode_str(&once).decode_utf8().unwrap().into_owned());
    }
}

#[tokio::test]
async fn paging_cookies_of_many_to_one_links_walk_every_root_row_once() {
    // Accounts joined to their parent account (most have none: an outer link), and contacts
    // to their parent account (inner): each root row once, whether the linked row exists.
    let env = start(300).await;
    let t = env.admin_app();
    let accounts = all_rows(&env, &t, "accounts", "accountid,_parentaccountid_value").await;
    let with_parent = accounts.iter().filter(|a| !a["_parentaccountid_value"].is_null()).count();
    assert!(with_parent > 0 && with_parent < accounts.len());
    for (link_type, expected) in [("outer", accounts.len()), ("inner", with_parent)] {
        let inner = format!(
            "<entity name='account'><attribute name='name'/><order attribute='accountid'/>\
             <link-entity name='account' from='accountid' to='parentaccountid' link-type='{link_type}' alias='p'>\
             <attribute name='name'/></link-entity></entity>"
        );
        let pages = cookie_pages(&env, &t, "accounts", &inner, 7).await;
        assert!(pages.len() > 2, "{link_type}");
        let mut seen = BTreeSet::new();
        for row in pages.iter().flatten() {
            assert!(seen.insert(row["accountid"].as_str().unwrap().to_string()), "{link_type}: a row repeated");
        }
        assert_eq!(seen.len(), expected, "{link_type}");
        let named = pages.iter().flatten().filter(|r| r.get("p.name").is_some()).count();
        assert_eq!(named, with_parent, "{link_type}");
    }
}

#[tokio::test]
async fn aggregates_over_more_than_50000_rows_are_refused() {
    let env = start(50_001).await;
    let t = env.admin_app();
    let xml = |f: &str| {
        format!(
            "<fetch aggregate='true'><entity name='account'><attribute name='accountid' alias='c' aggregate='count'/>{f}</entity></fetch>"
        )
    };
    let (st, e) = fetch(&env, &t, "accounts", &xml(""), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "0x8004E023");
    let (st, body) = fetch(
        &env,
        &t,
        "accounts",
        &xml("<filter><condition attribute='statecode' operator='eq' value='1'/></filter>"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body["value"][0]["c"].as_u64().unwrap() <= 50_000);
}

#[tokio::test]
async fn malformed_fetchxml_gets_dataverse_errors() {
    let env = start(5).await;
    let t = env.admin_app();
    let cases = [
        ("<fetch><entity name='account'>", "0x80040203", ""),
        ("<fetch><entity name='account'><column name='x'/></entity></fetch>", "0x8004111c", ""),
        ("<fetch colour='red'><entity name='account'/></fetch>", "0x80040203", ""),
        (
            "<fetch><entity name='account'><attribute name='nope'/></entity></fetch>",
            "0x80041103",
            "'account' entity doesn't contain attribute with Name = 'nope'",
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='nope' operator='eq' value='1'/></filter></entity></fetch>",
            "0x80041103",
            "",
        ),
        (
            "<fetch><entity name='account'><link-entity name='nosuchtable' from='a' to='accountid'/></entity></fetch>",
            "0x80041102",
            "",
        ),
        ("<fetch><entity name='nosuchtable'/></fetch>", "0x80041102", ""),
        ("<fetch><entity name='contact'/></fetch>", "0x80041128", ""),
        (
            "<fetch><entity name='account'><filter><condition attribute='name' operator='equals' value='1'/></filter></entity></fetch>",
            "0x80041120",
            "",
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='numberofemployees' operator='eq' value='many'/></filter></entity></fetch>",
            "0x80040203",
            "System.Int32",
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='createdon' operator='on' value='soon'/></filter></entity></fetch>",
            "0x80040203",
            "",
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='numberofemployees' operator='like' value='1'/></filter></entity></fetch>",
            "0x80041106",
            "",
        ),
        (
            "<fetch><entity name='account'><filter><condition attribute='name' operator='between' value='1'/></filter></entity></fetch>",
            "0x80041106",
            "",
        ),
        ("<fetch top='6000'><entity name='account'/></fetch>", "0x80040203", ""),
        ("<fetch top='5' page='2'><entity name='account'/></fetch>", "0x80040203", ""),
        (
            "<fetch><entity name='account'><filter><condition entityname='x' attribute='name' operator='null'/></filter></entity></fetch>",
            "0x8004110a",
            "",
        ),
        ("", "0x80040203", ""),
    ];
    for (xml, code, text) in cases {
        let (st, e) = fetch(&env, &t, "accounts", xml, None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{xml}: {e}");
        assert_eq!(e["error"]["code"], code, "{xml}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(text), "{xml}: {e}");
    }
    let r = env
        .get(&t, &format!("accounts?fetchXml={}&$select=name", enc("<fetch><entity name='account'/></fetch>")))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // In a $batch, the GET runs through the same handler.
    let get = format!(
        "--batch_AAA\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET /api/data/v9.2/accounts?fetchXml={} HTTP/1.1\r\n\r\n\r\n--batch_AAA--\r\n",
        enc("<fetch top='2'><entity name='account'><attribute name='name'/></entity></fetch>")
    );
    let r = env
        .http
        .post(env.url("$batch"))
        .bearer_auth(&t)
        .header("Content-Type", "multipart/mixed; boundary=batch_AAA")
        .body(get)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("HTTP/1.1 200") && text.contains("\"name\""), "{text}");
}
