//! Unit tests of new columns: name checks, money twins, schema copies.

use super::*;

fn err(schema: &Schema, c: NewColumn) -> AddColumnError {
    c.columns(schema, schema.table("contact").unwrap(), PrefixRule::DefaultPublisher).unwrap_err()
}

#[test]
fn names_are_checked_as_dataverse_does() {
    let s = Schema::builtin();
    assert!(matches!(err(&s, NewColumn::string("Nickname", "N", 10)), AddColumnError::InvalidPrefix(_)));
    assert!(matches!(err(&s, NewColumn::string("abc_Nickname", "N", 10)), AddColumnError::InvalidPrefix(_)));
    assert!(matches!(err(&s, NewColumn::string("new_", "N", 10)), AddColumnError::InvalidPrefix(_)));
    assert!(matches!(err(&s, NewColumn::string("1new_x", "N", 10)), AddColumnError::NotStartWithLetter(_)));
    assert!(matches!(err(&s, NewColumn::string("new_a-b", "N", 10)), AddColumnError::NonAlphanumeric(_)));
    let long = format!("new_{}", "x".repeat(60));
    assert!(matches!(err(&s, NewColumn::string(long, "N", 10)), AddColumnError::TooLong { max: 50, .. }));
    assert!(matches!(err(&s, NewColumn::string("new_x", "N", 0)), AddColumnError::Invalid(_)));
    let t = s.table("contact").unwrap();
    let any = NewColumn::string("abc_Nickname", "N", 10).columns(&s, t, PrefixRule::AnyPublisher);
    assert_eq!(any.unwrap()[0].logical_name, "abc_nickname");
}

#[test]
fn money_brings_its_base_and_the_currency_columns() {
    let s = Schema::builtin();
    let t = s.table("contact").unwrap();
    let cols = NewColumn::money("new_Balance", "Balance").columns(&s, t, PrefixRule::DefaultPublisher).unwrap();
    let names: Vec<_> = cols.iter().map(|c| c.logical_name.as_str()).collect();
    assert_eq!(names, ["new_balance", "new_balance_base"], "contact already has a currency");
    assert!(cols[0].column_number > t.columns.len() as u32 - 1 && cols[1].column_number == cols[0].column_number + 1);
    let team = s.table("team").unwrap();
    assert!(team.column("transactioncurrencyid").is_none());
    let cols = NewColumn::money("new_Budget", "Budget").columns(&s, team, PrefixRule::DefaultPublisher).unwrap();
    assert!(cols.iter().any(|c| c.logical_name == "transactioncurrencyid"));
    let s2 = s.with_columns("team", cols).unwrap();
    assert!(s2.single_nav("team", "transactioncurrencyid").is_some(), "the currency relationship is derived");
}

#[test]
fn a_schema_with_a_new_column_finds_it_and_refuses_it_twice() {
    let s = Schema::builtin();
    let c = NewColumn::new(
        "new_Tier",
        "Tier",
        NewColumnKind::Picklist {
            options: vec![
                NewOption { value: None, label: "Gold".into() },
                NewOption { value: Some(100_000_000), label: "Silver".into() },
            ],
        },
    );
    let s2 = s.with_new_column("contact", &c).unwrap();
    let col = s2.table("contact").unwrap().column("new_tier").unwrap();
    assert_eq!(col.options.iter().map(|o| o.value).collect::<Vec<_>>(), [100_000_001, 100_000_000]);
    assert_eq!(col.option_set_name.as_deref(), Some("contact_new_tier"));
    assert!(col.is_custom);
    assert!(matches!(s2.with_new_column("contact", &c), Err(AddColumnError::Duplicate { .. })));
    assert!(s.table("contact").unwrap().column("new_tier").is_none(), "the old schema is unchanged");
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<NewColumn>(&json).unwrap(), c);
}
