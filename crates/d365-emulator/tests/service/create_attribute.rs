//! Creating a column on an existing table at runtime (`POST EntityDefinitions(...)/Attributes`),
//! then reading it back everywhere the service shows columns: attribute metadata, `$metadata`,
//! `$select`, `$filter`, writes and change tracking. Also the refusals Dataverse gives, the Rust
//! helper [`Emulator::add_column`] and a data file reopened after a restart.

use crate::common;

use common::*;
use d365_emulator::{AddColumnError, NewColumn, NewColumnKind};
use std::collections::BTreeSet;

const CONTACT_ATTRIBUTES: &str = "EntityDefinitions(LogicalName='contact')/Attributes";

fn label(text: &str) -> Value {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [{"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": 1033}],
    })
}

/// The documented body of a string column.
fn string_column(schema_name: &str, max_length: u32) -> Value {
    json!({
        "AttributeType": "String",
        "AttributeTypeName": {"Value": "StringType"},
        "Description": label("What the contact is called by friends"),
        "DisplayName": label("Nickname"),
        "RequiredLevel": {"Value": "None", "CanBeChanged": true, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
        "SchemaName": schema_name,
        "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
        "FormatName": {"Value": "Text"},
        "MaxLength": max_length,
    })
}

/// The documented body of a money column.
fn money_column(schema_name: &str) -> Value {
    json!({
        "AttributeType": "Money",
        "AttributeTypeName": {"Value": "MoneyType"},
        "Description": label("Enter the balance amount"),
        "DisplayName": label("Balance"),
        "RequiredLevel": {"Value": "None"},
        "SchemaName": schema_name,
        "@odata.type": "Microsoft.Dynamics.CRM.MoneyAttributeMetadata",
        "PrecisionSource": 2,
    })
}

async fn post(env: &Env, token: &str, path: &str, body: &Value) -> reqwest::Response {
    env.http.post(env.url(path)).bearer_auth(token).json(body).send().await.unwrap()
}

/// Status and Dataverse error code of a refused request.
async fn refusal(r: reqwest::Response) -> (StatusCode, String, String) {
    let status = r.status();
    let body = json_of(r).await;
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").into(),
        body["error"]["message"].as_str().unwrap_or("").into(),
    )
}

fn id_in(header: &str) -> String {
    header.rsplit('(').next().unwrap().trim_end_matches(')').to_string()
}

