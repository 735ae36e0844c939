//! The platform tables clients read to discover capabilities (`sdkmessages`,
//! `sdkmessagefilters` and their relationship) are ordinary tables: every query option that
//! works elsewhere works on them, every role can read them, and no one can write them.

use crate::common;

use common::*;
use std::collections::BTreeSet;

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn ok_json(env: &Env, token: &str, path: &str) -> Value {
    let r = env.get(token, path).await;
    let status = r.status();
    let body = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

fn rows(body: &Value) -> &Vec<Value> {
    body["value"].as_array().expect("a collection")
}

fn strings<'a>(rows: &'a [Value], key: &str) -> Vec<&'a str> {
    rows.iter().map(|r| r[key].as_str().unwrap_or_else(|| panic!("{key} in {r}"))).collect()
}

/// Tables offering the bulk messages in the emulator (every writable table but the
/// organization's principals and currency).
const BULK_TABLES: [&str; 5] = ["account", "contact", "lead", "new_widget", "opportunity"];

#[tokio::test]
async fn the_bulk_message_probe_works_with_aliases_and_inline_values() {
    let env = start(0).await;
    // The Integration role grants nothing by default: the platform tables are still readable.
    let t = env.integration();
    let probe = |message: &str, table: &str| {
        format!(
            "sdkmessagefilters?$select=sdkmessagefilterid&$filter={}&@message='{message}'&@table='{table}'",
            enc("sdkmessageid/name eq @message and primaryobjecttypecode eq @table")
        )
    };
    let body = ok_json(&env, &t, &probe("CreateMultiple", "account")).await;
    let found = rows(&body);
    assert_eq!(found.len(), 1, "{body}");
    let want = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"sdkmessagefilter/CreateMultiple/account");
    assert_eq!(found[0]["sdkmessagefilterid"], want.to_string(), "ids stay deterministic");
    assert!(found[0]["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    assert_eq!(found[0].as_object().unwrap().len(), 2, "only the selected column and the etag: {}", found[0]);
    assert!(body["@odata.context"].as_str().unwrap().ends_with("$metadata#sdkmessagefilters(sdkmessagefilterid)"));
    for (message, table, n) in [
        ("UpsertMultiple", "contact", 1),
        ("CreateMultiple", "team", 0),
        ("Create", "team", 1),
        ("DeleteMultiple", "account", 0),
        ("CreateMultiple", "nosuchtable", 0),
        ("Create", "sdkmessage", 0),
        ("RetrieveMultiple", "sdkmessagefilter", 1),
    ] {
        assert_eq!(rows(&ok_json(&env, &t, &probe(message, table)).await).len(), n, "{message} on {table}");
    }
    let inline = format!(
        "sdkmessagefilters?$select=sdkmessagefilterid&$filter={}",
        enc("sdkmessageid/name eq 'UpdateMultiple' and primaryobjecttypecode eq 'contact'")
    );
    assert_eq!(rows(&ok_json(&env, &t, &inline).await).len(), 1);
}

#[tokio::test]
async fn or_of_message_names_through_the_navigation_path_with_expand() {
    let env = start(0).await;
    let t = env.admin_app();
    let filter = "(sdkmessageid/name eq 'CreateMultiple' or sdkmessageid/name eq 'UpdateMultiple') \
                  and primaryobjecttypecode eq 'contact'";
    let path = format!(
        "sdkmessagefilters?$select=primaryobjecttypecode,iscustomprocessingstepallowed&$filter={}&$expand=sdkmessageid($select=name)",
        enc(filter)
    );
    let body = ok_json(&env, &t, &path).await;
    let found = rows(&body);
    let names: BTreeSet<&str> = found.iter().map(|r| r["sdkmessageid"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["CreateMultiple", "UpdateMultiple"]), "{body}");
    for r in found {
        assert_eq!(r["primaryobjecttypecode"], "contact");
        assert_eq!(r["iscustomprocessingstepallowed"], true);
        let m = r["sdkmessageid"].as_object().unwrap();
        assert!(m["sdkmessageid"].is_string() && m["@odata.etag"].is_string(), "{r}");
    }

    // `or` of both message names without a table: one filter per table offering them.
    let path = format!(
        "sdkmessagefilters?$select=primaryobjecttypecode&$filter={}",
        enc("sdkmessageid/name eq 'CreateMultiple' or sdkmessageid/name eq 'UpsertMultiple'")
    );
    let body = ok_json(&env, &t, &path).await;
    let mut tables = strings(rows(&body), "primaryobjecttypecode");
    assert_eq!(tables.len(), 2 * BULK_TABLES.len(), "{body}");
    tables.sort();
    tables.dedup();
    assert_eq!(tables, BULK_TABLES);
}

#[tokio::test]
async fn select_orderby_top_and_paging_work_like_on_any_table() {
    let env = start(0).await;
    let t = env.admin_app();
    // $select of several columns.
    let path = format!(
        "sdkmessages?$select=name,categoryname,isprivate,isreadonly,isactive,availability&$filter={}",
        enc("name eq 'Retrieve'")
    );
    let body = ok_json(&env, &t, &path).await;
    let [m] = rows(&body).as_slice() else { panic!("one Retrieve message: {body}") };
    assert_eq!(m["name"], "Retrieve");
    assert_eq!(m["categoryname"], "Retrieve");
    assert_eq!(
        (m["isprivate"].as_bool(), m["isreadonly"].as_bool(), m["isactive"].as_bool()),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(m["availability"], 0);
    let keys: BTreeSet<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "@odata.etag",
            "availability",
            "categoryname",
            "isactive",
            "isprivate",
            "isreadonly",
            "name",
            "sdkmessageid"
        ])
    );

    // $orderby and $top.
    let all = ok_json(&env, &t, "sdkmessages?$select=name").await;
    let mut names: Vec<String> = strings(rows(&all), "name").into_iter().map(str::to_string).collect();
    for expected in ["Create", "CreateMultiple", "DeleteMultiple", "RetrieveMultiple", "UpsertMultiple", "WhoAmI"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    names.sort_by_key(|n| std::cmp::Reverse(n.to_lowercase()));
    let top = ok_json(&env, &t, "sdkmessages?$select=name&$orderby=name%20desc&$top=3").await;
    assert_eq!(strings(rows(&top), "name"), names[..3].iter().map(String::as_str).collect::<Vec<_>>());
    assert!(top.get("@odata.nextLink").is_none());

    // Paging: small pages through next links give every filter once, as many as $count says.
    let counted = ok_json(&env, &t, "sdkmessagefilters?$select=sdkmessagefilterid&$count=true").await;
    let total = counted["@odata.count"].as_u64().unwrap() as usize;
    assert_eq!(rows(&counted).len(), total);
    let mut seen = BTreeSet::new();
    let mut url = env.url("sdkmessagefilters?$select=sdkmessagefilterid&$orderby=primaryobjecttypecode");
    let mut pages = 0;
    loop {
        let r = env.http.get(&url).bearer_auth(&t).header("Prefer", "odata.maxpagesize=7").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = json_of(r).await;
        for id in strings(rows(&body), "sdkmessagefilterid") {
            assert!(seen.insert(id.to_string()), "{id} twice");
        }
        pages += 1;
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    assert!(pages > 2, "{pages} pages");
}

#[tokio::test]
async fn the_relationship_works_from_both_sides() {
    let env = start(0).await;
    let t = env.admin_app();
    // 1:N from the message: the tables offering CreateMultiple.
    let path = format!(
        "sdkmessages?$select=name&$filter={}&$expand=sdkmessageid_sdkmessagefilter($select=primaryobjecttypecode;$orderby=primaryobjecttypecode)",
        enc("name eq 'CreateMultiple'")
    );
    let body = ok_json(&env, &t, &path).await;
    let [m] = rows(&body).as_slice() else { panic!("{body}") };
    assert_eq!(strings(m["sdkmessageid_sdkmessagefilter"].as_array().unwrap(), "primaryobjecttypecode"), BULK_TABLES);
    // A lambda over the filters: the messages the team table offers.
    let path = format!(
        "sdkmessages?$select=name&$orderby=name&$filter={}",
        enc("sdkmessageid_sdkmessagefilter/any(f: f/primaryobjecttypecode eq 'team')")
    );
    let body = ok_json(&env, &t, &path).await;
    assert_eq!(strings(rows(&body), "name"), ["Create", "Delete", "Retrieve", "RetrieveMultiple", "Update", "Upsert"]);
    // The unbound WhoAmI has one filter, on no table.
    let path =
        format!("sdkmessagefilters?$select=primaryobjecttypecode&$filter={}", enc("sdkmessageid/name eq 'WhoAmI'"));
    assert_eq!(strings(rows(&ok_json(&env, &t, &path).await), "primaryobjecttypecode"), ["none"]);
}

#[tokio::test]
async fn writes_are_refused_even_for_a_system_administrator() {
    let env = start(0).await;
    for t in [env.admin_app(), env.integration()] {
        let refused = |r: reqwest::Response, message: &'static str, table: &'static str| async move {
            let status = r.status();
            let body = json_of(r).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let text = body["error"]["message"].as_str().unwrap();
            assert!(
                text.contains(&format!("The '{message}' method does not support entities of type '{table}'")),
                "{text}"
            );
        };
        let r = env.http.post(env.url("sdkmessages")).bearer_auth(&t).json(&json!({"name": "Mine"})).send().await;
        refused(r.unwrap(), "Create", "sdkmessage").await;

        let path = format!(
            "sdkmessagefilters?$select=sdkmessagefilterid&$filter={}",
            enc("primaryobjecttypecode eq 'account'")
        );
        let body = ok_json(&env, &t, &path).await;
        let id = rows(&body)[0]["sdkmessagefilterid"].as_str().unwrap().to_string();
        let record = env.url(&format!("sdkmessagefilters({id})"));
        let r = env.http.patch(&record).bearer_auth(&t).json(&json!({"availability": 2})).send().await;
        refused(r.unwrap(), "Upsert", "sdkmessagefilter").await;
        let r = env
            .http
            .patch(&record)
            .bearer_auth(&t)
            .header("If-Match", "*")
            .json(&json!({"availability": 2}))
            .send()
            .await;
        refused(r.unwrap(), "Update", "sdkmessagefilter").await;
        let r = env.http.delete(&record).bearer_auth(&t).send().await;
        refused(r.unwrap(), "Delete", "sdkmessagefilter").await;
        let r = env
            .http
            .post(env.url("sdkmessages/Microsoft.Dynamics.CRM.CreateMultiple"))
            .bearer_auth(&t)
            .json(&json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.sdkmessage", "name": "X"}]}))
            .send()
            .await;
        refused(r.unwrap(), "CreateMultiple", "sdkmessage").await;

        // Nothing changed.
        let after = ok_json(&env, &t, &format!("sdkmessagefilters({id})?$select=availability")).await;
        assert_eq!(after["availability"], 0);
        let mine = ok_json(&env, &t, &format!("sdkmessages?$select=name&$filter={}", enc("name eq 'Mine'"))).await;
        assert!(rows(&mine).is_empty());
    }
}

#[tokio::test]
async fn metadata_describes_the_platform_tables() {
    let env = start(0).await;
    let t = env.admin_app();
    let e = ok_json(
        &env,
        &t,
        "EntityDefinitions(LogicalName='sdkmessagefilter')?$select=LogicalName,EntitySetName,ObjectTypeCode,OwnershipType,SchemaName,PrimaryIdAttribute,PrimaryNameAttribute",
    )
    .await;
    assert_eq!(e["EntitySetName"], "sdkmessagefilters");
    assert_eq!(e["ObjectTypeCode"], 4607);
    assert_eq!(e["OwnershipType"], "OrganizationOwned");
    assert_eq!(e["SchemaName"], "SdkMessageFilter");
    assert_eq!(
        (e["PrimaryIdAttribute"].as_str(), e["PrimaryNameAttribute"].as_str()),
        (Some("sdkmessagefilterid"), Some("name"))
    );
    let m = ok_json(&env, &t, "EntityDefinitions(LogicalName='sdkmessage')?$select=ObjectTypeCode").await;
    assert_eq!(m["ObjectTypeCode"], 4606);
    let rel = ok_json(
        &env,
        &t,
        "EntityDefinitions(LogicalName='sdkmessagefilter')/ManyToOneRelationships?$select=SchemaName,ReferencedEntity,ReferencingAttribute,ReferencingEntityNavigationPropertyName",
    )
    .await;
    let r = rows(&rel)
        .iter()
        .find(|r| r["SchemaName"] == "sdkmessageid_sdkmessagefilter")
        .unwrap_or_else(|| panic!("relationship missing: {rel}"));
    assert_eq!(r["ReferencedEntity"], "sdkmessage");
    assert_eq!(r["ReferencingAttribute"], "sdkmessageid");
    assert_eq!(r["ReferencingEntityNavigationPropertyName"], "sdkmessageid");

    let csdl = env.get(&t, "$metadata").await.text().await.unwrap();
    assert!(csdl.contains("<EntityType Name=\"sdkmessagefilter\""), "sdkmessagefilter missing from $metadata");
    assert!(csdl.contains("<EntitySet Name=\"sdkmessages\" EntityType=\"Microsoft.Dynamics.CRM.sdkmessage\""));
    assert!(
        csdl.contains("<NavigationProperty Name=\"sdkmessageid\" Type=\"mscrm.sdkmessage\" Partner=\"sdkmessageid_sdkmessagefilter\">"),
        "the N:1 navigation property"
    );
}
