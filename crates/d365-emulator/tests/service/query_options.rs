//! `$filter`, `$expand` and `$apply` over real HTTPS. Filters are checked differentially: the
//! ids a filter returns must be exactly the ids a Rust predicate selects from the full table.

use crate::common;

use common::*;
use std::collections::BTreeSet;

const ROWS: usize = 400;

type Predicate<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

/// Every row of `set` with the given `$select`, following next links.
async fn all_rows(env: &Env, token: &str, set: &str, select: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = env.url(&format!("{set}?$select={select}"));
    loop {
        let r = env.http.get(&url).bearer_auth(token).header("Prefer", "odata.maxpagesize=500").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        let body = json_of(r).await;
        out.extend(body["value"].as_array().unwrap().iter().cloned());
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return out,
        }
    }
}

async fn filtered_ids(env: &Env, token: &str, set: &str, key: &str, filter: &str) -> BTreeSet<String> {
    let enc = percent_encoding::utf8_percent_encode(filter, percent_encoding::NON_ALPHANUMERIC).to_string();
    let rows = all_rows(env, token, set, &format!("{key}&$filter={enc}")).await;
    rows.iter().map(|r| r[key].as_str().unwrap().to_string()).collect()
}

fn ids_where(rows: &[Value], key: &str, pred: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    rows.iter().filter(|r| pred(r)).map(|r| r[key].as_str().unwrap().to_string()).collect()
}

async fn error_of(env: &Env, token: &str, path: &str) -> (StatusCode, Value) {
    let r = env.get(token, path).await;
    let s = r.status();
    (s, json_of(r).await)
}

