//! F&O reads: company scoping, the filter dialect, options, paging, expand, metadata, and
//! malformed requests.

use crate::fno_common::*;

fn values(body: &Value) -> &Vec<Value> {
    body["value"].as_array().expect("value array")
}

#[tokio::test]
async fn fno_company_scoping_and_the_filter_dialect() {
    let env = start_fno(50).await;
    let t = fno_token(&env).await;
    let q = |p: &str| fno(&env, &format!("data/CustomersV3?{p}"));
    let all = get_json(&env, &t, &q("cross-company=true&$count=true"), StatusCode::OK).await;
    assert_eq!(all["@odata.count"], 50);
    let rt = get_json(&env, &t, &q("cross-company=true&$filter=dataAreaId eq 'usrt'"), StatusCode::OK).await;
    assert_eq!(values(&rt).len(), 10);
    // Without cross-company the read stays in the caller's default company (usmf).
    let none = get_json(&env, &t, &q("$filter=dataAreaId eq 'usrt'"), StatusCode::OK).await;
    assert_eq!(values(&none).len(), 0);
    let count = get(&env, &t, &fno(&env, "data/CustomersV3/$count?cross-company=true")).await;
    assert_eq!(count.headers()["content-type"], "text/plain");
    assert_eq!(count.text().await.unwrap(), "50");

    // Enum literals with eq / ne, and the two together cover every row.
    let yes = get_json(
        &env,
        &t,
        &q("$count=true&$filter=IsSalesTaxIncludedInPrice eq Microsoft.Dynamics.DataEntities.NoYes'Yes'"),
        StatusCode::OK,
    )
    .await;
    let no = get_json(
        &env,
        &t,
        &q("$count=true&$filter=IsSalesTaxIncludedInPrice ne Microsoft.Dynamics.DataEntities.NoYes'Yes'"),
        StatusCode::OK,
    )
    .await;
    assert!(values(&yes).iter().all(|r| r["IsSalesTaxIncludedInPrice"] == "Yes"));
    assert_eq!(yes["@odata.count"].as_i64().unwrap() + no["@odata.count"].as_i64().unwrap(), 30);
    // Wildcards, case-insensitive.
    let w = get_json(&env, &t, &q("$filter=CustomerAccount eq 'us-00*'"), StatusCode::OK).await;
    assert_eq!(values(&w).len(), 9);
    let w =
        get_json(&env, &t, &q("$filter=CustomerAccount eq '*-01*' and CustomerAccount ne '*5'"), StatusCode::OK).await;
    assert_eq!(values(&w).len(), 9, "US-010..US-019 without US-015");
    // Unquoted date-times, $select, $orderby (several keys), $top, $skip.
    let d = get_json(
        &env,
        &t,
        &q("$filter=ModifiedDateTime ge 2024-01-01T00:00:00Z and (CreditLimit gt 0 or not (CreditLimit gt 0))&$select=CustomerAccount,CreditLimit&$orderby=CreditLimit desc,CustomerAccount&$top=5&$skip=1"),
        StatusCode::OK,
    )
    .await;
    let rows = values(&d);
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["@odata.etag", "CustomerAccount", "CreditLimit"]
    );
    assert!(rows.windows(2).all(|w| w[0]["CreditLimit"].as_f64() >= w[1]["CreditLimit"].as_f64()));
    assert!(d["@odata.context"].as_str().unwrap().ends_with("#CustomersV3(CustomerAccount,CreditLimit)"));
    assert!(d.get("@odata.nextLink").is_none(), "$top below the page size: no next link");

    // Refused: in, has, functions, enum with gt, $apply, bad syntax.
    for (p, text) in [
        ("$filter=dataAreaId in ('usmf','usrt')", "'has' and 'in' are not supported"),
        ("$filter=CustomerType has Microsoft.Dynamics.DataEntities.CustVendorPartyType'Person'", "'has' and 'in'"),
        ("$filter=contains(OrganizationName,'a')", "wildcard"),
        ("$filter=OnHoldStatus gt Microsoft.Dynamics.DataEntities.CustVendorBlocked'No'", "eq and ne"),
        ("$filter=CustomerAccount eq", "not valid"),
        ("$apply=aggregate($count as n)", "$apply"),
        ("$filter=Nope eq 1", "Nope"),
        ("$select=Nope", "Nope"),
        ("$top=-1", "$top"),
        ("$top=99999999999999999999999", "$top"),
        ("cross-company=maybe", "cross-company"),
    ] {
        let r = get(&env, &t, &q(p)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{p}");
        let msg = fno_error(&r.json().await.unwrap());
        assert!(msg.contains(text), "{p}: {msg}");
    }
}

