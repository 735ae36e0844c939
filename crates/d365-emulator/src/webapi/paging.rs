//! Dataverse paging cookies. A `$skiptoken` carries
//! `<cookie pagenumber="2" pagingcookie="…" istracking="False" />` whose `pagingcookie`
//! attribute is the inner cookie URL-encoded (and encoded once more, with the rest of the
//! cookie, in the `@odata.nextLink` URL, which is why it reads `%253c` there):
//! `<cookie page="1"><name last="…" first="…" /><accountid last="{GUID}" first="{GUID}" /></cookie>`.
//! The emulator resumes after `last` under the same ordering (keyset paging), so no row is
//! skipped or repeated while other rows are inserted or deleted.

use super::error::{DvError, DvResult};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters left as they are when encoding cookie text (like .NET's `HttpUtility.UrlEncode`).
const COOKIE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'!').remove(b'*').remove(b'(').remove(b')');

/// What Dataverse escapes when it puts a cookie into a `$skiptoken` URL value (it keeps `=`
/// and `/`): `%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie…%22%20istracking=%22False%22%20/%3E`.
const URL_VALUE: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'%').add(b'#').add(b'&').add(b'+').add(b'?');

/// One ordering column's boundary values on a page. `None` is SQL NULL.
#[derive(Debug, Clone, PartialEq)]
pub struct Boundary {
    /// Column logical name.
    pub column: String,
    /// Value on the last row of the page.
    pub last: Option<String>,
    /// Value on the first row of the page.
    pub first: Option<String>,
}

/// A decoded paging cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    /// Number of the page this cookie asks for.
    pub page_number: u32,
    /// Boundaries of the previous page, in ordering order (primary key last).
    pub boundaries: Vec<Boundary>,
    /// For change-tracking reads: the row version the read started at (`istracking="True"`).
    pub tracking: Option<i64>,
}

fn xml_escape(s: &str) -> String {
    d365_odata::fetchxml::xml_escape(s).into_owned()
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&apos;", "'").replace("&amp;", "&")
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COOKIE).to_string().to_lowercase_escapes()
}

trait LowerEscapes {
    fn to_lowercase_escapes(self) -> String;
}

impl LowerEscapes for String {
    /// Dataverse writes `%3c`, not `%3C`.
    fn to_lowercase_escapes(self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut chars = self.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '%' {
                for _ in 0..2 {
                    if let Some(h) = chars.next() {
                        out.push(h.to_ascii_lowercase());
                    }
                }
            }
        }
        out
    }
}

fn attr(v: &Option<String>, name: &str) -> String {
    match v {
        Some(v) => format!(" {name}=\"{}\"", xml_escape(v)),
        None => format!(" {name}null=\"1\""),
    }
}

impl Cookie {
    /// The outer cookie XML (what goes, URL-encoded once more, into `$skiptoken`).
    pub fn to_xml(&self) -> String {
        let inner = self.inner_xml();
        match self.tracking {
            None => format!(
                "<cookie pagenumber=\"{}\" pagingcookie=\"{}\" istracking=\"False\" />",
                self.page_number,
                enc(&inner)
            ),
            Some(v) => format!(
                "<cookie pagenumber=\"{}\" pagingcookie=\"{}\" istracking=\"True\" trackingversion=\"{v}\" />",
                self.page_number,
                enc(&inner)
            ),
        }
    }

    /// The inner cookie: `<cookie page="1"><name last="…" first="…" />…</cookie>`.
    fn inner_xml(&self) -> String {
        let mut inner = format!("<cookie page=\"{}\">", self.page_number.saturating_sub(1));
        for b in &self.boundaries {
            inner.push_str(&format!("<{}{}{} />", b.column, attr(&b.last, "last"), attr(&b.first, "first")));
        }
        inner.push_str("</cookie>");
        inner
    }

    /// The `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` annotation of a FetchXML page: the
    /// outer cookie with its `pagingcookie` attribute URL-encoded twice, as Dataverse sends it.
    pub fn to_fetchxml_annotation(&self) -> String {
        format!(
            "<cookie pagenumber=\"{}\" pagingcookie=\"{}\" istracking=\"False\" />",
            self.page_number,
            enc(&enc(&self.inner_xml()))
        )
    }

    /// Reads the inner cookie a client puts in FetchXML's `paging-cookie` attribute (already
    /// XML-unescaped), for the page `page_number`. `None` when it is not a cookie.
    pub fn from_fetch_paging_cookie(page_number: u32, inner: &str) -> Option<Self> {
        let boundaries = parse_inner(inner.trim())?;
        Some(Self { page_number, boundaries, tracking: None })
    }

