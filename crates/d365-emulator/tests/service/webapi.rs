//! Web API behaviour over real HTTPS with a plain HTTP client. Tokens are minted with the
//! emulator's signing key (the identity tests cover how they are obtained), so each test
//! targets exactly one Web API behaviour.

use crate::common;

use common::*;

#[tokio::test]
async fn unauthenticated_requests_get_the_authority_challenge() {
    let env = start(5).await;
    let r = env.http.get(env.url("WhoAmI")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    let ready = env.emu.ready();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization_uri={}/{}/oauth2/authorize, resource_id={}/",
            ready.authority, ready.tenant_id, ready.org_url
        )
    );
    let r = env.http.get(env.url("WhoAmI")).bearer_auth("not.a.jwt").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // An expired token is refused once the clock moves past expiry plus the skew.
    let t = env.integration();
    env.emu.state().clock.advance(3600 + 301);
    assert_eq!(env.get(&t, "WhoAmI").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn who_am_i_identifies_the_application_user_and_sends_dataverse_headers() {
    let env = start(5).await;
    let r = env.get(&env.integration(), "WhoAmI").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["odata-version"], "4.0");
    assert_eq!(r.headers()["x-ms-dop-hint"], "8");
    let remaining: u64 = r.headers()["x-ms-ratelimit-burst-remaining-xrm-requests"].to_str().unwrap().parse().unwrap();
    assert_eq!(remaining, 5999);
    let body = json_of(r).await;
    let app_user = d365_emulator::store::seed_ids::application_user_id(INTEGRATION_APP).to_string();
    assert_eq!(body["UserId"], app_user);
    assert_eq!(body["BusinessUnitId"], env.emu.state().config.dataverse.business_unit_id.to_string());
    assert!(body["@odata.context"].as_str().unwrap().ends_with("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse"));
}