#[tokio::test]
async fn filters_select_exactly_the_rows_a_predicate_selects() {
    let env = start(ROWS).await;
    let t = env.admin_app();
    let cols = "accountid,name,revenue,numberofemployees,statecode,statuscode,createdon,address1_city,_parentaccountid_value,_primarycontactid_value,address1_latitude";
    let rows = all_rows(&env, &t, "accounts", cols).await;
    assert_eq!(rows.len(), ROWS);
    let s = |r: &Value, k: &str| r[k].as_str().map(str::to_string);
    let n = |r: &Value, k: &str| r[k].as_f64();
    let some_city = s(&rows[3], "address1_city").unwrap();
    let some_parent = rows.iter().find_map(|r| s(r, "_parentaccountid_value")).unwrap();
    let cases: Vec<(String, Predicate<'_>)> = vec![
        ("revenue gt 25000000".into(), Box::new(|r| n(r, "revenue").is_some_and(|v| v > 25_000_000.0))),
        ("revenue le 25000000.5".into(), Box::new(|r| n(r, "revenue").is_some_and(|v| v <= 25_000_000.5))),
        ("statecode eq 1".into(), Box::new(|r| n(r, "statecode") == Some(1.0))),
        (
            "statecode eq 0 and numberofemployees lt 1000".into(),
            Box::new(|r| n(r, "statecode") == Some(0.0) && n(r, "numberofemployees").is_some_and(|v| v < 1000.0)),
        ),
        (
            "(statecode eq 1 or numberofemployees ge 45000) and not (revenue lt 1000000)".into(),
            Box::new(|r| {
                (n(r, "statecode") == Some(1.0) || n(r, "numberofemployees").is_some_and(|v| v >= 45000.0))
                    && n(r, "revenue").is_some_and(|v| v >= 1_000_000.0)
            }),
        ),
        (
            format!("address1_city eq '{}'", some_city.to_uppercase()),
            Box::new(|r| s(r, "address1_city").is_some_and(|c| c.eq_ignore_ascii_case(&some_city))),
        ),
        ("address1_city ne null".into(), Box::new(|r| !r["address1_city"].is_null())),
        ("_parentaccountid_value eq null".into(), Box::new(|r| r["_parentaccountid_value"].is_null())),
        (
            format!("_parentaccountid_value eq {some_parent}"),
            Box::new(|r| s(r, "_parentaccountid_value").as_deref() == Some(&some_parent)),
        ),
        (
            format!("_parentaccountid_value eq '{}'", some_parent.to_uppercase()),
            Box::new(|r| s(r, "_parentaccountid_value").as_deref() == Some(&some_parent)),
        ),
        ("contains(name,'inc')".into(), Box::new(|r| s(r, "name").is_some_and(|v| v.to_lowercase().contains("inc")))),
        ("startswith(name,'a')".into(), Box::new(|r| s(r, "name").is_some_and(|v| v.to_lowercase().starts_with('a')))),
        ("endswith(name,'7')".into(), Box::new(|r| s(r, "name").is_some_and(|v| v.ends_with('7')))),
        (
            "not contains(name,'Ltd')".into(),
            Box::new(|r| s(r, "name").is_some_and(|v| !v.to_lowercase().contains("ltd"))),
        ),
        (
            "createdon ge 2021-01-10T00:00:00Z and createdon lt 2021-01-20T00:00:00+01:00".into(),
            Box::new(|r| {
                s(r, "createdon")
                    .is_some_and(|v| v.as_str() >= "2021-01-10T00:00:00Z" && v.as_str() < "2021-01-19T23:00:00Z")
            }),
        ),
        (
            "createdon gt 2021-01-15T00:00:00.5Z".into(),
            Box::new(|r| s(r, "createdon").is_some_and(|v| v.as_str() >= "2021-01-15T00:00:01Z")),
        ),
        ("address1_latitude lt -10.5".into(), Box::new(|r| n(r, "address1_latitude").is_some_and(|v| v < -10.5))),
        (
            "Microsoft.Dynamics.CRM.In(PropertyName='statuscode',PropertyValues=['1','2'])".into(),
            Box::new(|r| matches!(n(r, "statuscode"), Some(x) if x == 1.0 || x == 2.0)),
        ),
        (
            "Microsoft.Dynamics.CRM.NotIn(PropertyName='statuscode',PropertyValues=['1'])".into(),
            Box::new(|r| n(r, "statuscode").is_some_and(|x| x != 1.0)),
        ),
        (
            "Microsoft.Dynamics.CRM.Between(PropertyName='numberofemployees',PropertyValues=[\"5\",\"2000\"])".into(),
            Box::new(|r| n(r, "numberofemployees").is_some_and(|v| (5.0..=2000.0).contains(&v))),
        ),
        (
            "Microsoft.Dynamics.CRM.On(PropertyName='createdon',PropertyValue='2021-01-07')".into(),
            Box::new(|r| s(r, "createdon").is_some_and(|v| v.starts_with("2021-01-07"))),
        ),
        (
            "Microsoft.Dynamics.CRM.OnOrBefore(PropertyName='createdon',PropertyValue='2021-01-07')".into(),
            Box::new(|r| s(r, "createdon").is_some_and(|v| v.as_str() < "2021-01-08")),
        ),
        ("primarycontactid/fullname ne null".into(), Box::new(|r| !r["_primarycontactid_value"].is_null())),
        ("parentaccountid/statecode eq 1 or parentaccountid/parentaccountid/statecode eq 1".into(), {
            let by_id: std::collections::HashMap<String, Value> =
                rows.iter().map(|r| (s(r, "accountid").unwrap(), r.clone())).collect();
            Box::new(move |r| {
                let parent = s(r, "_parentaccountid_value").and_then(|p| by_id.get(&p).cloned());
                let grand =
                    parent.as_ref().and_then(|p| s(p, "_parentaccountid_value")).and_then(|g| by_id.get(&g).cloned());
                parent.is_some_and(|p| n(&p, "statecode") == Some(1.0))
                    || grand.is_some_and(|g| n(&g, "statecode") == Some(1.0))
            })
        }),
    ];
    for (filter, pred) in &cases {
        let got = filtered_ids(&env, &t, "accounts", "accountid", filter).await;
        let want = ids_where(&rows, "accountid", pred);
        assert_eq!(got, want, "filter {filter}");
        assert!(
            !want.is_empty() || filter.contains("eq null"),
            "filter {filter} selects nothing; the test proves little"
        );
    }
}