#[tokio::test]
async fn fno_pages_of_ten_thousand_with_skip_next_links() {
    // 10,002 customers → 5,001 orders → 10,002 lines.
    let env = start_fno(10_002).await;
    let t = fno_token(&env).await;
    let first = get_json(
        &env,
        &t,
        &fno(&env, "data/SalesOrderLines?cross-company=true&$select=InventoryLotId"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(values(&first).len(), 10_000);
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert_eq!(next, fno(&env, "data/SalesOrderLines?cross-company=true&$select=InventoryLotId&$skip=10000"));
    let second = get_json(&env, &t, next, StatusCode::OK).await;
    assert_eq!(values(&second).len(), 2);
    assert!(second.get("@odata.nextLink").is_none());
    let mut ids: Vec<String> = values(&first)
        .iter()
        .chain(values(&second))
        .map(|r| r["InventoryLotId"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_002, "no row twice, none missing");
    // A $top above the page size comes back reduced in the next link.
    let topped = get_json(
        &env,
        &t,
        &fno(&env, "data/SalesOrderLines?cross-company=true&$top=10001&$select=LineNumber"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(values(&topped).len(), 10_000);
    assert!(topped["@odata.nextLink"].as_str().unwrap().ends_with("&$skip=10000&$top=1"));
    // Prefer: odata.maxpagesize does not change the page size.
    let r = env
        .http
        .get(fno(&env, "data/SalesOrderLines?cross-company=true&$select=LineNumber"))
        .bearer_auth(&t)
        .header("Prefer", "odata.maxpagesize=100")
        .send()
        .await
        .unwrap();
    assert_eq!(values(&r.json().await.unwrap()).len(), 10_000);
}

#[tokio::test]
async fn fno_expand_one_level_and_record_navigation() {
    let env = start_fno(20).await;
    let t = fno_token(&env).await;
    let h = get_json(
        &env,
        &t,
        &fno(&env, "data/SalesOrderHeadersV2?$top=3&$select=SalesOrderNumber,SalesOrderLines&$expand=SalesOrderLines($select=LineNumber,SalesOrderNumber)"),
        StatusCode::OK,
    )
    .await;
    for head in values(&h) {
        assert_eq!(head.as_object().unwrap().len(), 3, "etag, the selected property and the expansion: {head}");
        let lines = head["SalesOrderLines"].as_array().unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["SalesOrderNumber"] == head["SalesOrderNumber"]));
    }
    let l =
        get_json(&env, &t, &fno(&env, "data/SalesOrderLines?$top=1&$expand=SalesOrderHeader"), StatusCode::OK).await;
    assert_eq!(values(&l)[0]["SalesOrderHeader"]["SalesOrderNumber"], values(&l)[0]["SalesOrderNumber"]);
    let deep =
        get(&env, &t, &fno(&env, "data/SalesOrderHeadersV2?$expand=SalesOrderLines($expand=SalesOrderHeader)")).await;
    assert_eq!(deep.status(), StatusCode::BAD_REQUEST);
    let number = values(&h)[0]["SalesOrderNumber"].as_str().unwrap().to_string();
    let nav = get_json(
        &env,
        &t,
        &fno(&env, &format!("data/SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='{number}')/SalesOrderLines")),
        StatusCode::OK,
    )
    .await;
    assert_eq!(values(&nav).len(), 2);
}

#[tokio::test]
async fn fno_metadata_documents() {
    let env = start_fno(10).await;
    let t = fno_token(&env).await;
    let x = get(&env, &t, &fno(&env, "data/$metadata")).await;
    assert_eq!(x.status(), StatusCode::OK);
    let xml = x.text().await.unwrap();
    assert!(xml.contains("Namespace=\"Microsoft.Dynamics.DataEntities\""));
    assert!(xml.contains("<EnumType Name=\"NoYes\">"));
    let root = get_json(&env, &t, &fno(&env, "data/"), StatusCode::OK).await;
    assert!(values(&root).iter().any(|s| s["name"] == "CustomersV3"));

    let de =
        get_json(&env, &t, &fno(&env, "Metadata/DataEntities?$filter=Name eq 'CustCustomerV3Entity'"), StatusCode::OK)
            .await;
    let item = &values(&de)[0];
    assert_eq!(values(&de).len(), 1);
    for k in [
        "Name",
        "PublicEntityName",
        "PublicCollectionName",
        "LabelId",
        "DataServiceEnabled",
        "DataManagementEnabled",
        "EntityCategory",
        "IsReadOnly",
    ] {
        assert!(item.get(k).is_some(), "{k}");
    }
    assert_eq!(item["PublicCollectionName"], "CustomersV3");
    let pe = get_json(&env, &t, &fno(&env, "Metadata/PublicEntities('CustomerV3')"), StatusCode::OK).await;
    assert_eq!(pe["EntitySetName"], "CustomersV3");
    let props = pe["Properties"].as_array().unwrap();
    let tax = props.iter().find(|p| p["Name"] == "IsSalesTaxIncludedInPrice").unwrap();
    assert_eq!((tax["DataType"].as_str(), tax["TypeName"].as_str()), (Some("Enum"), Some("NoYes")));
    let acct = props.iter().find(|p| p["Name"] == "CustomerAccount").unwrap();
    assert_eq!((acct["IsKey"].as_bool(), acct["TypeName"].as_str()), (Some(true), Some("CustAccount")));
    let lines = get_json(&env, &t, &fno(&env, "Metadata/PublicEntities('SalesOrderHeaderV2')"), StatusCode::OK).await;
    let nav = &lines["NavigationProperties"][0];
    assert_eq!(nav["Cardinality"], "Multiple");
    assert_eq!(nav["Constraints"][0]["@odata.type"], "#Microsoft.Dynamics.Metadata.ReferentialConstraint");
    let en = get_json(&env, &t, &fno(&env, "Metadata/PublicEnumerations('NoYes')"), StatusCode::OK).await;
    assert_eq!(
        en["Members"][1],
        json!({"Name": "Yes", "Value": 1, "LabelId": en["Members"][1]["LabelId"], "ConfigurationEnabled": true})
    );
    let label = en["LabelId"].as_str().unwrap();
    let l = get_json(&env, &t, &fno(&env, &format!("Metadata/Labels(Id='{label}',Language='en-us')")), StatusCode::OK)
        .await;
    assert_eq!(l["Value"], "No/Yes");
    let top = get_json(&env, &t, &fno(&env, "Metadata/PublicEntities?$top=2&$select=Name"), StatusCode::OK).await;
    assert_eq!(values(&top).len(), 2);
    assert_eq!(values(&top)[0].as_object().unwrap().len(), 1);
    assert_eq!(get(&env, &t, &fno(&env, "Metadata/PublicEntities('Nope')")).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn fno_malformed_requests_get_fno_shaped_errors() {
    let env = start_fno(10).await;
    let t = fno_token(&env).await;
    for (path, status) in [
        ("data/Nope", StatusCode::NOT_FOUND),
        ("data/customersv3", StatusCode::NOT_FOUND),
        ("data/CustomersV3(((", StatusCode::BAD_REQUEST),
        ("data/CustomersV3('US-001')", StatusCode::BAD_REQUEST),
        ("data/CustomersV3(dataAreaId='usmf')", StatusCode::BAD_REQUEST),
        ("data/CustomersV3(dataAreaId='usmf',CustomerAccount='NOPE')", StatusCode::NOT_FOUND),
        ("data/CustomersV3(dataAreaId='usmf',CustomerAccount=%ZZ)", StatusCode::BAD_REQUEST),
        ("data/CustomersV3?$filter=%ZZ%FF", StatusCode::BAD_REQUEST),
        ("data/CustomersV3%FF", StatusCode::BAD_REQUEST),
        ("nothing/here", StatusCode::NOT_FOUND),
    ] {
        let r = get(&env, &t, &fno(&env, path)).await;
        assert_eq!(r.status(), status, "{path}");
        fno_error(&r.json().await.unwrap());
    }
    for body in ["{not json", "[1,2]", "{\"CustomerAccount\": 5}", ""] {
        let r = env.http.post(fno(&env, "data/CustomersV3")).bearer_auth(&t).body(body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        fno_error(&r.json().await.unwrap());
    }
}

#[tokio::test]
async fn fno_requests_take_the_simulated_service_time() {
    // 100 ms per request plus 4 ms per row returned, as `--latency-ms` / `--latency-per-row-us`
    // give the Dataverse side: a 50-row page takes at least 300 ms, a 1-row page 104 ms.
    let env = start(EmulatorOptions {
        rows: 0,
        fno_rows: Some(50),
        latency: std::time::Duration::from_millis(100),
        latency_per_row: std::time::Duration::from_millis(4),
        ..Default::default()
    })
    .await;
    let t = fno_token(&env).await;
    let started = std::time::Instant::now();
    let page = get_json(&env, &t, &fno(&env, "data/CustomersV3?cross-company=true"), StatusCode::OK).await;
    assert_eq!(values(&page).len(), 50);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "{:?}", started.elapsed());
    let started = std::time::Instant::now();
    let one = get_json(&env, &t, &fno(&env, "data/CustomersV3?cross-company=true&$top=1"), StatusCode::OK).await;
    assert_eq!(values(&one).len(), 1);
    assert!(started.elapsed() >= std::time::Duration::from_millis(104), "{:?}", started.elapsed());
}
