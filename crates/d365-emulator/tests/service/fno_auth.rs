//! F&O authentication: Entra tokens for `/fno` and the HR legacy path, the Entra-applications
//! registry, AD FS for `/fno-onprem`, and service protection.

use crate::fno_common::*;
use d365_emulator::webapi::limits::LimitSettings;

/// Form fields of a token request.
type Form<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn fno_app_only_entra_token_reads_customers_of_the_default_company() {
    let env = start_fno(50).await;
    let ready = serde_json::to_value(env.emu.ready()).unwrap();
    let port = env.emu.port();
    assert_eq!(ready["fno"]["org_url"], format!("https://localhost:{port}/fno"));
    assert_eq!(ready["fno"]["data"], format!("https://localhost:{port}/fno/data"));
    assert_eq!(ready["fno"]["companies"], json!(["usmf", "usrt", "demf", "gbsi"]));
    assert_eq!(ready["fno"]["unregistered_app"], "fno-unregistered");
    assert_eq!(ready["fno"]["hr_resource"], "http://hr.talent.dynamics.com");
    let t = fno_token(&env).await;
    let body = get_json(&env, &t, &fno(&env, "data/CustomersV3"), StatusCode::OK).await;
    assert_eq!(body["@odata.context"], fno(&env, "data/$metadata#CustomersV3"));
    let rows = body["value"].as_array().unwrap();
    assert_eq!(rows.len(), 30, "split(50) puts 30 customers in usmf");
    assert!(rows.iter().all(|r| r["dataAreaId"] == "usmf"));
    let first = &rows[0];
    assert_eq!(first["CustomerAccount"], "US-001");
    assert!(first["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    assert_eq!(first["IsSalesTaxIncludedInPrice@odata.type"], "#Microsoft.Dynamics.DataEntities.NoYes");
    let modified = first["ModifiedDateTime"].as_str().unwrap();
    assert!(modified.len() == 20 && modified.ends_with('Z'), "{modified}");
    // The same token by the 127.0.0.1 spelling of the environment.
    let alt = format!("https://127.0.0.1:{port}/fno/data/CustomersV3?$top=1");
    let body = get_json(&env, &t, &alt, StatusCode::OK).await;
    assert_eq!(body["@odata.context"], format!("https://127.0.0.1:{port}/fno/data/$metadata#CustomersV3"));
}

#[tokio::test]
async fn fno_refuses_unregistered_apps_and_other_audiences() {
    let env = start_fno(10).await;
    let fno_url = env.emu.ready().fno.org_url.clone();
    let scope = format!("{fno_url}/.default");
    // Entra ID issues the token: the app is in the tenant. F&O does not know it.
    let t = entra_token(&env, "fno-unregistered", &scope).await;
    let r = get(&env, &t, &fno(&env, "data/CustomersV3")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let msg = fno_error(&r.json().await.unwrap());
    assert!(msg.contains("not registered"), "{msg}");
    // A Dataverse token is refused by F&O, and an F&O token by Dataverse.
    let dv = entra_token(&env, "integration", &format!("{}/.default", env.emu.ready().org_url)).await;
    assert_eq!(get(&env, &dv, &fno(&env, "data/CustomersV3")).await.status(), StatusCode::UNAUTHORIZED);
    let f = fno_token(&env).await;
    let whoami = format!("{}/WhoAmI", env.emu.ready().webapi);
    assert_eq!(get(&env, &f, &whoami).await.status(), StatusCode::UNAUTHORIZED);
    // No token at all, and the metadata service needs one too.
    let r = env.http.get(fno(&env, "data/CustomersV3")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(
        env.http.get(fno(&env, "Metadata/DataEntities")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Every worker app is registered, and delegated users map by UPN to their company.
    let env2 = start(EmulatorOptions { rows: 0, fno_rows: Some(10), app_users: 2, ..Default::default() }).await;
    assert_eq!(env2.emu.fno().registered_apps, ["integration", "certificate", "worker-1", "worker-2"]);
    let w = entra_token(&env2, "worker-2", &format!("{}/.default", env2.emu.ready().fno.org_url)).await;
    assert_eq!(get(&env2, &w, &fno(&env2, "data/LegalEntities")).await.status(), StatusCode::OK);
    let sales = delegated_token(&env, "sales@contoso.onmicrosoft.com", &fno_url);
    let body = get_json(&env, &sales, &fno(&env, "data/CustomersV3"), StatusCode::OK).await;
    let rows = body["value"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["dataAreaId"] == "usrt"), "{body}");
}

#[tokio::test]
async fn fno_adfs_grants_reach_the_onprem_environment_only() {
    let env = start_fno(10).await;
    let r = env.emu.ready().clone();
    let doc =
        get_json(&env, "", &format!("{}/.well-known/openid-configuration", r.fno.adfs_authority), StatusCode::OK).await;
    assert_eq!(doc["issuer"], r.fno.adfs_authority);
    assert_eq!(doc["token_endpoint"], format!("{}/oauth2/token", r.fno.adfs_authority));
    assert!(doc["grant_types_supported"].as_array().unwrap().contains(&json!("password")));
    let keys = get_json(&env, "", doc["jwks_uri"].as_str().unwrap(), StatusCode::OK).await;
    assert_eq!(keys["keys"][0]["kty"], "RSA");

    let t = onprem_token(&env).await;
    let onprem = format!("{}/data/CustomersV3?$top=2", r.fno.onprem_url);
    let body = get_json(&env, &t, &onprem, StatusCode::OK).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    // The AD FS token is not an Entra token, and the reverse.
    assert_eq!(get(&env, &t, &fno(&env, "data/CustomersV3")).await.status(), StatusCode::UNAUTHORIZED);
    let entra = fno_token(&env).await;
    assert_eq!(get(&env, &entra, &onprem).await.status(), StatusCode::UNAUTHORIZED);

    let app = r.app("integration").unwrap();
    let secret = app.client_secret.clone().unwrap();
    for user in ["admin@contoso.onmicrosoft.com", "CONTOSO\\admin"] {
        let (status, body) = adfs(
            &env,
            &[
                ("grant_type", "password"),
                ("client_id", &app.client_id),
                ("client_secret", &secret),
                ("username", user),
                ("password", "Admin#Pass1"),
                ("resource", &r.fno.onprem_url),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{user}: {body}");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["resource"], r.fno.onprem_url);
        assert!(body["refresh_token"].is_string() && body["expires_in"].as_i64().unwrap() > 0);
        let ut = body["access_token"].as_str().unwrap();
        assert_eq!(get(&env, ut, &onprem).await.status(), StatusCode::OK);
        let (status, refreshed) = adfs(
            &env,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &app.client_id),
                ("client_secret", &secret),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{refreshed}");
    }
    let cases: [(Form<'_>, StatusCode, &str, &str); 5] = [
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", "wrong"),
                ("resource", &r.fno.onprem_url),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "MSIS9622",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "00000000-0000-0000-0000-000000000001"),
                ("client_secret", "x"),
                ("resource", &r.fno.onprem_url),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "MSIS9607",
        ),
        (
            &[
                ("grant_type", "password"),
                ("client_id", &app.client_id),
                ("client_secret", &secret),
                ("username", "admin@contoso.onmicrosoft.com"),
                ("password", "nope"),
                ("resource", &r.fno.onprem_url),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "MSIS9659",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", &secret),
                ("resource", "https://elsewhere.example"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            "MSIS",
        ),
        (
            &[("grant_type", "client_credentials"), ("client_id", &app.client_id), ("client_secret", &secret)],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "resource",
        ),
    ];
    for (form, status, error, text) in cases {
        let (s, body) = adfs(&env, form).await;
        assert_eq!((s, body["error"].as_str().unwrap()), (status, error), "{body}");
        assert!(body["error_description"].as_str().unwrap().contains(text), "{body}");
    }
}

#[tokio::test]
async fn fno_hr_legacy_path_takes_the_hr_resource() {
    let env = start_fno(100).await;
    let r = env.emu.ready().clone();
    assert!(r.fno.hr_legacy_url.contains("/namespaces/"));
    let hr = entra_token(&env, "integration", "http://hr.talent.dynamics.com/.default").await;
    let url = format!("{}/data/Workers", r.fno.hr_legacy_url);
    let body = get_json(&env, &hr, &url, StatusCode::OK).await;
    assert_eq!(body["value"].as_array().unwrap().len(), 10);
    assert_eq!(body["value"][0]["Gender@odata.type"], "#Microsoft.Dynamics.DataEntities.HcmPersonGender");
    // An F&O token is fine there too; the HR token is not an F&O token.
    let f = fno_token(&env).await;
    assert_eq!(get(&env, &f, &url).await.status(), StatusCode::OK);
    assert_eq!(get(&env, &hr, &fno(&env, "data/Workers")).await.status(), StatusCode::UNAUTHORIZED);
    let port = env.emu.port();
    let other = format!("https://localhost:{port}/namespaces/00000000-0000-0000-0000-000000000000/data/Workers");
    assert_eq!(get(&env, &hr, &other).await.status(), StatusCode::NOT_FOUND);
    let meta =
        get_json(&env, &hr, &format!("{}/Metadata/PublicEntities('Worker')", r.fno.hr_legacy_url), StatusCode::OK)
            .await;
    assert_eq!(meta["EntitySetName"], "Workers");
}

#[tokio::test]
async fn fno_throttles_with_its_own_message_but_not_onprem() {
    let limits = LimitSettings { requests: 3, window_secs: 60, ..Default::default() };
    let env = start(EmulatorOptions { rows: 0, fno_rows: Some(10), limits, ..Default::default() }).await;
    let t = fno_token(&env).await;
    for _ in 0..3 {
        assert_eq!(get(&env, &t, &fno(&env, "data/LegalEntities")).await.status(), StatusCode::OK);
    }
    let r = get(&env, &t, &fno(&env, "data/LegalEntities")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let msg = fno_error(&r.json().await.unwrap());
    assert_eq!(
        msg,
        format!(
            "This request could not be processed at this time due to system experiencing high resource utilization. \
             Retry the request after {retry} seconds"
        )
    );
    // The Dataverse budget of the same app is separate.
    let dv = entra_token(&env, "integration", &format!("{}/.default", env.emu.ready().org_url)).await;
    let whoami = format!("{}/WhoAmI", env.emu.ready().webapi);
    assert_eq!(get(&env, &dv, &whoami).await.status(), StatusCode::OK);
    // On-premises has no service protection.
    let op = onprem_token(&env).await;
    for _ in 0..8 {
        let url = format!("{}/data/LegalEntities", env.emu.ready().fno.onprem_url);
        assert_eq!(get(&env, &op, &url).await.status(), StatusCode::OK);
    }
    // The window slides on the emulator clock.
    env.emu.state().clock.advance(61);
    let t = fno_token(&env).await;
    assert_eq!(get(&env, &t, &fno(&env, "data/LegalEntities")).await.status(), StatusCode::OK);
}