#[tokio::test]
async fn lambdas_and_user_functions() {
    let env = start(ROWS).await;
    let t = env.admin_app();
    let contacts = all_rows(&env, &t, "contacts", "contactid,jobtitle,_parentcustomerid_value").await;
    let accounts = all_rows(&env, &t, "accounts", "accountid,_ownerid_value").await;
    let job = contacts[0]["jobtitle"].as_str().unwrap().to_string();
    // Accounts with at least one contact (through the customer lookup) having that job title.
    let with_job: BTreeSet<String> = contacts
        .iter()
        .filter(|c| c["jobtitle"].as_str() == Some(job.as_str()))
        .filter_map(|c| c["_parentcustomerid_value"].as_str().map(str::to_string))
        .collect();
    let want: BTreeSet<String> = accounts
        .iter()
        .map(|a| a["accountid"].as_str().unwrap().to_string())
        .filter(|id| with_job.contains(id))
        .collect();
    let got = filtered_ids(
        &env,
        &t,
        "accounts",
        "accountid",
        &format!("contact_customer_accounts/any(c:c/jobtitle eq '{job}')"),
    )
    .await;
    assert_eq!(got, want);
    assert!(!want.is_empty());
    // all(): every contact has the title (vacuously true for accounts without contacts).
    let mut not_all: BTreeSet<String> = BTreeSet::new();
    for c in &contacts {
        if c["jobtitle"].as_str() != Some(job.as_str())
            && let Some(p) = c["_parentcustomerid_value"].as_str()
        {
            not_all.insert(p.to_string());
        }
    }
    let want_all: BTreeSet<String> = accounts
        .iter()
        .map(|a| a["accountid"].as_str().unwrap().to_string())
        .filter(|id| !not_all.contains(id))
        .collect();
    let got_all = filtered_ids(
        &env,
        &t,
        "accounts",
        "accountid",
        &format!("contact_customer_accounts/all(c:c/jobtitle eq '{job}')"),
    )
    .await;
    assert_eq!(got_all, want_all);

    // EqualUserId: the caller's own records.
    let me = json_of(env.get(&t, "WhoAmI").await).await["UserId"].as_str().unwrap().to_string();
    let mine =
        filtered_ids(&env, &t, "accounts", "accountid", "Microsoft.Dynamics.CRM.EqualUserId(PropertyName='ownerid')")
            .await;
    let want_mine = ids_where(&accounts, "accountid", |a| a["_ownerid_value"].as_str() == Some(me.as_str()));
    assert_eq!(mine, want_mine);
}