/// Reads `contacts` with change tracking to the end; returns the ids and the delta link.
async fn track_contacts(env: &Env, token: &str) -> (BTreeSet<String>, String) {
    let (mut ids, mut url) = (BTreeSet::new(), env.url("contacts?$select=fullname"));
    loop {
        let r = env.http.get(&url).bearer_auth(token).header("Prefer", "odata.track-changes").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = json_of(r).await;
        ids.extend(body["value"].as_array().unwrap().iter().map(|v| v["contactid"].as_str().unwrap().to_string()));
        match (body["@odata.nextLink"].as_str(), body["@odata.deltaLink"].as_str()) {
            (Some(next), None) => url = next.to_string(),
            (None, Some(delta)) => return (ids, delta.to_string()),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_string_and_a_money_column_on_contact_are_described_queried_written_and_tracked() {
    let env = start(5).await;
    let t = env.admin_app();
    let (existing, delta) = track_contacts(&env, &t).await;
    assert!(!existing.is_empty());

    // Create by logical name: 204 and the new attribute's URL.
    let r = post(&env, &t, CONTACT_ATTRIBUTES, &string_column("new_Nickname", 100)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let entity_id = r.headers()["odata-entityid"].to_str().unwrap().to_string();
    assert!(entity_id.starts_with(&env.url("EntityDefinitions(LogicalName='contact')/Attributes(")), "{entity_id}");
    let nickname_id = id_in(&entity_id);
    // Create by the table's MetadataId.
    let r = env.get(&t, "EntityDefinitions(LogicalName='contact')?$select=MetadataId").await;
    let contact_id = json_of(r).await["MetadataId"].as_str().unwrap().to_string();
    let r = post(&env, &t, &format!("EntityDefinitions({contact_id})/Attributes"), &money_column("new_Balance")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let entity_id = r.headers()["odata-entityid"].to_str().unwrap().to_string();
    assert!(entity_id.starts_with(&env.url(&format!("EntityDefinitions({contact_id})/Attributes("))), "{entity_id}");

    // Attribute metadata, by name and by the id the create returned.
    let r = env
        .get(
            &t,
            &format!("{CONTACT_ATTRIBUTES}(LogicalName='new_nickname')/Microsoft.Dynamics.CRM.StringAttributeMetadata"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let a = json_of(r).await;
    assert_eq!(a["MetadataId"], nickname_id.as_str());
    assert_eq!((a["SchemaName"].as_str(), a["LogicalName"].as_str()), (Some("new_Nickname"), Some("new_nickname")));
    assert_eq!((a["MaxLength"].as_u64(), a["IsCustomAttribute"].as_bool()), (Some(100), Some(true)));
    assert_eq!(a["DisplayName"]["LocalizedLabels"][0]["Label"], "Nickname");
    assert_eq!(a["Description"]["UserLocalizedLabel"]["Label"], "What the contact is called by friends");
    let r = env.get(&t, &format!("{CONTACT_ATTRIBUTES}({nickname_id})?$select=LogicalName")).await;
    assert_eq!(json_of(r).await["LogicalName"], "new_nickname");
    let r = env
        .get(&t, &format!("{CONTACT_ATTRIBUTES}?$select=LogicalName,AttributeType&$filter=IsCustomAttribute eq true"))
        .await;
    let custom: BTreeSet<String> = json_of(r).await["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["LogicalName"].as_str().unwrap().into())
        .collect();
    let want: BTreeSet<String> = ["new_nickname", "new_balance", "new_balance_base"].map(String::from).into();
    assert_eq!(custom, want, "the money column brings its base-currency twin");
    let r = env
        .get(
            &t,
            &format!(
                "{CONTACT_ATTRIBUTES}(LogicalName='new_balance_base')/Microsoft.Dynamics.CRM.MoneyAttributeMetadata"
            ),
        )
        .await;
    let base = json_of(r).await;
    assert_eq!((base["IsBaseCurrency"].as_bool(), base["CalculationOf"].as_str()), (Some(true), Some("new_balance")));

    // $metadata.
    let csdl = env.get(&t, "$metadata").await.text().await.unwrap();
    assert!(
        csdl.contains("<Property Name=\"new_nickname\" Type=\"Edm.String\""),
        "new_nickname missing from $metadata"
    );
    assert!(csdl.contains("<Property Name=\"new_balance\" Type=\"Edm.Decimal\""), "new_balance missing from $metadata");

    // Existing rows have null; a create and an update write the new columns.
    let r = env.get(&t, "contacts?$select=fullname,new_nickname,new_balance").await;
    assert_eq!(r.status(), StatusCode::OK);
    let rows = json_of(r).await;
    let rows = rows["value"].as_array().unwrap();
    assert!(rows.iter().all(|v| v["new_nickname"].is_null() && v["new_balance"].is_null()), "{rows:?}");
    let r =
        post(&env, &t, "contacts", &json!({"lastname": "Lovelace", "new_nickname": "Ada", "new_balance": 12.5})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let created = id_in(r.headers()["odata-entityid"].to_str().unwrap());
    let updated = existing.iter().next().unwrap().clone();
    let r = env
        .http
        .patch(env.url(&format!("contacts({updated})")))
        .bearer_auth(&t)
        .json(&json!({"new_nickname": "Bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // $select and $filter on them.
    let r =
        env.get(&t, "contacts?$select=new_nickname,new_balance,new_balance_base&$filter=new_nickname eq 'ada'").await;
    assert_eq!(r.status(), StatusCode::OK);
    let found = json_of(r).await["value"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["contactid"], created.as_str());
    assert_eq!((found[0]["new_balance"].as_f64(), found[0]["new_balance_base"].as_f64()), (Some(12.5), Some(12.5)));
    let r = env.get(&t, "contacts?$select=contactid&$filter=new_balance gt 10 or new_nickname eq 'Bob'").await;
    let ids: BTreeSet<String> =
        json_of(r).await["value"].as_array().unwrap().iter().map(|v| v["contactid"].as_str().unwrap().into()).collect();
    assert_eq!(ids, [created.clone(), updated.clone()].into());
    let r = env.get(&t, &format!("contacts({updated})?$select=new_nickname")).await;
    assert_eq!(json_of(r).await["new_nickname"], "Bob");

    // The delta link taken before the columns existed returns the changed rows, with the new
    // columns when they are selected (or when nothing is).
    let r = env.http.get(&delta).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let changed: BTreeSet<String> = json_of(r).await["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["contactid"].as_str().map(String::from))
        .collect();
    assert_eq!(changed, [created.clone(), updated.clone()].into());
    let with_column = delta.replace("$select=fullname", "$select=fullname,new_nickname");
    assert_ne!(with_column, delta);
    let r = env.http.get(&with_column).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    let nicknames: BTreeSet<&str> =
        body["value"].as_array().unwrap().iter().filter_map(|v| v["new_nickname"].as_str()).collect();
    assert_eq!(nicknames, ["Ada", "Bob"].into());
    let all_columns =
        format!("{}?{}", env.url("contacts"), delta.split_once('?').unwrap().1.rsplit('&').next().unwrap());
    let r = env.http.get(&all_columns).bearer_auth(&t).send().await.unwrap();
    let body = json_of(r).await;
    assert!(body["value"].as_array().unwrap().iter().any(|v| v["new_nickname"] == "Ada"), "{body}");
}

#[tokio::test]
async fn creating_a_column_is_refused_as_dataverse_refuses() {
    let env = start(5).await;
    let admin = env.admin_app();
    assert_eq!(
        post(&env, &admin, CONTACT_ATTRIBUTES, &string_column("new_Nickname", 100)).await.status(),
        StatusCode::NO_CONTENT
    );

    // The same name again, in any case.
    for name in ["new_Nickname", "NEW_NICKNAME"] {
        let (s, code, message) = refusal(post(&env, &admin, CONTACT_ATTRIBUTES, &string_column(name, 50)).await).await;
        assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "0x80047013"), "{name}: {message}");
    }
    // A money column whose `_base` twin would clash with an existing column.
    let accounts = "EntityDefinitions(LogicalName='account')/Attributes";
    assert_eq!(
        post(&env, &admin, accounts, &string_column("new_Total_Base", 10)).await.status(),
        StatusCode::NO_CONTENT
    );
    let (s, code, message) = refusal(post(&env, &admin, accounts, &money_column("new_Total")).await).await;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "0x80047013"), "{message}");
    // No prefix, or a prefix that is not the default publisher's.
    for name in ["Nickname", "abc_Nickname", "new_", ""] {
        let (s, code, message) = refusal(post(&env, &admin, CONTACT_ATTRIBUTES, &string_column(name, 50)).await).await;
        assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "0x80044366"), "{name:?}: {message}");
        assert!(message.contains("must start with a valid customization prefix"), "{message}");
    }
    // Inside a solution, its publisher's prefix is accepted.
    let r = env
        .http
        .post(env.url(CONTACT_ATTRIBUTES))
        .bearer_auth(&admin)
        .header("MSCRM.SolutionUniqueName", "examplesolution")
        .json(&string_column("abc_Nickname", 50))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Badly formed names and settings.
    let cases = [
        (string_column("new_nick-name", 50), "0x80044364"),
        (string_column("9new_x", 50), "0x80044365"),
        (string_column(&format!("new_{}", "x".repeat(60)), 50), "0x80044367"),
        (string_column("new_Long", 5000), "0x80040203"),
        (json!({"@odata.type": "Microsoft.Dynamics.CRM.NoSuchAttributeMetadata", "SchemaName": "new_a"}), "0x80048d19"),
        (json!({"SchemaName": "new_a"}), "0x80048d19"),
        (json!({"@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata", "SchemaName": "new_a"}), "0x80040203"),
    ];
    for (body, want) in cases {
        let (s, code, message) = refusal(post(&env, &admin, CONTACT_ATTRIBUTES, &body).await).await;
        assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, want), "{body}: {message}");
    }
    // Types Dataverse has and the emulator does not create.
    let image = json!({"@odata.type": "Microsoft.Dynamics.CRM.ImageAttributeMetadata", "SchemaName": "new_Photo"});
    let (s, code, _) = refusal(post(&env, &admin, CONTACT_ATTRIBUTES, &image).await).await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_IMPLEMENTED, "0x80040216"));

    // A caller without prvCreateAttribute (the Integration role).
    let (s, code, message) =
        refusal(post(&env, &env.integration(), CONTACT_ATTRIBUTES, &string_column("new_Other", 50)).await).await;
    assert_eq!((s, code.as_str()), (StatusCode::FORBIDDEN, "0x80040220"));
    assert!(message.contains("prvCreateAttribute"), "{message}");

    // Unknown tables, by name and by id.
    let (s, code, _) = refusal(
        post(&env, &admin, "EntityDefinitions(LogicalName='nope')/Attributes", &string_column("new_A", 5)).await,
    )
    .await;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "0x80040217"));
    let unknown = "EntityDefinitions(00000000-0000-0000-0000-0000000000aa)/Attributes";
    assert_eq!(post(&env, &admin, unknown, &string_column("new_A", 5)).await.status(), StatusCode::NOT_FOUND);

    // Other metadata writes.
    let r = post(&env, &admin, "EntityDefinitions", &json!({"SchemaName": "new_Thing"})).await;
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    let r = env.http.patch(env.url(CONTACT_ATTRIBUTES)).bearer_auth(&admin).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Nothing refused was created.
    let r =
        env.get(&admin, &format!("{CONTACT_ATTRIBUTES}?$select=LogicalName&$filter=IsCustomAttribute eq true")).await;
    let custom: BTreeSet<String> = json_of(r).await["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["LogicalName"].as_str().unwrap().into())
        .collect();
    assert_eq!(custom, ["abc_nickname", "new_nickname"].map(String::from).into());
}

#[tokio::test]
async fn the_other_types_keep_their_settings() {
    let env = start(5).await;
    let t = env.admin_app();
    let option = |value: Value, text: &str| json!({"Value": value, "Label": label(text)});
    let bodies = [
        json!({"@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata", "SchemaName": "new_Notes", "MaxLength": 500, "Format": "TextArea"}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata", "SchemaName": "new_Visits", "MinValue": 0, "MaxValue": 100}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.DecimalAttributeMetadata", "SchemaName": "new_Score", "Precision": 1, "MinValue": 0.0, "MaxValue": 100.0}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata", "SchemaName": "new_Vip", "DefaultValue": false,
               "OptionSet": {"TrueOption": option(json!(1), "VIP"), "FalseOption": option(json!(0), "Regular"), "OptionSetType": "Boolean"}}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata", "SchemaName": "new_Checked", "Format": "DateOnly",
               "DateTimeBehavior": {"Value": "DateOnly"}}),
        json!({"@odata.type": "Microsoft.Dynamics.CRM.PicklistAttributeMetadata", "SchemaName": "new_Tier",
               "OptionSet": {"@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata", "IsGlobal": false, "OptionSetType": "Picklist",
                             "Options": [option(json!(727000000), "Gold"), option(Value::Null, "Silver")]}}),
    ];
    for body in &bodies {
        let r = post(&env, &t, CONTACT_ATTRIBUTES, body).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{body}: {}", r.text().await.unwrap());
    }
    let attr =
        |name: &str, cast: &str| format!("{CONTACT_ATTRIBUTES}(LogicalName='{name}')/Microsoft.Dynamics.CRM.{cast}");
    let a = json_of(env.get(&t, &attr("new_visits", "IntegerAttributeMetadata")).await).await;
    assert_eq!((a["MinValue"].as_i64(), a["MaxValue"].as_i64()), (Some(0), Some(100)));
    let a = json_of(env.get(&t, &attr("new_score", "DecimalAttributeMetadata")).await).await;
    assert_eq!(a["Precision"], 1);
    let a = json_of(env.get(&t, &attr("new_notes", "MemoAttributeMetadata")).await).await;
    assert_eq!(a["MaxLength"], 500);
    let a = json_of(env.get(&t, &attr("new_checked", "DateTimeAttributeMetadata")).await).await;
    assert_eq!((a["Format"].as_str(), a["DateTimeBehavior"]["Value"].as_str()), (Some("DateOnly"), Some("DateOnly")));
    let a =
        json_of(env.get(&t, &format!("{}?$expand=OptionSet", attr("new_vip", "BooleanAttributeMetadata"))).await).await;
    assert_eq!(a["OptionSet"]["TrueOption"]["Label"]["LocalizedLabels"][0]["Label"], "VIP", "{a}");
    let a = json_of(env.get(&t, &format!("{}?$expand=OptionSet", attr("new_tier", "PicklistAttributeMetadata"))).await)
        .await;
    let values: Vec<i64> =
        a["OptionSet"]["Options"].as_array().unwrap().iter().map(|o| o["Value"].as_i64().unwrap()).collect();
    assert_eq!(values, [727_000_000, 100_000_000], "an option without a value gets the publisher's next one");

    // A row with every new column, read back with formatted values.
    let row = json!({"lastname": "Typed", "new_notes": "long text", "new_visits": 7, "new_score": 9.5, "new_vip": true,
                     "new_checked": "2024-05-01", "new_tier": 727000000});
    let r = post(&env, &t, "contacts", &row).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap());
    let r = env
        .http
        .get(env.url(
            "contacts?$select=new_notes,new_visits,new_score,new_vip,new_checked,new_tier&$filter=new_vip eq true",
        ))
        .bearer_auth(&t)
        .header("Prefer", "odata.include-annotations=\"OData.Community.Display.V1.FormattedValue\"")
        .send()
        .await
        .unwrap();
    let body = json_of(r).await;
    let v = &body["value"][0];
    assert_eq!(
        (v["new_notes"].as_str(), v["new_visits"].as_i64(), v["new_score"].as_f64()),
        (Some("long text"), Some(7), Some(9.5))
    );
    assert_eq!((v["new_checked"].as_str(), v["new_tier"].as_i64()), (Some("2024-05-01"), Some(727_000_000)));
    assert_eq!(v["new_vip@OData.Community.Display.V1.FormattedValue"], "VIP", "{v}");
    assert_eq!(v["new_tier@OData.Community.Display.V1.FormattedValue"], "Gold", "{v}");
    // Settings are enforced on writes.
    let r = post(&env, &t, "contacts", &json!({"lastname": "Over", "new_visits": 101})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_rust_helper_adds_a_column_through_the_same_path() {
    let env = start(5).await;
    let created = env.emu.add_column("contact", NewColumn::string("new_Code", "Code", 20)).await.unwrap();
    assert_eq!((created.table.as_str(), created.logical_name.as_str()), ("contact", "new_code"));
    let t = env.admin_app();
    let r = env.get(&t, &format!("{CONTACT_ATTRIBUTES}({})?$select=SchemaName", created.metadata_id)).await;
    assert_eq!(json_of(r).await["SchemaName"], "new_Code");
    let r = post(&env, &t, "contacts", &json!({"lastname": "Coded", "new_code": "X1"})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = env.get(&t, "contacts?$select=new_code&$filter=new_code eq 'X1'").await;
    assert_eq!(json_of(r).await["value"].as_array().unwrap().len(), 1);
    // The same checks as over HTTP.
    let again = env.emu.add_column("contact", NewColumn::string("new_code", "Code", 20)).await;
    assert!(matches!(again, Err(AddColumnError::Duplicate { .. })), "{again:?}");
    let nowhere = env.emu.add_column("nope", NewColumn::string("new_Code", "Code", 20)).await;
    assert_eq!(nowhere, Err(AddColumnError::UnknownTable("nope".into())));
    let bare = env.emu.add_column("contact", NewColumn::new("Code2", "Code", NewColumnKind::BigInt)).await;
    assert!(matches!(bare, Err(AddColumnError::InvalidPrefix(_))), "{bare:?}");
}

#[tokio::test]
async fn columns_created_on_a_data_file_are_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.sqlite");
    let options = || EmulatorOptions { rows: 5, data: Some(data.clone()), ..Default::default() };
    let emu = Emulator::start(options()).await.unwrap();
    let created = emu.add_column("contact", NewColumn::money("new_Balance", "Balance")).await.unwrap();
    emu.shutdown().await;

    let emu = Emulator::start(options()).await.unwrap();
    let schema = emu.state().schema();
    let contact = schema.table("contact").unwrap();
    let balance = contact.column("new_balance").expect("the column is defined again");
    assert_eq!(balance.metadata_id, created.metadata_id, "with the same MetadataId");
    assert!(contact.column("new_balance_base").is_some());
    let again = emu.add_column("contact", NewColumn::money("new_Balance", "Balance")).await;
    assert!(matches!(again, Err(AddColumnError::Duplicate { .. })), "{again:?}");
    emu.shutdown().await;
}

/// One request of a `$batch` body.
fn batch_part(method: &str, url: &str, body: Option<&Value>) -> String {
    let mut s = format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{method} {url} HTTP/1.1\r\n"
    );
    match body {
        Some(b) => s.push_str(&format!("Content-Type: application/json; type=entry\r\n\r\n{b}\r\n")),
        None => s.push_str("\r\n\r\n"),
    }
    s
}