    /// Parses a `$skiptoken` value (already URL-decoded once by the query-string parser).
    pub fn parse(token: &str) -> DvResult<Self> {
        let bad = || {
            DvError::bad_query(
                "The $skiptoken paging cookie is not valid. Request the first page again and follow @odata.nextLink unchanged.",
            )
        };
        let token = token.trim();
        let page_number: u32 = attr_value(token, "pagenumber").and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let paging = attr_value(token, "pagingcookie").ok_or_else(bad)?;
        let mut inner = percent_decode_str(&paging).decode_utf8().map_err(|_| bad())?.into_owned();
        // The FetchXML paging-cookie annotation carries the attribute encoded twice.
        if inner.starts_with("%3c") || inner.starts_with("%3C") {
            inner = percent_decode_str(&inner).decode_utf8().map_err(|_| bad())?.into_owned();
        }
        let boundaries = parse_inner(&inner).ok_or_else(bad)?;
        let tracking = match attr_value(token, "istracking").as_deref() {
            Some("True") => Some(attr_value(token, "trackingversion").and_then(|v| v.parse().ok()).ok_or_else(bad)?),
            _ => None,
        };
        Ok(Self { page_number, boundaries, tracking })
    }
}

/// The boundaries of an inner cookie (`<cookie page="1"><col last="…" first="…" />…</cookie>`).
fn parse_inner(inner: &str) -> Option<Vec<Boundary>> {
    let body = inner.strip_prefix("<cookie").and_then(|s| s.split_once('>')).map(|(_, rest)| rest)?;
    let body = body.strip_suffix("</cookie>")?;
    let mut boundaries = Vec::new();
    for el in body.split("/>").map(str::trim).filter(|s| !s.is_empty()) {
        let el = el.strip_prefix('<')?;
        let column: String = el.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if column.is_empty() {
            return None;
        }
        let field = |n: &str| -> Option<String> {
            if attr_value(el, &format!("{n}null")).is_some() {
                None
            } else {
                attr_value(el, n).map(|v| xml_unescape(&v))
            }
        };
        boundaries.push(Boundary { column, last: field("last"), first: field("first") });
    }
    if boundaries.is_empty() { None } else { Some(boundaries) }
}

/// The value of XML attribute `name` in `text` (first occurrence, preceded by a space).
fn attr_value(text: &str, name: &str) -> Option<String> {
    let pat = format!(" {name}=\"");
    let start = text.find(&pat)? + pat.len();
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}

/// Encodes a value for use inside a URL query (`$skiptoken=...`).
pub fn encode_query_value(s: &str) -> String {
    utf8_percent_encode(s, URL_VALUE).to_string()
}

/// Formats a GUID as the cookie shows it: upper case, in braces.
pub fn cookie_guid(id: &str) -> String {
    format!("{{{}}}", id.to_uppercase())
}

/// Reads a GUID back from its cookie form.
pub fn guid_from_cookie(v: &str) -> String {
    v.trim_matches(|c| c == '{' || c == '}').to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trips_and_looks_like_dataverse() {
        let c = Cookie {
            page_number: 2,
            boundaries: vec![
                Boundary { column: "name".into(), last: Some("A \"quoted\" & <odd> name".into()), first: None },
                Boundary {
                    column: "accountid".into(),
                    last: Some(cookie_guid("d5026a4d-d01c-ed11-b83e-000d3a572421")),
                    first: Some("{X}".into()),
                },
            ],
            tracking: None,
        };
        let xml = c.to_xml();
        assert!(xml.starts_with("<cookie pagenumber=\"2\" pagingcookie=\"%3ccookie%20page%3d%221%22%3e"), "{xml}");
        assert!(xml.ends_with("istracking=\"False\" />"));
        assert_eq!(Cookie::parse(&xml).unwrap(), c);
        let in_url = encode_query_value(&xml);
        assert!(
            in_url.starts_with(
                "%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e"
            ),
            "{in_url}"
        );
        assert!(in_url.ends_with("%22%20istracking=%22False%22%20/%3E"), "{in_url}");
        let decoded: String = form_urlencoded::parse(format!("t={in_url}").as_bytes()).next().unwrap().1.into_owned();
        assert_eq!(Cookie::parse(&decoded).unwrap(), c);
        assert!(Cookie::parse("garbage").is_err());
        let t = Cookie { tracking: Some(42), ..c.clone() };
        assert!(t.to_xml().contains("istracking=\"True\""));
        assert_eq!(Cookie::parse(&t.to_xml()).unwrap(), t);
        assert!(Cookie::parse("<cookie pagenumber=\"2\" pagingcookie=\"%253ccookie%253e\" />").is_err());
    }
}
