//! The CData connection properties that shape reads and writes rather than sign-in
//! (`Readonly`, `MaxRows`, `Pagesize`, `UseDisplayNames`), and a warning for each property that
//! d365 accepts, so that strings move over from the CData connector unchanged, but does not act on.

use d365_auth::{ConfigError, ConnectionConfig};

use crate::error::Error;

/// Largest page Dataverse serves (`Prefer: odata.maxpagesize`).
const MAX_PAGE_SIZE: u32 = 5000;

/// What the connection string asks of queries and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuerySettings {
    /// `Readonly=true`: writes are refused before anything is sent (a dry run is allowed).
    pub read_only: bool,
    /// `MaxRows=N` (N > 0): a query without aggregation returns at most N rows, as the CData
    /// connector's; `-1` or `0` (the default) returns every row.
    pub max_rows: Option<usize>,
    /// `Pagesize=N`: rows per page (1–5000) when the caller sets none (`--page-size`,
    /// `connect(page_size=…)`).
    pub page_size: Option<u32>,
}

/// Properties accepted for CData compatibility that change nothing in d365, with what d365 does
/// instead. `IncludeFormattedValues` is not among them: choice labels and lookup names are
/// always columns of their own (`statecodename`, `parentaccountidname`), whatever its value.
const WITHOUT_EFFECT: &[(&str, &str)] = &[
    ("AllowDuplicateRecords", "writes never run duplicate detection (the Web API's default)"),
    (
        "ContinueOnError",
        "bulk writes always go on past failed rows and report each one; ask for all or nothing with atomic writes",
    ),
    ("CustomUrlParams", "no extra URL parameters are sent"),
    ("EnableAtomicBatchOperations", "ask for all or nothing per write: --atomic, or atomic=True in Python"),
    ("EntityTypes", "every table the connection may read is listed"),
    ("IncludeLookUpLogicalName", "a lookup's target table is not a column"),
    ("IncludeNavigationKeys", "lookups are always columns (their GUID, and their name in a …name column)"),
    ("IncludeNavigationProperties", "navigation properties are not columns; join along lookups in SQL"),
    ("PseudoColumns", "there are no pseudo-columns"),
    ("UseClientSidePaging", "pages always follow the service's next links or key ranges"),
    ("UseDynamicStoredProcedures", "only the OAuth procedures can be run with EXEC"),
    ("UserDefinedViews", "views are not supported"),
    ("BrowsableSchemas", "every table the connection may read is listed"),
    ("Tables", "every table the connection may read is listed"),
    ("Views", "views are not supported"),
    ("Location", "no schema files are read or written"),
];

/// Reads `Readonly`, `MaxRows`, `Pagesize` and `UseDisplayNames`, and logs a warning for each
/// property of [`WITHOUT_EFFECT`] the string sets.
pub fn query_settings(config: &ConnectionConfig) -> Result<QuerySettings, Error> {
    for (name, instead) in WITHOUT_EFFECT {
        if config.property(name).is_some() {
            tracing::warn!("connection property {name} has no effect in d365: {instead}");
        }
    }
    if let Some(v) = config.property("UseDisplayNames")
        && flag("UseDisplayNames", v)?
    {
        return Err(ConfigError::NotSupported(
            "UseDisplayNames=true is not supported: tables and columns are named by their logical names \
             (`d365 describe TABLE` lists them); remove the property"
                .into(),
        )
        .into());
    }
    let read_only = match config.property("Readonly") {
        Some(v) => flag("Readonly", v)?,
        None => false,
    };
    let max_rows = match config.property("MaxRows") {
        None => None,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n <= 0 => None,
            Ok(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(_) => return Err(invalid("MaxRows", v, "a whole number of rows (-1 for no limit)")),
        },
    };
    let page_size = match config.property("Pagesize") {
        None => None,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n @ 1..=MAX_PAGE_SIZE) => Some(n),
            _ => return Err(invalid("Pagesize", v, "a number of rows from 1 to 5000")),
        },
    };
    Ok(QuerySettings { read_only, max_rows, page_size })
}

/// A yes/no connection property (`true`/`false`, `yes`/`no`, `1`/`0`, `on`/`off`, any case).
pub(crate) fn flag(key: &'static str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

fn invalid(key: &'static str, value: &str, expected: &str) -> Error {
    ConfigError::InvalidValue { key, value: value.to_string(), expected: expected.to_string() }.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use d365_auth::Environment;

    fn settings(extra: &str) -> Result<QuerySettings, Error> {
        let text = format!(
            "OrganizationUrl=https://contoso.crm.dynamics.com;AuthScheme=AzureServicePrincipal;\
             AzureTenant=contoso.onmicrosoft.com;OAuthClientId=app;OAuthClientSecret=s;{extra}"
        );
        let config = crate::connection::parse_connection(&text, &[], &Environment::empty()).expect("valid");
        query_settings(&config)
    }

    #[test]
    fn defaults_read_and_write_everything() {
        assert_eq!(settings("").unwrap(), QuerySettings::default());
    }

    #[test]
    fn readonly_maxrows_and_pagesize_are_read() {
        let s = settings("Readonly=True;MaxRows=25;Pagesize=500").unwrap();
        assert_eq!(s, QuerySettings { read_only: true, max_rows: Some(25), page_size: Some(500) });
        assert_eq!(settings("MaxRows=-1").unwrap().max_rows, None);
        assert_eq!(settings("MaxRows=0").unwrap().max_rows, None);
        assert!(!settings("Readonly=false").unwrap().read_only);
    }

    #[test]
    fn bad_values_name_the_property_and_what_it_takes() {
        for (extra, expected) in [
            ("Readonly=maybe", "Readonly=maybe is not valid: expected true or false"),
            ("MaxRows=lots", "MaxRows=lots is not valid: expected a whole number of rows"),
            ("Pagesize=0", "Pagesize=0 is not valid: expected a number of rows from 1 to 5000"),
            ("Pagesize=9999", "Pagesize=9999 is not valid"),
            ("Pagesize=abc", "Pagesize=abc is not valid"),
        ] {
            let e = settings(extra).unwrap_err();
            assert!(matches!(e, Error::Connection(_)), "{extra}: {e:?}");
            assert!(e.to_string().contains(expected), "{extra}: {e}");
        }
    }

    #[test]
    fn display_names_are_refused_when_asked_for() {
        let e = settings("UseDisplayNames=true").unwrap_err();
        assert!(e.to_string().contains("UseDisplayNames=true is not supported"), "{e}");
        assert_eq!(settings("UseDisplayNames=false").unwrap(), QuerySettings::default());
    }
}
