//! Bulk operation messages over HTTPS: CreateMultiple / UpdateMultiple / UpsertMultiple are one
//! transaction each; DeleteMultiple is refused on standard tables.

use crate::common;

use common::*;

async fn post(env: &Env, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let r = env.http.post(env.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let s = r.status();
    let text = r.text().await.unwrap();
    (s, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

async fn count(env: &Env, token: &str, set: &str) -> usize {
    let r = env.get(token, &format!("{set}?$select={}id&$top=5000", &set[..set.len() - 1])).await;
    json_of(r).await["value"].as_array().unwrap().len()
}

#[tokio::test]
async fn create_update_upsert_multiple() {
    let env = start(10).await;
    let t = env.admin_app();
    let (s, body) = post(
        &env,
        &t,
        "accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        json!({"Targets": [
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "Bulk A", "accountnumber": "BULK-A"},
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "Bulk B", "revenue": 12.5},
        ]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(
        body["@odata.context"].as_str().unwrap().ends_with("$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
    );
    let ids: Vec<String> = body["Ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);
    let b = json_of(env.get(&t, &format!("accounts({})?$select=name,revenue", ids[1])).await).await;
    assert_eq!(b["name"], "Bulk B");
    assert_eq!(b["revenue"].as_f64(), Some(12.5));

    let (s, _) = post(
        &env,
        &t,
        "accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json!({"Targets": [
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": ids[0], "name": "Bulk A2"},
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": ids[1], "name": "Bulk B2"},
        ]}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let b = json_of(env.get(&t, &format!("accounts({})?$select=name", ids[0])).await).await;
    assert_eq!(b["name"], "Bulk A2");

    // Upsert: one existing by alternate key (updated), one new by alternate key (created).
    let before = count(&env, &t, "accounts").await;
    let (s, body) = post(
        &env,
        &t,
        "accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        json!({"Targets": [
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": "accounts(accountnumber='BULK-A')", "name": "Bulk A3"},
            {"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": "accounts(accountnumber='BULK-C')", "name": "Bulk C"},
        ]}),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(count(&env, &t, "accounts").await, before + 1);
    let b = json_of(env.get(&t, "accounts(accountnumber='BULK-A')?$select=name").await).await;
    assert_eq!(b["name"], "Bulk A3");
    let b = json_of(env.get(&t, "accounts(accountnumber='BULK-C')?$select=name,accountnumber").await).await;
    assert_eq!(b["name"], "Bulk C");
    assert_eq!(b["accountnumber"], "BULK-C");
}

