//! Feeds arbitrary UTF-8 to every d365-odata parser.
//!
//! Input layout: the first line is the option value; every further line `name=value` is a
//! parameter alias (`@p1='x'`) for the parsers that take aliases.
//!
//! Oracles besides "never panics / never overflows the stack":
//! * every error's `byte_offset` is a char boundary of its `input` and `position` is the UTF-16
//!   length of the prefix before it;
//! * a parsed `$filter` printed with `Display` parses back to the same tree (without aliases,
//!   so that lambda-variable scoping of alias values cannot differ), unless the fully
//!   parenthesised text hits the depth limit.
#![no_main]

use d365_odata::{
    Aliases, ErrorKind, ParseError, QueryOptions, parse_apply, parse_count, parse_expand, parse_filter, parse_orderby,
    parse_select, parse_top,
};
use libfuzzer_sys::fuzz_target;

fn check_err<T>(r: Result<T, ParseError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(e.byte_offset <= e.input.len(), "{e:?}");
            assert!(e.input.is_char_boundary(e.byte_offset), "{e:?}");
            assert_eq!(e.position, e.input[..e.byte_offset].encode_utf16().count(), "{e:?}");
            assert!(!e.message.is_empty());
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let value = lines.next().unwrap_or_default();
    let pairs: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let aliases = Aliases::from_pairs(&pairs);
    let none = Aliases::new();

    // $filter without aliases, with the Display round trip
    if let Some(e) = check_err(parse_filter(value, &none)) {
        let printed = e.to_string();
        match parse_filter(&printed, &none) {
            Ok(back) => assert_eq!(back, e, "round trip through {printed:?}"),
            Err(err) => assert_eq!(err.kind, ErrorKind::TooDeep, "{printed:?}: {err:?}"),
        }
    }
    // the whole input as one value too (newlines are just whitespace there)
    check_err(parse_filter(text, &none));
    check_err(parse_filter(value, &aliases)).map(|e| e.to_string());
    check_err(parse_orderby(value, &aliases));
    check_err(parse_apply(value, &aliases));
    check_err(parse_expand(value));
    check_err(parse_select(value));
    check_err(parse_top(value));
    check_err(parse_count(value));

    // as a whole query string: name=value pairs separated by '&'
    let query: Vec<(&str, &str)> = text.split('&').map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    check_err(QueryOptions::parse(query));
});
