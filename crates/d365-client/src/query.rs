//! [`Query`]: one read of one entity set — `$select`, `$filter`, `$orderby`, `$top`, `$count`,
//! `$expand`, `$apply`, annotations and page size — and the exact request it becomes.
//!
//! The filter is a raw OData expression (the SQL layer builds it); this module only encodes it.
//! Values are percent-encoded so that `+`, `&`, `#`, `'`, `%`, spaces and non-ASCII text reach
//! the service unchanged (`+` would otherwise read as a space). [`Query::plan`] gives the exact
//! URL and `Prefer` header, which `--explain` prints.
//!
//! `$top` and `Prefer: odata.maxpagesize` do not mix (the service ignores `$top` when both are
//! present), so a query sends `$top=n` only when `n` fits in one page; otherwise it pages and the
//! page stream stops after `n` rows.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use crate::error::ClientError;

/// Annotation of formatted values (choice labels, lookup names, money and dates as text).
pub const FORMATTED_VALUE: &str = "OData.Community.Display.V1.FormattedValue";
/// Annotation naming the table a lookup value points to.
pub const LOOKUP_LOGICAL_NAME: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";
/// Annotation naming the navigation property of a lookup value.
pub const ASSOCIATED_NAVIGATION_PROPERTY: &str = "Microsoft.Dynamics.CRM.associatednavigationproperty";
/// Annotation with the total record count (with `$count=true`).
pub const TOTAL_RECORD_COUNT: &str = "Microsoft.Dynamics.CRM.totalrecordcount";
/// Annotation saying the total count passed the 5000 cap.
pub const TOTAL_RECORD_COUNT_LIMIT_EXCEEDED: &str = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded";

/// The largest page the service serves.
pub const MAX_PAGE_SIZE: u32 = 5000;

/// Characters left as they are in a query option value: unreserved characters and the OData
/// punctuation that is unambiguous in a query (`,()/:@!*$`). Everything else — `+ & # ' % = ; ?`,
/// spaces, quotes, brackets and non-ASCII — is percent-encoded (UTF-8).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b',')
    .remove(b'(')
    .remove(b')')
    .remove(b'/')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'*')
    .remove(b'$');

/// Characters left as they are in a path segment such as `accounts(accountnumber='A1')`:
/// unreserved characters and `(),=:@!*$`; the quote is encoded as `%27` as browsers do.
pub(crate) const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b',')
    .remove(b'(')
    .remove(b')')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'*')
    .remove(b'$');

/// Percent-encodes a query option value.
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Quotes a string as an OData literal: `O'Brien` → `'O''Brien'` (not yet percent-encoded).
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A read of one entity set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Entity set name (`accounts`), not the logical name.
    pub entity_set: String,
    /// `$select` columns; empty selects all (slow on wide tables).
    pub select: Vec<String>,
    /// `$filter` expression (raw OData).
    pub filter: Option<String>,
    /// `$orderby` items (`name desc`).
    pub order_by: Vec<String>,
    /// At most this many rows in total.
    pub top: Option<u64>,
    /// `$count=true`.
    pub count: bool,
    /// `$expand` (raw OData).
    pub expand: Option<String>,
    /// `$apply` (raw OData).
    pub apply: Option<String>,
    /// Annotations for `Prefer: odata.include-annotations` (`*` for all).
    pub annotations: Vec<String>,
    /// Page size for `Prefer: odata.maxpagesize` (1–5000); `None` uses the client default.
    pub max_page_size: Option<u32>,
    /// Extra query parameters (parameter aliases such as `@p1`), values not yet encoded.
    pub params: Vec<(String, String)>,
}

/// The exact request of a query's first page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlan {
    /// The URL, as sent.
    pub url: Url,
    /// The `Prefer` header, if any.
    pub prefer: Option<String>,
    /// Rows after which the page stream stops (the query's `top`).
    pub limit: Option<u64>,
}

