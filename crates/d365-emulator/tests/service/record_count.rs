//! `RetrieveTotalRecordCount`: the rows of several tables in one call, inline or through a
//! parameter alias, declared in `$metadata`, with Dataverse's errors for unknown tables, a
//! missing parameter and tables the caller may not read.

use crate::common;

use common::*;

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn count_of(env: &Env, token: &str, set: &str) -> i64 {
    let r = env.get(token, &format!("{set}/$count")).await;
    r.text().await.unwrap().trim_start_matches('\u{feff}').parse().unwrap()
}

#[tokio::test]
async fn counts_of_several_tables_in_one_call() {
    let env = start(1234).await;
    let admin = env.admin_app();
    let r = env.get(&admin, &format!("RetrieveTotalRecordCount(EntityNames={})", enc("['account','contact']"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Microsoft.Dynamics.CRM.RetrieveTotalRecordCountResponse"),
        "{body}"
    );
    let c = &body["EntityRecordCountCollection"];
    assert_eq!(c["Count"], 2);
    assert_eq!(c["IsReadOnly"], false);
    assert_eq!(c["Keys"], json!(["account", "contact"]));
    assert_eq!(c["Values"][0], 1234);
    assert_eq!(c["Values"][1].as_i64().unwrap(), count_of(&env, &admin, "contacts").await);

    // The same through a parameter alias, as a JSON array; past $count's 5,000 cap too.
    let r = env.get(&admin, &format!("RetrieveTotalRecordCount(EntityNames=@p1)?@p1={}", enc("[\"account\"]"))).await;
    let body = json_of(r).await;
    assert_eq!(body["EntityRecordCountCollection"]["Values"], json!([1234]), "{body}");

    // Declared in $metadata, with its parameter and return type.
    let metadata = env.get(&admin, "$metadata").await.text().await.unwrap();
    for needle in [
        "<Function Name=\"RetrieveTotalRecordCount\">",
        "<Parameter Name=\"EntityNames\" Type=\"Collection(Edm.String)\"",
        "<ComplexType Name=\"EntityRecordCountCollection\">",
        "<FunctionImport Name=\"RetrieveTotalRecordCount\"",
    ] {
        assert!(metadata.contains(needle), "{needle}");
    }
}

#[tokio::test]
async fn unknown_tables_missing_parameters_and_unreadable_tables_are_refused() {
    let env = start(10).await;
    let admin = env.admin_app();
    let r = env.get(&admin, &format!("RetrieveTotalRecordCount(EntityNames={})", enc("['account','nosuch']"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = json_of(r).await;
    assert_eq!(body["error"]["code"], "0x80041102", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'nosuch'"), "{body}");

    for bad in ["RetrieveTotalRecordCount", "RetrieveTotalRecordCount(Names=['account'])"] {
        let r = env.get(&admin, &enc(bad).replace("%28", "(").replace("%29", ")")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body = json_of(r).await;
        assert!(body["error"]["message"].as_str().unwrap().contains("EntityNames"), "{bad}: {body}");
    }
    let r = env.get(&admin, &format!("RetrieveTotalRecordCount(EntityNames={})", enc("account"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The Integration app's role reads accounts but not widgets: refused as a read of widgets is.
    let integration = env.integration();
    let read = env.get(&integration, "new_widgets?$top=1").await;
    let r = env
        .get(&integration, &format!("RetrieveTotalRecordCount(EntityNames={})", enc("['account','new_widget']")))
        .await;
    assert_eq!(r.status(), read.status());
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(r).await["error"]["code"], json_of(read).await["error"]["code"]);
    let r = env.get(&integration, &format!("RetrieveTotalRecordCount(EntityNames={})", enc("['account']"))).await;
    assert_eq!(json_of(r).await["EntityRecordCountCollection"]["Values"], json!([10]));
}
