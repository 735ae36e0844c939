//! Feeds arbitrary UTF-8 to the d365-odata FetchXML parser.
//!
//! Oracles besides "never panics / never overflows the stack": an error always has a
//! message, and a parsed query keeps the invariants the emulator relies on (every condition
//! has the number of values its operator takes, filter-only link types only inside filters,
//! positive paging numbers).
#![no_main]

use d365_odata::fetchxml::{Arity, Filter, FilterItem, LinkEntity, Node, parse_fetchxml};
use libfuzzer_sys::fuzz_target;

fn check_filter(f: &Filter) {
    for item in &f.items {
        match item {
            FilterItem::Condition(c) => {
                let n = c.values.len();
                if c.valueof.is_some() {
                    assert_eq!(n, 0);
                    assert_eq!(c.operator.arity(), Arity::One);
                } else {
                    match c.operator.arity() {
                        Arity::None => assert_eq!(n, 0),
                        Arity::One => assert_eq!(n, 1),
                        Arity::Two => assert_eq!(n, 2),
                        Arity::Many => assert!(n >= 1),
                    }
                }
                assert!(!c.attribute.is_empty());
            }
            FilterItem::Filter(inner) => check_filter(inner),
            FilterItem::Link(l) => {
                assert!(l.link_type.is_filter_type());
                check_link(l);
            }
        }
    }
}

fn check_link(l: &LinkEntity) {
    assert!(!l.name.is_empty());
    check_node(&l.node);
}

fn check_node(n: &Node) {
    for l in &n.links {
        assert!(!l.link_type.is_filter_type());
        check_link(l);
    }
    n.filters.iter().for_each(check_filter);
    for a in &n.attributes {
        assert!(!a.name.is_empty());
    }
    for o in &n.orders {
        assert!(o.attribute.is_some() || o.alias.is_some());
    }
    let _ = n.link_count();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_fetchxml(text) {
        Ok(f) => {
            assert!(!f.entity.name.is_empty());
            for v in [f.count, f.page, f.top, f.aggregate_limit].into_iter().flatten() {
                assert!(v > 0);
            }
            check_node(&f.entity.node);
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
});
