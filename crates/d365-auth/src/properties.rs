//! Every connection property d365 knows: the CData names (reference
//! `connection-properties.md`), a few d365 extensions, and which values are secrets.
//!
//! Properties fall in three groups:
//! * **sign-in** properties, typed by [`crate::config::ConnectionConfig`];
//! * **pass-through** properties that belong to the Web API client or the SQL layer
//!   (`Pagesize`, `MaxRows`, `IncludeFormattedValues`, …): accepted and kept as text for them;
//! * **ignored** properties that CData has but d365 does not need (`Verbosity`, `Logfile`,
//!   `RTK`, caching, …): accepted so pasted CData strings keep working, then ignored (d365 logs
//!   through `tracing`, configured by `RUST_LOG` / the CLI's `-v`).
//!
//! Anything else is an error that names the nearest known property.

use crate::connection_string::normalize_key;

/// What d365 does with a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Read by the sign-in layer.
    SignIn,
    /// Kept for the Web API client / SQL layer.
    PassThrough,
    /// Accepted for CData compatibility and ignored.
    Ignored,
}

/// One known property.
#[derive(Debug, Clone, Copy)]
pub struct Property {
    /// Canonical spelling.
    pub name: &'static str,
    /// Other accepted spellings.
    pub aliases: &'static [&'static str],
    /// Whether its value is a secret.
    pub secret: bool,
    /// What d365 does with it.
    pub group: Group,
}

const fn p(name: &'static str, group: Group) -> Property {
    Property { name, aliases: &[], secret: false, group }
}

const fn s(name: &'static str, group: Group) -> Property {
    Property { name, aliases: &[], secret: true, group }
}

use Group::{Ignored, PassThrough, SignIn};

/// The table of known properties.
pub const PROPERTIES: &[Property] = &[
    // connection and sign-in
    Property { name: "OrganizationUrl", aliases: &["OrganizationUri", "Url"], secret: false, group: SignIn },
    p("Edition", SignIn),
    p("ApiVersion", SignIn),
    p("AuthScheme", SignIn),
    p("InitiateOAuth", SignIn),
    p("OAuthGrantType", SignIn),
    p("OAuthClientId", SignIn),
    s("OAuthClientSecret", SignIn),
    s("OAuthAccessToken", SignIn),
    s("OAuthRefreshToken", SignIn),
    s("OAuthVerifier", SignIn),
    p("OAuthSettingsLocation", SignIn),
    p("OAuthExpiresIn", SignIn),
    p("OAuthTokenTimestamp", SignIn),
    Property { name: "CallbackURL", aliases: &["RedirectUri", "RedirectUrl"], secret: false, group: SignIn },
    p("AzureTenant", SignIn),
    p("AzureEnvironment", SignIn),
    p("AzureAuthorityHost", SignIn),
    p("AzureFederatedTokenFile", SignIn),
    p("AzureMSIEndpoint", SignIn),
    p("OAuthJWTCert", SignIn),
    p("OAuthJWTCertType", SignIn),
    s("OAuthJWTCertPassword", SignIn),
    p("OAuthJWTCertSubject", SignIn),
    p("OAuthJWTKey", SignIn),
    p("OAuthJWTAlgorithm", SignIn),
    p("OAuthJWTIssuer", SignIn),
    p("OAuthJWTSubject", SignIn),
    p("Scope", SignIn),
    p("Prompt", SignIn),
    p("BrowserCommand", SignIn),
    Property { name: "CallerId", aliases: &["MSCRMCallerID"], secret: false, group: SignIn },
    p("CallerObjectId", SignIn),
    p("Timeout", SignIn),
    p("SSLServerCert", SignIn),
    p("ProxyAutoDetect", SignIn),
    p("ProxyServer", SignIn),
    p("ProxyPort", SignIn),
    p("ProxyAuthScheme", SignIn),
    p("ProxyUser", SignIn),
    s("ProxyPassword", SignIn),
    p("ProxySSLType", SignIn),
    p("ProxyExceptions", SignIn),
    p("FirewallType", SignIn),
    p("FirewallServer", SignIn),
    p("FirewallPort", SignIn),
    p("FirewallUser", SignIn),
    s("FirewallPassword", SignIn),
    p("User", SignIn),
    s("Password", SignIn),
    p("ADFSServer", SignIn),
    // for the Web API client and the SQL layer
    p("AllowDuplicateRecords", PassThrough),
    p("ContinueOnError", PassThrough),
    p("CrossCompany", PassThrough),
    p("CustomUrlParams", PassThrough),
    p("EnableAtomicBatchOperations", PassThrough),
    p("EntityTypes", PassThrough),
    p("IncludeFormattedValues", PassThrough),
    p("IncludeLookUpLogicalName", PassThrough),
    p("IncludeNavigationKeys", PassThrough),
    p("IncludeNavigationProperties", PassThrough),
    p("MaxRows", PassThrough),
    p("Pagesize", PassThrough),
    p("PseudoColumns", PassThrough),
    p("Readonly", PassThrough),
    p("UseClientSidePaging", PassThrough),
    p("UseDisplayNames", PassThrough),
    p("UseDynamicStoredProcedures", PassThrough),
    p("UserDefinedViews", PassThrough),
    p("BrowsableSchemas", PassThrough),
    p("Tables", PassThrough),
    p("Views", PassThrough),
    p("Location", PassThrough),
    // accepted for CData compatibility, ignored
    p("Verbosity", Ignored),
    p("Logfile", Ignored),
    p("LogModules", Ignored),
    p("MaxLogFileSize", Ignored),
    p("MaxLogFileCount", Ignored),
    s("RTK", Ignored),
    p("Other", Ignored),
    p("AutoCache", Ignored),
    p("CacheLocation", Ignored),
    p("CacheTolerance", Ignored),
    p("Offline", Ignored),
    p("CacheMetadata", Ignored),
    p("CacheConnection", Ignored),
    p("CacheProvider", Ignored),
];

