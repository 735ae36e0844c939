//! Metadata: listing tables in one request, one table's typed columns, the disk cache.

use std::time::Duration;

use d365_client::{CacheOptions, Metadata};

use crate::common::start;

#[tokio::test]
async fn tables_are_listed_in_one_request_without_columns() {
    let env = start(5).await;
    let client = env.client().await;
    let before = client.request_log().stats();
    let md = Metadata::in_memory(client.clone());
    let list = md.entities().await.unwrap();
    assert_eq!(client.request_log().stats().since(&before).requests, 1);
    let account = list.iter().find(|e| e.logical_name == "account").expect("account listed");
    assert_eq!(account.entity_set_name.as_deref(), Some("accounts"));
    assert_eq!(account.primary_id_attribute, "accountid");
    assert_eq!(account.primary_name_attribute.as_deref(), Some("name"));
    assert_eq!(account.object_type_code, Some(1));
    assert_eq!(account.display_name.as_deref(), Some("Account"));
    assert_eq!(account.ownership, "UserOwned");
    assert!(account.change_tracking_enabled);
    assert!(!account.is_custom);
    let widget = list.iter().find(|e| e.logical_name == "new_widget").unwrap();
    assert!(widget.is_custom);
    let currency = md.find_entity("TransactionCurrencies").await.unwrap().expect("found by set name");
    assert_eq!(currency.logical_name, "transactioncurrency");
    assert!(md.find_entity("nosuchtable").await.unwrap().is_none());
    // The listing request selected table properties only.
    assert_eq!(client.request_log().stats().since(&before).requests, 1);
}

#[tokio::test]
async fn one_table_has_typed_columns_options_and_relationships() {
    let env = start(5).await;
    let client = env.client().await;
    let md = Metadata::in_memory(client.clone());
    let w = md.entity("new_widget").await.unwrap();
    assert_eq!(w.entity.entity_set_name.as_deref(), Some("new_widgets"));
    let a = |n: &str| w.attribute(n).unwrap_or_else(|| panic!("column {n}"));

    let name = a("new_name");
    assert_eq!((name.attribute_type.as_str(), name.max_length), ("String", Some(100)));
    assert!(name.is_primary_name);
    assert_eq!(name.required_level, "ApplicationRequired");
    assert_eq!(a("new_description").max_length, Some(10000));
    assert_eq!(a("new_weight").attribute_type, "Decimal");
    assert_eq!(a("new_weight").precision, Some(4));
    assert_eq!(a("new_ratio").precision, Some(5));
    assert_eq!(a("new_price").attribute_type, "Money");
    assert_eq!(a("new_price").precision, Some(2));
    assert!(!a("new_price_base").is_valid_for_create);
    assert_eq!(a("new_serialnumber").attribute_type, "BigInt");

    let ship = a("new_shipdate");
    assert!(ship.is_date_only(), "{ship:?}");
    assert_eq!(ship.format.as_deref(), Some("DateOnly"));
    let inspected = a("new_lastinspectedon");
    assert!(!inspected.is_date_only());
    assert_eq!(inspected.datetime_behavior.as_deref(), Some("UserLocal"));

    let customer = a("new_customerid");
    assert_eq!(customer.attribute_type, "Customer");
    assert_eq!(customer.targets, vec!["account", "contact"]);
    assert_eq!(customer.select_name(), "_new_customerid_value");
    assert_eq!(a("ownerid").targets, vec!["systemuser", "team"]);
    assert_eq!(a("new_accountid").targets, vec!["account"]);

    let category = a("new_category");
    assert_eq!(category.option_label(100000001), Some("Gizmo"));
    assert_eq!(category.options.len(), 4);
    let tags = a("new_tags");
    assert!(tags.is_multi_select());
    assert_eq!(tags.attribute_type, "Virtual");
    assert_eq!(tags.option_label(100000003), Some("Fragile"));
    let active = a("new_isactive");
    assert_eq!((active.option_label(0), active.option_label(1)), (Some("No"), Some("Yes")));
    assert_eq!(a("statecode").option_label(1), Some("Inactive"));
    let status = a("statuscode");
    assert_eq!(status.options.iter().find(|o| o.value == 2).and_then(|o| o.state), Some(1));

    assert_eq!(w.lookup_navigation_property("new_customerid", "contact"), Some("new_customerid_contact"));
    assert_eq!(w.lookup_navigation_property("new_accountid", "account"), Some("new_accountid"));

    let account = md.entity("Account").await.unwrap();
    assert!(account.keys.iter().any(|k| k.key_attributes == ["accountnumber"]), "{:?}", account.keys);
    assert!(
        account.one_to_many.iter().any(|r| r.referencing_entity == "contact"
            && r.referenced_navigation_property.as_deref() == Some("contact_customer_accounts")),
        "{:?}",
        account.one_to_many
    );
}

#[tokio::test]
async fn the_disk_cache_serves_repeat_calls_without_requests_until_it_expires() {
    let env = start(5).await;
    let client = env.client().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = CacheOptions { dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let log = client.request_log();

    let first = Metadata::new(client.clone(), &opts).unwrap();
    let s0 = log.stats();
    let entities = first.entities().await.unwrap();
    let contact = first.entity("contact").await.unwrap();
    let fetched = log.stats().since(&s0).requests;
    assert!(fetched >= 2, "{fetched}");
    let cache_dir = first.cache().unwrap().dir().to_path_buf();
    assert!(cache_dir.starts_with(dir.path()));
    assert!(cache_dir.join("entities.json").is_file());
    assert!(cache_dir.join("entity_contact.json").is_file() || cache_dir.join("entity.contact.json").is_file());

    // A new process (a new Metadata) reads the disk: no request at all.
    let second = Metadata::new(client.clone(), &opts).unwrap();
    let s1 = log.stats();
    assert_eq!(second.entities().await.unwrap(), entities);
    assert_eq!(second.entity("contact").await.unwrap(), contact);
    assert_eq!(log.stats().since(&s1).requests, 0);

    // Expired entries are fetched again.
    let expired = Metadata::new(client.clone(), &CacheOptions { ttl: Duration::ZERO, ..opts.clone() }).unwrap();
    let s2 = log.stats();
    expired.entities().await.unwrap();
    assert_eq!(log.stats().since(&s2).requests, 1);

    // `refresh` bypasses fresh entries and rewrites them.
    let refreshed = Metadata::new(client.clone(), &CacheOptions { refresh: true, ..opts.clone() }).unwrap();
    let s3 = log.stats();
    refreshed.entities().await.unwrap();
    refreshed.entities().await.unwrap();
    assert_eq!(log.stats().since(&s3).requests, 1, "once per Metadata, then from memory");

    // An entry from another organisation's directory is never used: the key is the org URL.
    let other = d365_client::MetadataCache::new(&opts, "https://other.crm.dynamics.com", "9.2").unwrap();
    assert_ne!(other.dir(), cache_dir);
}
