use super::*;

fn kind(text: &str) -> FetchXmlErrorKind {
    match parse_fetchxml(text) {
        Ok(f) => panic!("{text} parsed: {f:?}"),
        Err(e) => {
            assert!(!e.message.is_empty());
            e.kind
        }
    }
}

#[test]
fn parses_every_part_of_a_query() {
    let f = parse_fetchxml(
        r#"<fetch mapping="logical" version="1.0" count="3" page="2" no-lock="true" distinct="false"
                 paging-cookie="&lt;cookie page=&quot;1&quot;&gt;&lt;accountid last=&quot;{A}&quot; /&gt;&lt;/cookie&gt;"
                 output-format="xml-platform" returntotalrecordcount="1">
             <!-- a comment -->
             <entity name="contact">
               <attribute name="fullname" />
               <attribute name="jobtitle" alias="job" />
               <order attribute="fullname" descending="true" />
               <filter type="and">
                 <condition attribute="fullname" operator="like" value="%(sample)%" />
                 <filter type="or">
                   <condition column="statecode" operator="eq" value="0" />
                   <condition attribute="createdon" operator="last-x-days" value="7" />
                   <condition attribute="name" entityname="acct" operator="not-null" />
                 </filter>
                 <link-entity name="account" from="primarycontactid" to="contactid" link-type="not any">
                   <filter><condition attribute="name" operator="eq" value="Contoso" /></filter>
                 </link-entity>
               </filter>
               <link-entity name="account" from="accountid" to="parentcustomerid" alias="acct" link-type="outer">
                 <attribute name="name" />
                 <link-entity name="systemuser" from="systemuserid" to="ownerid" link-type="exists" />
               </link-entity>
             </entity>
           </fetch>"#,
    )
    .unwrap();
    assert_eq!((f.count, f.page, f.top), (Some(3), Some(2), None));
    assert!(f.no_lock && !f.distinct && !f.aggregate && f.return_total_record_count);
    assert_eq!(f.paging_cookie.as_deref(), Some(r#"<cookie page="1"><accountid last="{A}" /></cookie>"#));
    let n = &f.entity.node;
    assert_eq!(n.attributes.len(), 2);
    assert_eq!(n.attributes[1].alias.as_deref(), Some("job"));
    assert_eq!(
        n.orders[0],
        Order { attribute: Some("fullname".into()), alias: None, entityname: None, descending: true }
    );
    let filter = &n.filters[0];
    assert!(!filter.or);
    let FilterItem::Filter(inner) = &filter.items[1] else { panic!() };
    assert!(inner.or);
    let FilterItem::Condition(c) = &inner.items[0] else { panic!() };
    assert_eq!(
        (c.attribute.as_str(), c.operator, c.values.as_slice()),
        ("statecode", Operator::Eq, &["0".to_string()][..])
    );
    let FilterItem::Condition(c) = &inner.items[2] else { panic!() };
    assert_eq!(c.entityname.as_deref(), Some("acct"));
    let FilterItem::Link(l) = &filter.items[2] else { panic!() };
    assert_eq!(l.link_type, LinkType::NotAny);
    assert_eq!(n.links[0].link_type, LinkType::Outer);
    assert_eq!(n.links[0].node.links[0].link_type, LinkType::Exists);
    assert_eq!(n.link_count(), 3);
}

#[test]
fn parses_aggregates() {
    let f = parse_fetchxml(
        "<fetch aggregate='true' aggregatelimit='10'><entity name='account'>\
         <attribute name='numberofemployees' alias='c' aggregate='countcolumn' distinct='true'/>\
         <attribute name='createdon' alias='m' groupby='true' dategrouping='month'/>\
         <order alias='m' descending='false'/></entity></fetch>",
    )
    .unwrap();
    assert!(f.aggregate);
    assert_eq!(f.aggregate_limit, Some(10));
    let a = &f.entity.node.attributes;
    assert_eq!(a[0].aggregate, Some(AggregateFn::CountColumn));
    assert!(a[0].distinct);
    assert_eq!(a[1].dategrouping, Some(DateGrouping::Month));
    assert!(a[1].groupby);
    assert_eq!(f.entity.node.orders[0].alias.as_deref(), Some("m"));
}

#[test]
fn value_counts_follow_the_operator() {
    let q = |cond: &str| format!("<fetch><entity name='account'><filter>{cond}</filter></entity></fetch>");
    assert!(parse_fetchxml(&q("<condition attribute='a' operator='null'/>")).is_ok());
    assert!(
        parse_fetchxml(&q("<condition attribute='a' operator='between'><value>1</value><value>2</value></condition>"))
            .is_ok()
    );
    assert!(parse_fetchxml(&q("<condition attribute='a' operator='eq' valueof='b'/>")).is_ok());
    for bad in [
        "<condition attribute='a' operator='null' value='1'/>",
        "<condition attribute='a' operator='eq'/>",
        "<condition attribute='a' operator='between' value='1'/>",
        "<condition attribute='a' operator='in'/>",
        "<condition attribute='a' operator='eq' value='1'><value>2</value></condition>",
        "<condition attribute='a' operator='in' valueof='b'/>",
    ] {
        assert_eq!(kind(&q(bad)), FetchXmlErrorKind::InvalidValueCount, "{bad}");
    }
    assert_eq!(kind(&q("<condition attribute='a' operator='equals' value='1'/>")), FetchXmlErrorKind::InvalidOperator);
    assert_eq!(kind(&q("<condition operator='eq' value='1'/>")), FetchXmlErrorKind::MissingAttribute);
}

#[test]
fn structural_errors_are_classified() {
    use FetchXmlErrorKind as K;
    assert_eq!(kind("<fetch><entity name='account'>"), K::InvalidXml);
    assert_eq!(kind(""), K::InvalidXml);
    assert_eq!(kind("<!DOCTYPE x [<!ENTITY a 'b'>]><fetch><entity name='account'/></fetch>"), K::InvalidXml);
    assert_eq!(kind("<query><entity name='account'/></query>"), K::InvalidNode);
    assert_eq!(kind("<fetch/>"), K::InvalidNode);
    assert_eq!(kind("<fetch><entity name='a'/><entity name='b'/></fetch>"), K::InvalidNode);
    assert_eq!(kind("<fetch><entity name='a'><column name='x'/></entity></fetch>"), K::InvalidNode);
    assert_eq!(kind("<fetch><entity name='a'>text</entity></fetch>"), K::InvalidNode);
    assert_eq!(kind("<fetch colour='red'><entity name='a'/></fetch>"), K::InvalidAttribute);
    assert_eq!(kind("<fetch><entity/></fetch>"), K::MissingAttribute);
    assert_eq!(kind("<fetch count='0'><entity name='a'/></fetch>"), K::InvalidValue);
    assert_eq!(kind("<fetch top='-1'><entity name='a'/></fetch>"), K::InvalidValue);
    assert_eq!(kind("<fetch distinct='maybe'><entity name='a'/></fetch>"), K::InvalidValue);
    assert_eq!(kind("<fetch mapping='internal'><entity name='a'/></fetch>"), K::InvalidValue);
    assert_eq!(kind("<fetch><entity name='a'><filter type='xor'/></entity></fetch>"), K::InvalidFilterType);
    assert_eq!(
        kind("<fetch><entity name='a'><link-entity name='b' link-type='left'/></entity></fetch>"),
        K::InvalidLinkType
    );
    assert_eq!(
        kind("<fetch><entity name='a'><link-entity name='b' link-type='any'/></entity></fetch>"),
        K::InvalidLinkType
    );
    assert_eq!(
        kind("<fetch><entity name='a'><filter><link-entity name='b' link-type='inner'/></filter></entity></fetch>"),
        K::InvalidLinkType
    );
    assert_eq!(
        kind("<fetch><entity name='a'><attribute name='x' aggregate='median' alias='m'/></entity></fetch>"),
        K::InvalidAggregate
    );
    assert_eq!(kind("<fetch><entity name='a'><order descending='true'/></entity></fetch>"), K::MissingAttribute);
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 10_000;
    let text =
        format!("<fetch><entity name='a'>{}{}</entity></fetch>", "<filter>".repeat(depth), "</filter>".repeat(depth));
    assert_eq!(kind(&text), FetchXmlErrorKind::TooDeep);
    for depth in [60, 63, 64, 65, 100, 130, 140, 250] {
        let mixed = format!(
            "<fetch><entity name='a'>{}{}</entity></fetch>",
            "<link-entity name='b'><filter>".repeat(depth / 2),
            "</filter></link-entity>".repeat(depth / 2)
        );
        let _ = parse_fetchxml(&mixed);
    }
    let ok = format!("<fetch><entity name='a'>{}{}</entity></fetch>", "<filter>".repeat(10), "</filter>".repeat(10));
    assert!(parse_fetchxml(&ok).is_ok());
}