#[tokio::test]
async fn crud_is_allowed_on_permitted_tables_and_forbidden_elsewhere() {
    let env = start(5).await;
    let t = env.integration();
    // Create (204 + OData-EntityId).
    let r = env
        .http
        .post(env.url("contacts"))
        .bearer_auth(&t)
        .json(&json!({"firstname": "Ada", "lastname": "Lovelace", "emailaddress1": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let entity = r.headers()["odata-entityid"].to_str().unwrap().to_string();
    let id = entity.rsplit('(').next().unwrap().trim_end_matches(')').to_string();
    assert!(entity.starts_with(&env.url("contacts(")));
    // Retrieve (ETag, computed fullname).
    let r = env.get(&t, &format!("contacts({id})?$select=fullname,emailaddress1")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body = json_of(r).await;
    assert_eq!(body["fullname"], "Ada Lovelace");
    assert_eq!(body["contactid"], id);
    assert_eq!(body["@odata.etag"], etag);
    // Update with a stale etag fails, with the current one succeeds.
    let r = env
        .http
        .patch(env.url(&format!("contacts({id})")))
        .bearer_auth(&t)
        .header("If-Match", "W/\"1\"")
        .json(&json!({"jobtitle": "Analyst"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = env
        .http
        .patch(env.url(&format!("contacts({id})")))
        .bearer_auth(&t)
        .header("If-Match", &etag)
        .json(&json!({"jobtitle": "Analyst"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Delete, then 404 with the Dataverse error body.
    let r = env.http.delete(env.url(&format!("contacts({id})"))).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = env.get(&t, &format!("contacts({id})")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(r).await["error"]["code"], "0x80040217");
    // The least-privilege role cannot create widgets or accounts.
    for (set, body) in [("new_widgets", json!({"new_name": "w"})), ("accounts", json!({"name": "a"}))] {
        let r = env.http.post(env.url(set)).bearer_auth(&t).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{set}");
        let e = json_of(r).await;
        assert_eq!(e["error"]["code"], "0x80040220");
        assert!(e["error"]["message"].as_str().unwrap().contains("is missing prvCreate"), "{e}");
    }
    let r = env.get(&t, "new_widgets").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_requests_get_dataverse_errors() {
    let env = start(5).await;
    let t = env.admin_app();
    let cases: Vec<(reqwest::Response, StatusCode, &str)> = vec![
        (env.get(&t, "nosuchset").await, StatusCode::NOT_FOUND, "0x8006088a"),
        (env.get(&t, "accounts?$select=nosuch").await, StatusCode::BAD_REQUEST, "0x80060888"),
        (env.get(&t, "accounts?$skip=10").await, StatusCode::BAD_REQUEST, "0x80060888"),
        (env.get(&t, "accounts?$top=-1").await, StatusCode::BAD_REQUEST, "0x80060888"),
        (env.get(&t, "accounts?$orderby=name%20sideways").await, StatusCode::BAD_REQUEST, "0x80060888"),
        (
            env.http
                .post(env.url("accounts"))
                .bearer_auth(&t)
                .body("{not json")
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "0x80048d19",
        ),
        (
            env.http
                .post(env.url("accounts"))
                .bearer_auth(&t)
                .json(&json!({"name": "x".repeat(161)}))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "0x80044331",
        ),
        (
            env.http
                .post(env.url("accounts"))
                .bearer_auth(&t)
                .json(&json!({"industrycode": 12345}))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "0x80044331",
        ),
        (
            env.http.post(env.url("accounts")).bearer_auth(&t).json(&json!({"revenue": "lots"})).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "0x80048d19",
        ),
        (
            env.http
                .post(env.url("accounts"))
                .bearer_auth(&t)
                .json(&json!({"primarycontactid@odata.bind": "/contacts(00000000-0000-0000-0000-0000000000ff)"}))
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "0x80040217",
        ),
        (
            // A system-required column left out of a create.
            env.http
                .post(env.url("transactioncurrencies"))
                .bearer_auth(&t)
                .json(&json!({"currencyname": "Euro"}))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "0x80044331",
        ),
    ];
    for (i, (r, status, code)) in cases.into_iter().enumerate() {
        assert_eq!(r.status(), status, "case {i}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "case {i}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "case {i}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "case {i}");
    }
    let r = env
        .http
        .post(env.url("transactioncurrencies"))
        .bearer_auth(&t)
        .json(&json!({"currencyname": "Euro"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("'isocurrencycode'"), "{body}");
    // Application-required columns (account.name) are left to the apps: the API takes the row.
    let r = env.http.post(env.url("accounts")).bearer_auth(&t).json(&json!({"revenue": 5})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = env
        .http
        .post(env.url("transactioncurrencies"))
        .bearer_auth(&t)
        .json(&json!({"currencyname": "Euro", "isocurrencycode": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn paging_follows_next_links_without_skipping_or_repeating_under_concurrent_writes() {
    let env = start(6000).await;
    let t = env.admin_app();
    let first = env
        .http
        .get(env.url("accounts?$select=name"))
        .bearer_auth(&t)
        .header("Prefer", "odata.maxpagesize=5000")
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["preference-applied"], "odata.maxpagesize=5000");
    let body = json_of(first).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 5000);
    let next = body["@odata.nextLink"].as_str().unwrap().to_string();
    assert!(next.contains("$skiptoken=%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%253caccountid%2520last%253d%2522%257b"), "{next}");
    let body =
        json_of(env.http.get(&next).bearer_auth(&t).header("Prefer", "odata.maxpagesize=5000").send().await.unwrap())
            .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1000);
    assert!(body.get("@odata.nextLink").is_none());

    // A page size above 5,000 is ignored, as Dataverse documents: the default page, no
    // Preference-Applied for it, and $top is then honoured as without the preference.
    let big = env
        .http
        .get(env.url("accounts?$select=name"))
        .bearer_auth(&t)
        .header("Prefer", "odata.maxpagesize=10000")
        .send()
        .await
        .unwrap();
    assert!(big.headers().get("preference-applied").is_none(), "{:?}", big.headers());
    assert_eq!(json_of(big).await["value"].as_array().unwrap().len(), 5000);
    let topped = env
        .http
        .get(env.url("accounts?$select=name&$top=3"))
        .bearer_auth(&t)
        .header("Prefer", "odata.maxpagesize=10000")
        .send()
        .await
        .unwrap();
    let body = json_of(topped).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 3);
    assert!(body.get("@odata.nextLink").is_none());

    // Small pages while rows are inserted and deleted between requests.
    let mut seen = std::collections::HashSet::new();
    let mut url = env.url("accounts?$select=accountnumber&$orderby=accountnumber%20desc");
    let mut deleted = None;
    let mut pages = 0;
    loop {
        let r = env.http.get(&url).bearer_auth(&t).header("Prefer", "odata.maxpagesize=700").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = json_of(r).await;
        for row in body["value"].as_array().unwrap() {
            assert!(seen.insert(row["accountid"].as_str().unwrap().to_string()), "row repeated: {row}");
        }
        pages += 1;
        if pages == 2 {
            for i in 0..50 {
                let r = env
                    .http
                    .post(env.url("accounts"))
                    .bearer_auth(&t)
                    .json(&json!({"name": format!("new {i}"), "accountnumber": format!("ZZZ-{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
            }
            let victim = d365_emulator::store::seed_ids::seeded_id(1, 17);
            let r = env.http.delete(env.url(&format!("accounts({victim})"))).bearer_auth(&t).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
            deleted = Some(victim);
        }
        match body["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    // Every seeded row except the deleted one was seen exactly once (descending order puts
    // the new ZZZ rows before the first page, so they are not part of this read).
    let deleted = deleted.unwrap();
    for i in 0..6000u64 {
        let id = d365_emulator::store::seed_ids::seeded_id(1, i);
        assert_eq!(seen.contains(&id), id != deleted, "row {i}");
    }
}

#[tokio::test]
async fn annotations_count_and_alternate_keys() {
    let env = start(20).await;
    let t = env.admin_app();
    let r = env
        .http
        .get(env.url("accounts(accountnumber='ACC-0000003')?$select=name,revenue,industrycode,_primarycontactid_value,_ownerid_value"))
        .bearer_auth(&t)
        .header("Prefer", "odata.include-annotations=\"*\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b = json_of(r).await;
    assert_eq!(b["accountid"], d365_emulator::store::seed_ids::seeded_id(1, 3));
    assert!(b["revenue@OData.Community.Display.V1.FormattedValue"].as_str().unwrap().starts_with('$'));
    assert_eq!(b["_primarycontactid_value@Microsoft.Dynamics.CRM.lookuplogicalname"], "contact");
    assert_eq!(b["_primarycontactid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"], "primarycontactid");
    assert!(b["_primarycontactid_value@OData.Community.Display.V1.FormattedValue"].as_str().unwrap().contains(' '));
    assert!(
        ["systemuser", "team"]
            .contains(&b["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"].as_str().unwrap())
    );
    let r = env.get(&t, "accounts?$count=true&$top=2&$select=name").await;
    let b = json_of(r).await;
    assert_eq!(b["@odata.count"], 20);
    assert_eq!(b["value"].as_array().unwrap().len(), 2);
    assert!(b.get("@odata.nextLink").is_none());
    let r = env.get(&t, "accounts/$count").await;
    // Raw bytes: the body starts with a UTF-8 byte order mark, as Dataverse's does (a
    // charset-decoding `text()` would drop it).
    assert_eq!(r.bytes().await.unwrap().as_ref(), "\u{feff}20".as_bytes());
}

#[tokio::test]
async fn impersonation_needs_the_delegate_privilege() {
    let env = start(5).await;
    let sales = env.emu.ready().users.iter().find(|u| u.username.starts_with("sales")).unwrap().clone();
    let r = env
        .http
        .get(env.url("WhoAmI"))
        .bearer_auth(env.admin_app())
        .header("MSCRMCallerID", &sales.systemuser_id)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["UserId"], sales.systemuser_id);
    let r = env
        .http
        .get(env.url("WhoAmI"))
        .bearer_auth(env.admin_app())
        .header("CallerObjectId", &sales.object_id)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["UserId"], sales.systemuser_id);
    // The sales user may not delete accounts (Salesperson), so neither may the impersonator.
    let victim = d365_emulator::store::seed_ids::seeded_id(1, 1);
    let r = env
        .http
        .delete(env.url(&format!("accounts({victim})")))
        .bearer_auth(env.admin_app())
        .header("MSCRMCallerID", &sales.systemuser_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Records created under impersonation record both users.
    let r = env
        .http
        .post(env.url("contacts"))
        .bearer_auth(env.admin_app())
        .header("MSCRMCallerID", &sales.systemuser_id)
        .header("Prefer", "return=representation")
        .json(&json!({"lastname": "Imp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = json_of(r).await;
    assert_eq!(b["_createdby_value"], sales.systemuser_id);
    assert_eq!(
        b["_createdonbehalfby_value"],
        d365_emulator::store::seed_ids::application_user_id(CERTIFICATE_APP).to_string()
    );
    // The least-privilege app cannot impersonate.
    let r = env
        .http
        .get(env.url("WhoAmI"))
        .bearer_auth(env.integration())
        .header("MSCRMCallerID", &sales.systemuser_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn upsert_by_key_honours_if_match_and_if_none_match() {
    let env = start(5).await;
    let t = env.admin_app();
    let id = "11111111-2222-4333-8444-555555555555";
    let r = env
        .http
        .patch(env.url(&format!("accounts({id})")))
        .bearer_auth(&t)
        .header("If-Match", "*")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = env
        .http
        .patch(env.url(&format!("accounts({id})")))
        .bearer_auth(&t)
        .json(&json!({"name": "created by upsert"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = env
        .http
        .patch(env.url(&format!("accounts({id})")))
        .bearer_auth(&t)
        .header("If-None-Match", "*")
        .json(&json!({"name": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = env
        .http
        .patch(env.url("accounts(accountnumber='NEW-1')"))
        .bearer_auth(&t)
        .json(&json!({"name": "by key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let b = json_of(env.get(&t, "accounts(accountnumber='NEW-1')?$select=name,accountnumber").await).await;
    assert_eq!(b["name"], "by key");
    let r = env
        .http
        .post(env.url("accounts"))
        .bearer_auth(&t)
        .json(&json!({"name": "dup", "accountnumber": "NEW-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(json_of(r).await["error"]["code"], "0x80040237");
}

#[tokio::test]
async fn metadata_is_served_and_owner_binds_to_teams() {
    let env = start(5).await;
    let t = env.admin_app();
    let r = env.get(&t, "$metadata").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("<EntityType Name=\"account\""));
    let r = env.get(&t, "EntityDefinitions(LogicalName='account')?$select=EntitySetName,PrimaryIdAttribute").await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = json_of(r).await;
    assert_eq!(b["EntitySetName"], "accounts");
    assert_eq!(b["PrimaryIdAttribute"], "accountid");
    let team = d365_emulator::store::seed_ids::SALES_TEAM_ID;
    let r = env
        .http
        .post(env.url("accounts"))
        .bearer_auth(&t)
        .header(
            "Prefer",
            "return=representation,odata.include-annotations=\"Microsoft.Dynamics.CRM.lookuplogicalname\"",
        )
        .json(&json!({"name": "team owned", "ownerid@odata.bind": format!("/teams({team})")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = json_of(r).await;
    assert_eq!(b["_ownerid_value"], team);
    assert_eq!(b["_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"], "team");
    assert_eq!(b["_owningteam_value"], team);
    assert!(b["_owninguser_value"].is_null());
}
