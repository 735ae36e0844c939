//! `$batch` over HTTPS: multipart/mixed in and out, atomic change sets with Content-ID
//! references, stop-at-first-error and `odata.continue-on-error`.

use crate::common;

use common::*;

fn part(method: &str, url: &str, body: Option<Value>, content_id: Option<u32>) -> String {
    let mut s = String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n");
    if let Some(id) = content_id {
        s.push_str(&format!("Content-ID: {id}\r\n"));
    }
    s.push_str(&format!("\r\n{method} {url} HTTP/1.1\r\n"));
    match body {
        Some(b) => s.push_str(&format!("Content-Type: application/json; type=entry\r\n\r\n{b}\r\n")),
        None => s.push_str("\r\n\r\n"),
    }
    s
}

fn change_set(boundary: &str, parts: &[String]) -> String {
    let mut s = format!("Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n");
    for p in parts {
        s.push_str(&format!("--{boundary}\r\n{p}"));
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

fn batch(items: &[String]) -> String {
    let mut s = String::new();
    for i in items {
        s.push_str(&format!("--batch_AAA\r\n{i}"));
    }
    s.push_str("--batch_AAA--\r\n");
    s
}

async fn send(env: &Env, token: &str, body: String, prefer: Option<&str>) -> (StatusCode, String) {
    let mut r = env
        .http
        .post(env.url("$batch"))
        .bearer_auth(token)
        .header("Content-Type", "multipart/mixed; boundary=batch_AAA");
    if let Some(p) = prefer {
        r = r.header("Prefer", p);
    }
    let r = r.body(body).send().await.unwrap();
    let s = r.status();
    assert!(
        r.headers()["content-type"].to_str().unwrap().starts_with("multipart/mixed; boundary=batchresponse_")
            || !s.is_success()
    );
    (s, r.text().await.unwrap())
}

async fn count_named(env: &Env, token: &str, set: &str, field: &str, name: &str) -> usize {
    let f = percent_encoding::utf8_percent_encode(&format!("{field} eq '{name}'"), percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    json_of(env.get(token, &format!("{set}?$filter={f}")).await).await["value"].as_array().unwrap().len()
}

#[tokio::test]
async fn change_set_with_references_commits_atomically() {
    let env = start(5).await;
    let t = env.admin_app();
    let cs = change_set(
        "changeset_BBB",
        &[
            part("POST", "/api/data/v9.2/accounts", Some(json!({"name": "Batch Parent"})), Some(1)),
            part(
                "POST",
                "contacts",
                Some(json!({"lastname": "Batch Child", "parentcustomerid_account@odata.bind": "$1"})),
                Some(2),
            ),
            part("PATCH", "$1", Some(json!({"telephone1": "555-0100"})), Some(3)),
        ],
    );
    let get = part("GET", "/api/data/v9.2/accounts?$select=name&$filter=name%20eq%20'Batch%20Parent'", None, None);
    let (s, text) = send(&env, &t, batch(&[cs, get]), None).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(text.matches("HTTP/1.1 204 No Content").count(), 3, "{text}");
    assert!(text.contains("Content-ID: 2"));
    assert!(text.contains("OData-EntityId: "));
    assert!(text.contains("HTTP/1.1 200 OK"));
    assert!(text.contains("\"name\":\"Batch Parent\""), "the GET after the change set sees its rows: {text}");
    let acc = json_of(env.get(&t, "accounts?$select=telephone1&$filter=name%20eq%20'Batch%20Parent'").await).await;
    assert_eq!(acc["value"][0]["telephone1"], "555-0100");
    let id = acc["value"][0]["accountid"].as_str().unwrap();
    let kids = json_of(env.get(&t, &format!("accounts({id})/contact_customer_accounts?$select=lastname")).await).await;
    assert_eq!(kids["value"][0]["lastname"], "Batch Child");
}

#[tokio::test]
async fn a_failing_change_set_rolls_back_and_stops_the_batch() {
    let env = start(5).await;
    let t = env.admin_app();
    let cs = change_set(
        "changeset_CCC",
        &[
            part("POST", "accounts", Some(json!({"name": "Doomed"})), Some(1)),
            part("POST", "contacts", Some(json!({"lastname": "x".repeat(500)})), Some(2)),
        ],
    );
    let after = part("POST", "accounts", Some(json!({"name": "Never"})), None);
    let (s, text) = send(&env, &t, batch(&[cs.clone(), after.clone()]), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("0x80044331"), "{text}");
    assert_eq!(count_named(&env, &t, "accounts", "name", "Doomed").await, 0, "rolled back");
    assert_eq!(count_named(&env, &t, "accounts", "name", "Never").await, 0, "processing stopped");

    // With continue-on-error the next part still runs.
    let (s, text) = send(&env, &t, batch(&[cs, after]), Some("odata.continue-on-error")).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(count_named(&env, &t, "accounts", "name", "Doomed").await, 0);
    assert_eq!(count_named(&env, &t, "accounts", "name", "Never").await, 1);

    // Unknown references, GET in a change set, bad content type.
    let cs = change_set("changeset_D", &[part("PATCH", "$7", Some(json!({"name": "x"})), Some(1))]);
    let (s, text) = send(&env, &t, batch(&[cs]), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text.contains("Content-ID Reference: '$7' does not exist in the batch context."), "{text}");
    let cs = change_set("changeset_E", &[part("GET", "accounts", None, Some(1))]);
    let (s, _) = send(&env, &t, batch(&[cs]), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = env
        .http
        .post(env.url("$batch"))
        .bearer_auth(&t)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}
