//! Feeds arbitrary UTF-8 to the connection-string parser and the typed configuration.
//!
//! Oracles besides "never panics":
//! * a syntax error's `position` is within the input and on a char boundary;
//! * a parsed string prints (`Display`) as exactly `key=value;` per pair, values quoted where
//!   needed and secret values as `<redacted>`, and that text parses back to the same keys and
//!   non-secret values;
//! * with every secret value replaced by a unique marker, no marker appears in the `Debug` or
//!   `Display` of the parsed string, of the typed configuration, or of any error (parse or
//!   flow selection).
#![no_main]

use d365_auth::connection_string::{ConnectionString, quote};
use d365_auth::{ConnectionConfig, Environment, properties};
use libfuzzer_sys::fuzz_target;

const MARKER: &str = "D365FUZZSECRET";

fn check_no_marker(what: &str, text: &str) {
    assert!(!text.contains(MARKER), "a secret value appears in {what}: {text}");
}

/// Parses `input` as a configuration; with `check`, asserts no marker is shown.
fn check_config(input: &str, env: &Environment, check: bool) {
    match ConnectionConfig::parse(input, env) {
        Ok(cfg) => {
            if check {
                check_no_marker("the config's Debug", &format!("{cfg:?}"));
            }
            let _ = (cfg.resource(), cfg.web_api_url(), cfg.app_scope(), cfg.delegated_scope());
            if let Err(e) = d365_auth::plan(&cfg)
                && check
            {
                check_no_marker("a flow error", &format!("{e} {e:?}"));
            }
        }
        Err(e) if check => check_no_marker("a config error", &format!("{e} {e:?}")),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let env = Environment::empty();
    let cs = match ConnectionString::parse(input) {
        Err(e) => {
            assert!(e.position <= input.len(), "{e:?}");
            assert!(input.is_char_boundary(e.position), "{e:?}");
            assert!(!e.message.is_empty());
            // still: the typed layer must not panic on it
            let _ = ConnectionConfig::parse(input, &env);
            return;
        }
        Ok(cs) => cs,
    };
    // Display: exactly the pairs, secrets redacted; and it parses back
    let shown = cs.to_string();
    let expected: String = cs
        .pairs()
        .iter()
        .map(|p| {
            if properties::is_secret_key(&p.normalized) {
                format!("{}=<redacted>;", p.key)
            } else {
                format!("{}={};", p.key, quote(&p.value))
            }
        })
        .collect();
    assert_eq!(shown, expected);
    let back = ConnectionString::parse(&shown).unwrap_or_else(|e| panic!("re-parse of {shown:?}: {e}"));
    assert_eq!(back.pairs().len(), cs.pairs().len(), "{shown:?}");
    for (a, b) in cs.pairs().iter().zip(back.pairs()) {
        assert_eq!(a.normalized, b.normalized, "{shown:?}");
        if !properties::is_secret_key(&a.normalized) {
            assert_eq!(a.value, b.value, "{shown:?}");
        }
    }
    check_config(input, &env, false);

    // the same string with each secret value replaced by a marker
    if input.contains(MARKER) {
        return;
    }
    let mut marked = String::new();
    let mut any = false;
    for (i, p) in cs.pairs().iter().enumerate() {
        if properties::is_secret_key(&p.normalized) && !p.value.trim().is_empty() {
            marked.push_str(&format!("{}={MARKER}{i};", p.key));
            any = true;
        } else {
            marked.push_str(&format!("{}={};", p.key, quote(&p.value)));
        }
    }
    if any {
        let m = ConnectionString::parse(&marked).unwrap_or_else(|e| panic!("{marked:?}: {e}"));
        check_no_marker("the parsed string", &format!("{m} {m:?}"));
        check_config(&marked, &env, true);
    }
});