#[tokio::test]
async fn bad_filters_get_dataverse_errors() {
    let env = start(5).await;
    let t = env.admin_app();
    let cases = [
        ("accounts?$filter=name eq 'O'Bryan'", "There is an unterminated literal"),
        (
            "accounts?$filter=nosuch eq 1",
            "Could not find a property named 'nosuch' on type 'Microsoft.Dynamics.CRM.account'",
        ),
        (
            "accounts?$filter=name eq 5",
            "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and 'Edm.Int32' for operator kind 'Equal'.",
        ),
        ("accounts?$filter=revenue add 1 gt 5", "is not supported"),
        ("accounts?$filter=tolower(name) eq 'x'", "is not supported"),
        ("accounts?$filter=contains(revenue,'1')", "No function signature for the function with name 'contains'"),
        (
            "accounts?$filter=Microsoft.Dynamics.CRM.Nope(PropertyName='name')",
            "An unknown function with name 'Microsoft.Dynamics.CRM.Nope' was found",
        ),
        (
            "accounts?$filter=Microsoft.Dynamics.CRM.In(PropertyName='statecode',PropertyValues=['x'])",
            "Cannot convert the literal",
        ),
        ("accounts?$filter=primarycontactid eq null", "cannot be compared"),
        ("accounts?$filter=contact_customer_accounts/fullname eq 'x'", "is not a single value"),
    ];
    for (path, needle) in cases {
        let (status, body) = error_of(&env, &t, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "0x80060888", "{path}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
}

#[tokio::test]
async fn expand_single_and_collection_valued_navigation_properties() {
    let env = start(60).await;
    let t = env.admin_app();
    let contacts = all_rows(&env, &t, "contacts", "contactid,fullname,_parentcustomerid_value").await;
    let accounts = all_rows(&env, &t, "accounts", "accountid,_primarycontactid_value").await;
    let fullname_of: std::collections::HashMap<&str, &str> =
        contacts.iter().map(|c| (c["contactid"].as_str().unwrap(), c["fullname"].as_str().unwrap())).collect();

    let r = env
        .get(&t, "accounts?$select=name&$expand=primarycontactid($select=fullname),contact_customer_accounts($select=fullname;$orderby=fullname desc)")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#accounts(name,primarycontactid(fullname),contact_customer_accounts(fullname))"),
        "{}",
        body["@odata.context"]
    );
    let rows = body["value"].as_array().unwrap();
    assert_eq!(rows.len(), 60);
    let mut seen_children = 0;
    for row in rows {
        let id = row["accountid"].as_str().unwrap();
        let account = accounts.iter().find(|a| a["accountid"] == id).unwrap();
        match account["_primarycontactid_value"].as_str() {
            Some(c) => {
                assert_eq!(row["primarycontactid"]["contactid"], c);
                assert_eq!(row["primarycontactid"]["fullname"], fullname_of[c]);
                assert!(row["primarycontactid"]["@odata.etag"].is_string());
            }
            None => assert!(row["primarycontactid"].is_null()),
        }
        let mut want: Vec<&str> = contacts
            .iter()
            .filter(|c| c["_parentcustomerid_value"] == id)
            .map(|c| c["fullname"].as_str().unwrap())
            .collect();
        want.sort_by_key(|n| std::cmp::Reverse(n.to_lowercase()));
        let got: Vec<&str> = row["contact_customer_accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["fullname"].as_str().unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "children of {id}");
        let lower = |v: &[&str]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
        assert_eq!(lower(&got), lower(&want));
        seen_children += got.len();
        assert!(row.get("contact_customer_accounts@odata.nextLink").is_none());
    }
    assert!(seen_children > 0);

    // $top inside a collection expand leaves rows out: the nextLink lists them all, and works.
    let parent = rows.iter().find(|r| r["contact_customer_accounts"].as_array().unwrap().len() >= 2).unwrap();
    let pid = parent["accountid"].as_str().unwrap();
    let r = env
        .get(&t, &format!("accounts({pid})?$select=name&$expand=contact_customer_accounts($select=fullname;$top=1)"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let one = json_of(r).await;
    assert_eq!(one["contact_customer_accounts"].as_array().unwrap().len(), 1);
    let link = one["contact_customer_accounts@odata.nextLink"].as_str().expect("rows were left out").to_string();
    let r = env.http.get(&link).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{link}");
    let all = json_of(r).await;
    assert_eq!(all["value"].as_array().unwrap().len(), parent["contact_customer_accounts"].as_array().unwrap().len());

    // $ref on a lookup; refused on a collection; $top refused on a single-valued expand.
    let r = env.get(&t, &format!("accounts({pid})?$select=name&$expand=primarycontactid/$ref")).await;
    let body = json_of(r).await;
    if let Some(c) = parent["primarycontactid"]["contactid"].as_str() {
        assert!(body["primarycontactid"]["@odata.id"].as_str().unwrap().ends_with(&format!("/contacts({c})")));
    }
    let (s, e) = error_of(&env, &t, "accounts?$expand=contact_customer_accounts/$ref").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["message"], "Expand with $ref is only supported on lookup type navigation property.");
    let (s, e) = error_of(&env, &t, "accounts?$expand=primarycontactid($top=1)").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["error"]["message"].as_str().unwrap().starts_with("Only $select and $filter clause can be provided"));
    let (s, _) = error_of(&env, &t, "accounts?$expand=nosuchnav").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Navigation paths: the related record, and the related rows.
    let r = env.get(&t, &format!("accounts({pid})/contact_customer_accounts?$select=fullname")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await["value"].as_array().unwrap().len(),
        parent["contact_customer_accounts"].as_array().unwrap().len()
    );
}

#[tokio::test]
async fn apply_groups_and_aggregates_in_sqlite() {
    let env = start(300).await;
    let t = env.admin_app();
    let accounts = all_rows(&env, &t, "accounts", "accountid,statecode,revenue,numberofemployees").await;
    let r = env
        .get(&t, "accounts?$apply=groupby((statecode),aggregate($count as count,numberofemployees with sum as total,numberofemployees with max as biggest))")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert!(body["@odata.context"].as_str().unwrap().ends_with("$metadata#accounts"));
    let groups = body["value"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for g in groups {
        let state = g["statecode"].as_i64().unwrap();
        let members: Vec<&Value> = accounts.iter().filter(|a| a["statecode"].as_i64() == Some(state)).collect();
        assert_eq!(g["count"].as_u64().unwrap() as usize, members.len());
        let sum: i64 = members.iter().filter_map(|a| a["numberofemployees"].as_i64()).sum();
        assert_eq!(g["total"].as_i64().unwrap(), sum);
        let max = members.iter().filter_map(|a| a["numberofemployees"].as_i64()).max().unwrap();
        assert_eq!(g["biggest"].as_i64().unwrap(), max);
        assert!(g.get("@odata.etag").is_none());
    }
    let r = env.get(&t, "accounts?$apply=filter(statecode eq 0)/aggregate(revenue with sum as total)").await;
    let body = json_of(r).await;
    let want: f64 = accounts.iter().filter(|a| a["statecode"] == 0).filter_map(|a| a["revenue"].as_f64()).sum();
    let got: f64 = body["value"][0]["total"].as_f64().unwrap();
    assert!((got - want).abs() < 0.01, "{got} vs {want}");

    let (s, e) = error_of(&env, &t, "accounts?$apply=groupby((createdon))").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) =
        error_of(&env, &t, "accounts?$apply=groupby((statecode),aggregate($count as c))&$orderby=c desc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["message"], "The query node SingleValueOpenPropertyAccess is not supported.");
}

#[tokio::test]
async fn aggregates_over_more_than_50000_rows_are_refused() {
    let env = start(50_001).await;
    let t = env.admin_app();
    let (s, e) = error_of(&env, &t, "accounts?$apply=aggregate($count as c)").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "0x8004E023");
    let r = env.get(&t, "accounts?$apply=filter(statecode eq 1)/aggregate($count as c)").await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn relative_date_functions_use_the_emulator_clock() {
    let env = start(20).await;
    let t = env.admin_app();
    let r =
        env.http.post(env.url("contacts")).bearer_auth(&t).json(&json!({"lastname": "Recent"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let recent = |f: &'static str| {
        let env = &env;
        let t = t.clone();
        async move { filtered_ids(env, &t, "contacts", "contactid", f).await.len() }
    };
    assert_eq!(recent("Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=1)").await, 1);
    assert_eq!(recent("Microsoft.Dynamics.CRM.Today(PropertyName='createdon')").await, 1);
    assert_eq!(recent("Microsoft.Dynamics.CRM.ThisYear(PropertyName='createdon')").await, 1);
    assert_eq!(recent("Microsoft.Dynamics.CRM.OlderThanXDays(PropertyName='createdon',PropertyValue=2)").await, 10);
    env.emu.state().clock.advance(3 * 86_400);
    let t = env.admin_app();
    let recent = |f: &'static str| {
        let env = &env;
        let t = t.clone();
        async move { filtered_ids(env, &t, "contacts", "contactid", f).await.len() }
    };
    assert_eq!(recent("Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=1)").await, 0);
    assert_eq!(recent("Microsoft.Dynamics.CRM.OlderThanXDays(PropertyName='createdon',PropertyValue=2)").await, 11);
    assert_eq!(recent("Microsoft.Dynamics.CRM.Last7Days(PropertyName='createdon')").await, 1);
}

#[tokio::test]
async fn change_tracking_returns_changes_and_deletions_since_the_token() {
    let env = start(30).await;
    let t = env.admin_app();
    let get = |url: String, prefer: Option<&'static str>| {
        let env = &env;
        let t = t.clone();
        async move {
            let mut r = env.http.get(url).bearer_auth(&t);
            if let Some(p) = prefer {
                r = r.header("Prefer", p);
            }
            r.send().await.unwrap()
        }
    };
    // Initial read in pages of 10; the deltaLink arrives on the last page only.
    let mut url = env.url("accounts?$select=name");
    let mut seen = 0;
    let delta = loop {
        let r = get(url.clone(), Some("odata.track-changes,odata.maxpagesize=10")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = json_of(r).await;
        seen += body["value"].as_array().unwrap().len();
        // A row changed while the pages are read must come back in the next delta.
        if seen == 10 {
            let first = body["value"][0]["accountid"].as_str().unwrap().to_string();
            let r = env
                .http
                .patch(env.url(&format!("accounts({first})")))
                .bearer_auth(&t)
                .json(&json!({"name": "Changed during read"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
        match (body["@odata.nextLink"].as_str(), body["@odata.deltaLink"].as_str()) {
            (Some(next), None) => url = next.to_string(),
            (None, Some(delta)) => break delta.to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(seen, 30);
    assert!(delta.contains("$deltatoken="), "{delta}");

    // Changes: one insert, one update, one delete.
    let r = env.http.post(env.url("accounts")).bearer_auth(&t).json(&json!({"name": "New one"})).send().await.unwrap();
    let new_id =
        r.headers()["odata-entityid"].to_str().unwrap().rsplit('(').next().unwrap().trim_end_matches(')').to_string();
    let all = all_rows(&env, &t, "accounts", "accountid").await;
    let victim = all[5]["accountid"].as_str().unwrap().to_string();
    let updated = all[7]["accountid"].as_str().unwrap().to_string();
    env.http
        .patch(env.url(&format!("accounts({updated})")))
        .bearer_auth(&t)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    env.http.delete(env.url(&format!("accounts({victim})"))).bearer_auth(&t).send().await.unwrap();

    let r = get(delta.clone(), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert!(body["@odata.context"].as_str().unwrap().ends_with("$metadata#accounts(name)/$delta"));
    let value = body["value"].as_array().unwrap();
    let changed: BTreeSet<String> = value.iter().filter_map(|v| v["accountid"].as_str().map(str::to_string)).collect();
    let deleted: Vec<&str> =
        value.iter().filter(|v| v["reason"] == "deleted").map(|v| v["id"].as_str().unwrap()).collect();
    assert!(changed.contains(&new_id) && changed.contains(&updated), "{changed:?}");
    assert_eq!(changed.len(), 3, "insert, update, and the row changed during the first read: {changed:?}");
    assert_eq!(deleted, vec![victim.as_str()]);
    let next_delta = body["@odata.deltaLink"].as_str().unwrap().to_string();
    let r = get(next_delta, None).await;
    assert_eq!(json_of(r).await["value"].as_array().unwrap().len(), 0, "no changes since");

    // Refused options, untracked tables and expired tokens.
    let (s, e) = error_of(&env, &t, "accounts?$select=name&$deltatoken=1!01/01/2020 00:00:00").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["error"]["message"].as_str().unwrap().contains("expired"), "{e}");
    let r = env
        .http
        .get(env.url("accounts?$filter=statecode eq 0"))
        .bearer_auth(&t)
        .header("Prefer", "odata.track-changes")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(r).await["error"]["message"],
        "The \"$filter\" query parameter isn't supported when Change Tracking is enabled."
    );
    env.emu.state().clock.advance(8 * 86_400);
    let t = env.admin_app();
    let r = env.http.get(&delta).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a token older than 7 days is refused");
}
