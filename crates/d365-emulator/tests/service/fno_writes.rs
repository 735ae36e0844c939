//! F&O writes: composite keys, validation failures as 500 write errors, ETags, `$batch`.

use crate::fno_common::*;

async fn send(env: &Env, t: &str, method: reqwest::Method, url: &str, body: Option<Value>) -> reqwest::Response {
    let mut r = env.http.request(method, url).bearer_auth(t);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn fno_composite_key_get_patch_delete() {
    let env = start_fno(50).await;
    let t = fno_token(&env).await;
    // Keys in any order; another company's record needs cross-company for a read.
    let url = fno(&env, "data/CustomersV3(CustomerAccount='RT-002',dataAreaId='usrt')");
    assert_eq!(get(&env, &t, &url).await.status(), StatusCode::NOT_FOUND);
    let rec = get(&env, &t, &format!("{url}?cross-company=true")).await;
    assert_eq!(rec.status(), StatusCode::OK);
    let etag = rec.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = rec.json().await.unwrap();
    assert_eq!(body["@odata.etag"], etag.as_str());
    assert!(body["@odata.context"].as_str().unwrap().ends_with("#CustomersV3/$entity"));
    let before = body["ModifiedDateTime"].as_str().unwrap().to_string();

    let r = send(
        &env,
        &t,
        reqwest::Method::PATCH,
        &url,
        Some(json!({"OrganizationName": "Renamed", "CreditLimit": 1234.5})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let after = get_json(&env, &t, &format!("{url}?cross-company=true"), StatusCode::OK).await;
    assert_eq!((after["OrganizationName"].as_str(), after["CreditLimit"].as_f64()), (Some("Renamed"), Some(1234.5)));
    assert!(after["ModifiedDateTime"].as_str().unwrap() > before.as_str());
    // A stale If-Match: 412; a key change: 400; a bad enum member: 400.
    let stale = env
        .http
        .patch(&url)
        .bearer_auth(&t)
        .header("If-Match", &etag)
        .json(&json!({"CreditLimit": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    fno_error(&stale.json().await.unwrap());
    let r = send(&env, &t, reqwest::Method::PATCH, &url, Some(json!({"CustomerAccount": "X"}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = send(&env, &t, reqwest::Method::PATCH, &url, Some(json!({"OnHoldStatus": "Sometimes"}))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let ok = env
        .http
        .patch(&url)
        .bearer_auth(&t)
        .header("If-Match", &new_etag)
        .json(&json!({"OnHoldStatus": "All"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);

    // PUT replaces: what it leaves out goes back to its default.
    let put = send(&env, &t, reqwest::Method::PUT, &url, Some(json!({"CustomerGroupId": "20"}))).await;
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let replaced = get_json(&env, &t, &format!("{url}?cross-company=true"), StatusCode::OK).await;
    assert_eq!((replaced["OrganizationName"].as_str(), replaced["OnHoldStatus"].as_str()), (Some(""), Some("No")));
    assert_eq!(replaced["CustomerGroupId"], "20");

    assert_eq!(send(&env, &t, reqwest::Method::DELETE, &url, None).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&env, &t, &format!("{url}?cross-company=true")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(send(&env, &t, reqwest::Method::DELETE, &url, None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fno_create_validates_like_the_entity() {
    let env = start_fno(20).await;
    let t = fno_token(&env).await;
    let set = fno(&env, "data/CustomersV3");
    let new = json!({
        "CustomerAccount": "US-900", "OrganizationName": "New Co", "CustomerGroupId": "10",
        "IsSalesTaxIncludedInPrice": "Yes", "IsSalesTaxIncludedInPrice@odata.type": "#Microsoft.Dynamics.DataEntities.NoYes",
        "CreditLimit": 500
    });
    let r = send(&env, &t, reqwest::Method::POST, &set, Some(new.clone())).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("etag").is_some());
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        fno(&env, "data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-900')")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["dataAreaId"].as_str(), body["IsSalesTaxIncludedInPrice"].as_str()), (Some("usmf"), Some("Yes")));
    assert!(body["CreatedDateTime"].as_str().unwrap().starts_with("20"));
    // The same key again (any case): 500 write failure.
    let dup = send(
        &env,
        &t,
        reqwest::Method::POST,
        &set,
        Some(json!({"CustomerAccount": "us-900", "CustomerGroupId": "10"})),
    )
    .await;
    assert_eq!(dup.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let b: Value = dup.json().await.unwrap();
    let msg = fno_error(&b);
    assert_eq!(
        b["error"]["innererror"]["type"],
        "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
    );
    assert!(msg.starts_with("Write failed for table row of type 'CustCustomerV3Entity'. Infolog: "), "{msg}");
    assert!(msg.contains("The record already exists."), "{msg}");
    // A customer group the company does not have: 500; unknown property and bad enum: 400.
    let bad = send(
        &env,
        &t,
        reqwest::Method::POST,
        &set,
        Some(json!({"CustomerAccount": "US-901", "CustomerGroupId": "ZZ"})),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(fno_error(&bad.json().await.unwrap()).contains("'ZZ'"));
    let missing = send(&env, &t, reqwest::Method::POST, &set, Some(json!({"CustomerAccount": "US-902"}))).await;
    assert_eq!(missing.status(), StatusCode::INTERNAL_SERVER_ERROR);
    for body in
        [json!({"CustomerAccount": "US-903", "Nope": 1}), json!({"CustomerAccount": "US-903", "CustomerType": "Robot"})]
    {
        let r = send(&env, &t, reqwest::Method::POST, &set, Some(body)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        fno_error(&r.json().await.unwrap());
    }
    // Another company by its dataAreaId; it needs its own customer groups (every company has 10).
    let r = send(
        &env,
        &t,
        reqwest::Method::POST,
        &set,
        Some(json!({"dataAreaId": "DEMF", "CustomerAccount": "DE-900", "CustomerGroupId": "10"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["dataAreaId"], "demf");
}

fn batch_body(boundary: &str, changeset: &str, parts: &[(&str, &str, Value)]) -> String {
    let mut s = format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n");
    for (i, (method, url, body)) in parts.iter().enumerate() {
        s.push_str(&format!(
            "--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {}\r\n\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{body}\r\n",
            i + 1
        ));
    }
    s.push_str(&format!("--{changeset}--\r\n--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET CustomersV3/$count HTTP/1.1\r\n\r\n\r\n--{boundary}--\r\n"));
    s
}

#[tokio::test]
async fn fno_batch_change_sets_are_atomic() {
    let env = start_fno(20).await;
    let t = fno_token(&env).await;
    let data = env.emu.fno().data.clone();
    let post = |body: String| {
        env.http
            .post(format!("{data}/$batch"))
            .bearer_auth(&t)
            .header("Content-Type", "multipart/mixed; boundary=batch_1")
            .body(body)
            .send()
    };
    // The second request fails (duplicate): the first is not applied; the batch is still 200.
    let body = batch_body(
        "batch_1",
        "changeset_1",
        &[
            ("POST", &format!("{data}/CustomersV3"), json!({"CustomerAccount": "US-950", "CustomerGroupId": "10"})),
            ("POST", "CustomersV3", json!({"CustomerAccount": "US-001", "CustomerGroupId": "10"})),
        ],
    );
    let r = post(body).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("HTTP/1.1 500"), "{text}");
    assert!(text.contains("The record already exists."), "{text}");
    assert!(text.contains("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n12"), "later parts run: {text}");
    let url = fno(&env, "data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-950')");
    assert_eq!(get(&env, &t, &url).await.status(), StatusCode::NOT_FOUND, "rolled back");
    // Both valid: both applied, and the change set answers each with 201.
    let body = batch_body(
        "batch_1",
        "changeset_2",
        &[
            ("POST", "/fno/data/CustomersV3", json!({"CustomerAccount": "US-950", "CustomerGroupId": "10"})),
            (
                "PATCH",
                "CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')",
                json!({"OrganizationName": "Batched"}),
            ),
        ],
    );
    let text = post(body).await.unwrap().text().await.unwrap();
    assert!(text.contains("HTTP/1.1 201 Created") && text.contains("HTTP/1.1 204 No Content"), "{text}");
    assert!(text.contains("\r\n\r\n13\r\n"), "the count after the change set: {text}");
    assert_eq!(get(&env, &t, &url).await.status(), StatusCode::OK);
    let bad = post("no boundary here".into()).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