#[tokio::test]
async fn in_a_batch_the_requests_after_the_create_see_the_column() {
    let env = start(5).await;
    let t = env.admin_app();
    let parts = [
        batch_part("POST", &env.url(CONTACT_ATTRIBUTES), Some(&string_column("new_Batched", 20))),
        batch_part("POST", &env.url("contacts"), Some(&json!({"lastname": "Batch", "new_batched": "yes"}))),
        batch_part("GET", &env.url("contacts?$select=new_batched&$filter=new_batched%20eq%20'yes'"), None),
    ];
    let mut body: String = parts.iter().map(|p| format!("--batch_AAA\r\n{p}")).collect();
    body.push_str("--batch_AAA--\r\n");
    let r = env
        .http
        .post(env.url("$batch"))
        .bearer_auth(&t)
        .header("Content-Type", "multipart/mixed; boundary=batch_AAA")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("HTTP/1.1 204").count(), 2, "{text}");
    assert!(text.contains("\"new_batched\":\"yes\""), "{text}");

    // Inside a change set the create is not emulated.
    let inner = batch_part("POST", &env.url(CONTACT_ATTRIBUTES), Some(&string_column("new_InSet", 20)));
    let body = format!(
        "--batch_AAA\r\nContent-Type: multipart/mixed; boundary=changeset_B\r\n\r\n--changeset_B\r\n{inner}--changeset_B--\r\n--batch_AAA--\r\n"
    );
    let r = env
        .http
        .post(env.url("$batch"))
        .bearer_auth(&t)
        .header("Content-Type", "multipart/mixed; boundary=batch_AAA")
        .body(body)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("not implemented by this emulator"), "{text}");
    assert!(env.emu.state().schema().table("contact").unwrap().column("new_inset").is_none());
}
