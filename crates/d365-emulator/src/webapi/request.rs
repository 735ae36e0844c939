//! Reading what a client sent: query options (however a standards-following client encodes
//! them) and `Prefer` preferences.

use super::error::{DvError, DvResult};
use axum::http::HeaderMap;

/// Decoded query string: `(name, value)` pairs in order.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// All pairs, decoded (`+` is a space, `%XX` escapes resolved, `%24select` is `$select`).
    pub pairs: Vec<(String, String)>,
}

/// System query options Dataverse knows.
const KNOWN: &[&str] = &[
    "$select",
    "$filter",
    "$orderby",
    "$top",
    "$count",
    "$expand",
    "$apply",
    "$skiptoken",
    "$deltatoken",
    "$skip",
    "$search",
    "$format",
    "$levels",
    "$compute",
    "$index",
    "$schemaversion",
    "$id",
];

impl QueryOptions {
    /// Parses a raw query string. Repeated system options are refused as Dataverse does.
    pub fn parse(raw: Option<&str>) -> DvResult<Self> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if k.starts_with('$') && pairs[..i].iter().any(|(p, _)| p == k) {
                return Err(DvError::bad_query(format!(
                    "Query option '{k}' was specified more than once, but it must be specified at most once."
                )));
            }
            if k.starts_with('$') && !KNOWN.contains(&k.as_str()) {
                return Err(DvError::bad_query(format!("The query parameter '{k}' is not supported.")));
            }
        }
        Ok(Self { pairs })
    }

    /// The value of option `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Parameter aliases (`@p1=...`).
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.pairs.iter().filter(|(k, _)| k.starts_with('@')).cloned().collect()
    }

    /// Refuses the options Dataverse does not support.
    pub fn refuse_unsupported(&self) -> DvResult<()> {
        for opt in ["$skip", "$search", "$format", "$compute", "$index", "$levels"] {
            if self.get(opt).is_some() {
                return Err(DvError::bad_query(format!("The query parameter {opt} is not supported")));
            }
        }
        Ok(())
    }
}

/// The preferences of a request (`Prefer` headers, possibly several, comma-separated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefer {
    /// `return=representation`.
    pub return_representation: bool,
    /// `odata.maxpagesize=N`.
    pub max_page_size: Option<usize>,
    /// `odata.include-annotations="..."` patterns.
    pub annotations: Vec<String>,
    /// The raw include-annotations value (echoed in Preference-Applied).
    pub annotations_raw: Option<String>,
    /// `odata.track-changes`.
    pub track_changes: bool,
    /// `odata.continue-on-error`.
    pub continue_on_error: bool,
}

/// Splits on commas outside double quotes.
fn split_outside_quotes(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, ch) in s.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl Prefer {
    /// The `odata.maxpagesize` the service honours: Dataverse ignores a request for more than
    /// 5,000 rows a page (the default page then applies, and no `Preference-Applied` says
    /// otherwise).
    pub fn honoured_page_size(&self) -> Option<usize> {
        self.max_page_size.filter(|n| *n <= super::query::MAX_PAGE)
    }

    /// Reads every `Prefer` header.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut p = Prefer::default();
        for value in headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()) {
            for item in split_outside_quotes(value) {
                let item = item.trim();
                let (name, val) = item.split_once('=').map(|(n, v)| (n.trim(), Some(v.trim()))).unwrap_or((item, None));
                match name.to_ascii_lowercase().as_str() {
                    "return" => p.return_representation = val.is_some_and(|v| v.eq_ignore_ascii_case("representation")),
                    "odata.maxpagesize" => p.max_page_size = val.and_then(|v| v.trim_matches('"').parse().ok()),
                    "odata.include-annotations" => {
                        let v = val.unwrap_or("").trim_matches('"');
                        p.annotations_raw = Some(v.to_string());
                        p.annotations = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                    }
                    "odata.track-changes" => p.track_changes = true,
                    "odata.continue-on-error" => p.continue_on_error = true,
                    _ => {}
                }
            }
        }
        p
    }

    /// Whether annotation `term` (e.g. `OData.Community.Display.V1.FormattedValue`) was asked for.
    pub fn wants(&self, term: &str) -> bool {
        self.annotations.iter().any(|pat| {
            let (neg, pat) = pat.strip_prefix('-').map(|p| (true, p)).unwrap_or((false, pat.as_str()));
            let hit = pat == "*" || pat == term || pat.strip_suffix('*').is_some_and(|prefix| term.starts_with(prefix));
            hit && !neg
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options_decode_every_encoding() {
        let q = QueryOptions::parse(Some("%24select=name,revenue&$filter=name+eq+%27A%26B%27&$top=5")).unwrap();
        assert_eq!(q.get("$select"), Some("name,revenue"));
        assert_eq!(q.get("$filter"), Some("name eq 'A&B'"));
        assert!(QueryOptions::parse(Some("$top=1&%24top=2")).is_err());
        assert!(QueryOptions::parse(Some("$foo=1")).is_err());
        assert!(QueryOptions::parse(Some("$skip=5")).unwrap().refuse_unsupported().is_err());
    }

    #[test]
    fn prefer_headers_split_outside_quotes() {
        let mut h = HeaderMap::new();
        h.append("prefer", "odata.include-annotations=\"OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.*\", odata.maxpagesize=10".parse().unwrap());
        h.append("Prefer", "return=representation".parse().unwrap());
        let p = Prefer::from_headers(&h);
        assert_eq!(p.max_page_size, Some(10));
        assert!(p.return_representation);
        assert!(p.wants("OData.Community.Display.V1.FormattedValue"));
        assert!(p.wants("Microsoft.Dynamics.CRM.lookuplogicalname"));
        assert!(!p.wants("Microsoft.PowerApps.CDS.TraceText"));
    }
}