#[tokio::test]
async fn one_bad_target_rolls_back_the_whole_message() {
    let env = start(10).await;
    let t = env.admin_app();
    let before = count(&env, &t, "contacts").await;
    let long = "x".repeat(5000);
    let (s, body) = post(
        &env,
        &t,
        "contacts/Microsoft.Dynamics.CRM.CreateMultiple",
        json!({"Targets": [
            {"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Fine"},
            {"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": long},
        ]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "0x80044331");
    assert_eq!(count(&env, &t, "contacts").await, before, "nothing was created");

    let (s, body) =
        post(&env, &t, "contacts/Microsoft.Dynamics.CRM.CreateMultiple", json!({"Targets": [{"lastname": "No type"}]}))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("@odata.type"));

    let (s, body) = post(
        &env,
        &t,
        "contacts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.contact", "contactid": "00000000-0000-0000-0000-0000000000ab", "lastname": "x"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");

    let (s, body) = post(&env, &t, "contacts/Microsoft.Dynamics.CRM.DeleteMultiple", json!({"Targets": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "DeleteMultiple has not yet been implemented.");

    // The least-privilege app may not create widgets, in bulk either.
    let (s, body) = post(
        &env,
        &env.integration(),
        "new_widgets/Microsoft.Dynamics.CRM.CreateMultiple",
        json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.new_widget", "new_name": "w"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn bypass_headers_need_the_bypass_privileges() {
    let env = start(5).await;
    let send = |token: String, header: &'static str, value: &'static str, body: Value| {
        let req = env.http.post(env.url("contacts/Microsoft.Dynamics.CRM.CreateMultiple")).bearer_auth(token);
        async move {
            let r = req.header(header, value).json(&body).send().await.unwrap();
            let s = r.status();
            let text = r.text().await.unwrap();
            (s, if text.is_empty() { Value::Null } else { serde_json::from_str::<Value>(&text).unwrap() })
        }
    };
    let target = |name: &str| json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": name}]});
    // The System Administrator role holds prvBypassCustomBusinessLogic and prvBypassCustomPlugins.
    for (h, v) in [
        ("MSCRM.BypassBusinessLogicExecution", "CustomSync,CustomAsync"),
        ("MSCRM.BypassBusinessLogicExecution", "CustomSync"),
        ("MSCRM.BypassCustomPluginExecution", "true"),
    ] {
        let (s, body) = send(env.admin_app(), h, v, target("Bypass admin")).await;
        assert_eq!(s, StatusCode::OK, "{h}: {body}");
    }
    // The least-privilege app may write contacts but not bypass custom logic.
    let (s, body) =
        send(env.integration(), "MSCRM.BypassBusinessLogicExecution", "CustomSync,CustomAsync", target("No")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "0x80040220");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("is missing prvBypassCustomBusinessLogic privilege (Id=0ea552b0-a491-4470-9a1b-82068deccf66)"),
        "{msg}"
    );
    let (s, body) = send(env.integration(), "MSCRM.BypassCustomPluginExecution", "true", target("No")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"].as_str().unwrap().contains("prvBypassCustomPlugins"));
    // Nothing was created by the refused requests; `false` needs no privilege.
    let (s, _) = send(env.integration(), "MSCRM.BypassCustomPluginExecution", "false", target("Fine")).await;
    assert_eq!(s, StatusCode::OK);
    let r = env.get(&env.admin_app(), "contacts?$select=lastname&$filter=lastname%20eq%20'No'").await;
    assert_eq!(json_of(r).await["value"].as_array().unwrap().len(), 0);
    let (s, body) = send(env.admin_app(), "MSCRM.BypassBusinessLogicExecution", "Everything", target("x")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    // Single requests and $batch parts are checked the same way.
    let r = env
        .http
        .post(env.url("contacts"))
        .bearer_auth(env.integration())
        .header("MSCRM.BypassBusinessLogicExecution", "CustomSync")
        .json(&json!({"lastname": "No"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn message_availability_probe_and_tables_without_bulk_messages() {
    let env = start(5).await;
    let t = env.admin_app();
    let probe = |message: &str, table: &str| {
        format!(
            "sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name%20eq%20@message%20and%20primaryobjecttypecode%20eq%20@table&@message='{message}'&@table='{table}'"
        )
    };
    let rows = |v: Value| v["value"].as_array().unwrap().len();
    assert_eq!(rows(json_of(env.get(&t, &probe("CreateMultiple", "account")).await).await), 1);
    assert_eq!(rows(json_of(env.get(&t, &probe("UpsertMultiple", "contact")).await).await), 1);
    assert_eq!(rows(json_of(env.get(&t, &probe("CreateMultiple", "team")).await).await), 0);
    assert_eq!(rows(json_of(env.get(&t, &probe("Create", "team")).await).await), 1);
    assert_eq!(rows(json_of(env.get(&t, &probe("DeleteMultiple", "account")).await).await), 0);
    let inline = "sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name%20eq%20'UpdateMultiple'%20and%20primaryobjecttypecode%20eq%20'contact'";
    assert_eq!(rows(json_of(env.get(&t, inline).await).await), 1);
    // An ordinary table: without a filter it lists every (message, table) pair.
    let all = json_of(env.get(&t, "sdkmessagefilters?$select=primaryobjecttypecode").await).await;
    assert!(all["value"].as_array().unwrap().iter().any(|f| f["primaryobjecttypecode"] == "team"), "{all}");

    let (s, body) = post(
        &env,
        &t,
        "teams/Microsoft.Dynamics.CRM.CreateMultiple",
        json!({"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.team", "name": "T"}]}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("does not support entities of type 'team'"));
}