/// The property whose name or alias normalises to `normalized`.
pub fn lookup(normalized: &str) -> Option<&'static Property> {
    PROPERTIES
        .iter()
        // canonical names and aliases have no whitespace: comparing case-insensitively is enough
        .find(|p| {
            p.name.eq_ignore_ascii_case(normalized) || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(normalized))
        })
}

/// Whether the (normalised) key holds a secret; unknown keys whose name suggests a secret
/// count as secret too.
pub fn is_secret_key(normalized: &str) -> bool {
    match lookup(normalized) {
        Some(p) => p.secret,
        None => ["secret", "password", "token", "verifier", "key"].iter().any(|w| normalized.contains(w)),
    }
}

/// The known property nearest to `key` (edit distance on normalised names), when it is close
/// enough to be a plausible typo.
pub fn suggest(key: &str) -> Option<&'static str> {
    let n: Vec<char> = normalize_key(key).chars().take(128).collect();
    let limit = (n.len() / 3).max(2);
    let mut best: Option<(usize, &'static str)> = None;
    let mut cand = Vec::with_capacity(32);
    let mut rows = (Vec::with_capacity(40), Vec::with_capacity(40));
    for p in PROPERTIES {
        for name in std::iter::once(&p.name).chain(p.aliases.iter()) {
            // the distance is at least the length difference: skip hopeless candidates
            if name.len().abs_diff(n.len()) > limit {
                continue;
            }
            cand.clear();
            cand.extend(name.chars().map(|c| c.to_ascii_lowercase()));
            let d = distance(&n, &cand, &mut rows);
            if best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, p.name));
            }
        }
    }
    let (d, name) = best?;
    (d <= limit).then_some(name)
}

/// Levenshtein distance (by chars), bounded work for long inputs.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(128).collect();
    let b: Vec<char> = b.chars().take(128).collect();
    distance(&a, &b, &mut (Vec::new(), Vec::new()))
}

fn distance(a: &[char], b: &[char], rows: &mut (Vec<usize>, Vec<usize>)) -> usize {
    let (prev, cur) = rows;
    prev.clear();
    prev.extend(0..=b.len());
    cur.clear();
    cur.resize(b.len() + 1, 0);
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_alias_and_case() {
        assert_eq!(lookup("organizationurl").map(|p| p.name), Some("OrganizationUrl"));
        assert_eq!(lookup("url").map(|p| p.name), Some("OrganizationUrl"));
        assert!(lookup("oauthclientsecret").unwrap().secret);
        assert!(is_secret_key("somenewpassword"));
    }

    #[test]
    fn suggestions_for_typos() {
        assert_eq!(suggest("OAuthClientSecert"), Some("OAuthClientSecret"));
        assert_eq!(suggest("AzureTennant"), Some("AzureTenant"));
        assert_eq!(suggest("Organisation Url"), Some("OrganizationUrl"));
        assert_eq!(suggest("CallbackUri"), Some("CallbackURL"));
        assert_eq!(suggest("Completely"), None);
    }

    #[test]
    fn names_are_unique() {
        let mut all: Vec<String> = PROPERTIES
            .iter()
            .flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied()))
            .map(normalize_key)
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