impl std::fmt::Display for RequestPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GET {}", self.url)?;
        if let Some(p) = &self.prefer {
            write!(f, "\nPrefer: {p}")?;
        }
        if let Some(n) = self.limit {
            write!(f, "\n(stop after {n} rows)")?;
        }
        Ok(())
    }
}

impl Query {
    /// A query of every row and column of `entity_set`.
    pub fn new(entity_set: impl Into<String>) -> Self {
        Self { entity_set: entity_set.into(), ..Self::default() }
    }

    /// Sets `$select`.
    pub fn select<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.select = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `$filter` (a raw OData expression; string literals via [`string_literal`]).
    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.filter = Some(expression.into());
        self
    }

    /// Appends an `$orderby` item.
    pub fn order_by(mut self, column: &str, descending: bool) -> Self {
        self.order_by.push(if descending { format!("{column} desc") } else { format!("{column} asc") });
        self
    }

    /// Reads at most `n` rows.
    pub fn top(mut self, n: u64) -> Self {
        self.top = Some(n);
        self
    }

    /// Asks for `@odata.count`.
    pub fn count(mut self, yes: bool) -> Self {
        self.count = yes;
        self
    }

    /// Sets `$expand` (raw OData).
    pub fn expand(mut self, expand: impl Into<String>) -> Self {
        self.expand = Some(expand.into());
        self
    }

    /// Sets `$apply` (raw OData).
    pub fn apply(mut self, apply: impl Into<String>) -> Self {
        self.apply = Some(apply.into());
        self
    }

    /// Asks for these annotations (e.g. [`FORMATTED_VALUE`], [`LOOKUP_LOGICAL_NAME`], or `*`).
    pub fn annotations<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.annotations = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the page size (clamped to 1–5000).
    pub fn max_page_size(mut self, n: u32) -> Self {
        self.max_page_size = Some(n.clamp(1, MAX_PAGE_SIZE));
        self
    }

    /// Adds a query parameter such as a parameter alias (`@p1`, `'lastname'`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Whether `$top` goes into the URL: only when it fits in one page (see the module docs).
    fn top_in_url(&self, page_size: Option<u32>) -> Option<u64> {
        let top = self.top?;
        let page = u64::from(page_size.unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE));
        (top <= page).then_some(top)
    }

    /// The path and query relative to the Web API root (`accounts?$select=name`), encoded.
    /// `default_page_size` is the client's default page size.
    pub fn relative_url(&self, default_page_size: Option<u32>) -> String {
        let page_size = self.max_page_size.or(default_page_size);
        let mut parts: Vec<String> = Vec::new();
        let mut push = |k: &str, v: &str| parts.push(format!("{k}={}", encode_query_value(v)));
        if !self.select.is_empty() {
            push("$select", &self.select.join(","));
        }
        if let Some(f) = &self.filter {
            push("$filter", f);
        }
        if let Some(a) = &self.apply {
            push("$apply", a);
        }
        if !self.order_by.is_empty() {
            push("$orderby", &self.order_by.join(","));
        }
        if let Some(e) = &self.expand {
            push("$expand", e);
        }
        if let Some(t) = self.top_in_url(page_size) {
            push("$top", &t.to_string());
        }
        if self.count {
            push("$count", "true");
        }
        for (k, v) in &self.params {
            push(&encode_query_value(k), v);
        }
        let set = utf8_percent_encode(&self.entity_set, PATH_SEGMENT);
        if parts.is_empty() { set.to_string() } else { format!("{set}?{}", parts.join("&")) }
    }

    /// The `Prefer` header: the page size (unless `$top` is in the URL) and the annotations.
    pub fn prefer(&self, default_page_size: Option<u32>) -> Option<String> {
        let page_size = self.max_page_size.or(default_page_size);
        let mut prefs = Vec::new();
        if self.top_in_url(page_size).is_none()
            && let Some(n) = page_size
        {
            prefs.push(format!("odata.maxpagesize={}", n.clamp(1, MAX_PAGE_SIZE)));
        }
        if !self.annotations.is_empty() {
            prefs.push(format!("odata.include-annotations=\"{}\"", self.annotations.join(",")));
        }
        (!prefs.is_empty()).then(|| prefs.join(","))
    }

    /// The exact first request under the Web API root `base`: URL, `Prefer` header, and row limit.
    pub fn plan(&self, base: &Url, default_page_size: Option<u32>) -> Result<RequestPlan, ClientError> {
        if self.entity_set.is_empty() {
            return Err(ClientError::InvalidArgument("the query has no entity set".into()));
        }
        let url = base
            .join(&self.relative_url(default_page_size))
            .map_err(|e| ClientError::InvalidArgument(format!("query URL: {e}")))?;
        Ok(RequestPlan { url, prefer: self.prefer(default_page_size), limit: self.top })
    }

    /// The exact URL of the first page under `base` (what `--explain` prints).
    pub fn to_url(&self, base: &Url) -> Result<Url, ClientError> {
        self.plan(base, None).map(|p| p.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://org.crm.dynamics.com/api/data/v9.2/").unwrap()
    }

    #[test]
    fn builds_the_documented_url() {
        let q = Query::new("accounts")
            .select(["name", "revenue"])
            .filter("revenue gt 100000 and statecode eq 0")
            .order_by("revenue", true)
            .order_by("name", false)
            .top(10)
            .count(true);
        assert_eq!(
            q.to_url(&base()).unwrap().as_str(),
            "https://org.crm.dynamics.com/api/data/v9.2/accounts?$select=name,revenue&$filter=revenue%20gt%20100000%20and%20statecode%20eq%200&$orderby=revenue%20desc,name%20asc&$top=10&$count=true"
        );
        assert_eq!(q.prefer(None), None);
    }

    #[test]
    fn encodes_special_characters_once() {
        let f = format!("name eq {}", string_literal("A+B & C #1 O'Brien 100% é"));
        let q = Query::new("accounts").filter(f);
        let url = q.to_url(&base()).unwrap();
        let query = url.query().unwrap();
        assert_eq!(query, "$filter=name%20eq%20%27A%2BB%20%26%20C%20%231%20O%27%27Brien%20100%25%20%C3%A9%27");
        // Parsing the URL again does not re-encode it.
        assert_eq!(Url::parse(url.as_str()).unwrap(), url);
        let decoded: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(decoded[0].1, "name eq 'A+B & C #1 O''Brien 100% é'");
    }

    #[test]
    fn top_and_page_size_do_not_mix() {
        let q = Query::new("accounts").top(10);
        assert_eq!(q.prefer(Some(5000)), None);
        assert!(q.relative_url(Some(5000)).contains("$top=10"));
        // A top larger than a page is enforced by the stream, not by $top.
        let q = Query::new("accounts").top(12_000).max_page_size(5000);
        assert!(!q.relative_url(None).contains("$top"));
        assert_eq!(q.prefer(None).as_deref(), Some("odata.maxpagesize=5000"));
        let plan = q.plan(&base(), None).unwrap();
        assert_eq!(plan.limit, Some(12_000));
        let q = Query::new("accounts").annotations([FORMATTED_VALUE, LOOKUP_LOGICAL_NAME]).max_page_size(7000);
        assert_eq!(
            q.prefer(None).as_deref(),
            Some(
                "odata.maxpagesize=5000,odata.include-annotations=\"OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.lookuplogicalname\""
            )
        );
    }

    #[test]
    fn plan_displays_the_request() {
        let q = Query::new("contacts").select(["fullname"]).max_page_size(2);
        let text = q.plan(&base(), None).unwrap().to_string();
        assert_eq!(
            text,
            "GET https://org.crm.dynamics.com/api/data/v9.2/contacts?$select=fullname\nPrefer: odata.maxpagesize=2"
        );
        assert!(Query::default().plan(&base(), None).is_err());
    }
}
