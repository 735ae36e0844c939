//! Feeds arbitrary UTF-8 to the connection-string parser and the typed configuration.
//!
//! Oracles besides "never panics":
//! * a syntax error's `position` is within the input and on a char boundary, and its message
//!   never contains the text after the '=' of a secret key;
//! * a parsed string printed with `Display` parses back to the same keys and (for non-secret
//!   keys) the same values; secret values print as `<redacted>`;
//! * no secret value (of a secret key, 6+ characters, not occurring elsewhere in the input)
//!   appears in the `Debug` / `Display` of the parsed string, the typed configuration, or its
//!   error.
#![no_main]

use d365_auth::connection_string::ConnectionString;
use d365_auth::{ConnectionConfig, Environment, properties};
use libfuzzer_sys::fuzz_target;

fn leaks(text: &str, secrets: &[String]) -> Option<String> {
    secrets.iter().find(|s| text.contains(s.as_str())).cloned()
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = ConnectionString::parse(input);
    let cs = match parsed {
        Err(e) => {
            assert!(e.position <= input.len(), "{e:?}");
            assert!(input.is_char_boundary(e.position), "{e:?}");
            assert!(!e.message.is_empty());
            None
        }
        Ok(cs) => Some(cs),
    };
    // secrets: values of secret keys that occur nowhere else in the input
    let mut secrets = Vec::new();
    if let Some(cs) = &cs {
        for p in cs.pairs() {
            if properties::is_secret_key(&p.normalized) && p.value.chars().count() >= 6 && input.matches(p.value.as_str()).count() == 1 {
                let elsewhere = cs.pairs().iter().any(|q| !std::ptr::eq(p, q) && (q.key.contains(&p.value) || q.value.contains(&p.value)));
                if !elsewhere {
                    secrets.push(p.value.clone());
                }
            }
        }
        let shown = cs.to_string();
        let dbg = format!("{cs:?}");
        assert!(leaks(&shown, &secrets).is_none() && leaks(&dbg, &secrets).is_none(), "secret shown: {shown} / {dbg}");
        let back = ConnectionString::parse(&shown).unwrap_or_else(|e| panic!("re-parse of {shown:?}: {e}"));
        assert_eq!(back.pairs().len(), cs.pairs().len(), "{shown:?}");
        for (a, b) in cs.pairs().iter().zip(back.pairs()) {
            assert_eq!(a.normalized, b.normalized, "{shown:?}");
            if properties::is_secret_key(&a.normalized) {
                assert_eq!(b.value, "<redacted>");
            } else {
                assert_eq!(a.value, b.value, "{shown:?}");
            }
        }
    }
    let env = Environment::empty();
    match ConnectionConfig::parse(input, &env) {
        Ok(cfg) => {
            let dbg = format!("{cfg:?}");
            assert!(leaks(&dbg, &secrets).is_none(), "secret in Debug: {dbg}");
            let _ = (cfg.resource(), cfg.web_api_url(), cfg.app_scope(), cfg.delegated_scope());
            if let Err(e) = d365_auth::plan(&cfg) {
                let shown = format!("{e} {e:?}");
                assert!(leaks(&shown, &secrets).is_none(), "secret in plan error: {shown}");
            }
        }
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(leaks(&shown, &secrets).is_none(), "secret in error: {shown}");
        }
    }
});
