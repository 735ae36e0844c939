//! FetchXML reads: `GET [API]/<entityset>?fetchXml=<url-encoded FetchXML>`, one page per
//! request, and the paging cookie that asks for the next one.
//!
//! Dataverse pages FetchXML results itself: the query names its page (`page`, `count`) and, from
//! the second page on, carries the `paging-cookie` of the previous page, which the service returns
//! in the `@Microsoft.Dynamics.CRM.fetchxmlpagingcookie` annotation when the `Prefer` header asks
//! for it. That annotation is an XML element whose `pagingcookie` attribute is URL-encoded twice:
//! [`next_paging_cookie`] decodes it into the text the next query's `paging-cookie` attribute
//! holds. `@Microsoft.Dynamics.CRM.morerecords` says whether another page exists. A query without
//! a cookie (some joins have none) is paged by page number alone.

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use reqwest::Method;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::client::{ApiRequest, DataverseClient, decode_json};
use crate::error::ClientError;
use crate::query::encode_query_value;

/// The paging cookie annotation of a FetchXML page.
pub const FETCHXML_PAGING_COOKIE: &str = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie";
/// The annotation saying more pages follow.
pub const MORE_RECORDS: &str = "Microsoft.Dynamics.CRM.morerecords";

/// One page of a FetchXML read.
#[derive(Debug, Clone)]
pub struct FetchXmlPage {
    /// The response body (a collection: `value` holds the rows).
    pub body: Bytes,
    /// Rows in `value`.
    pub rows: usize,
    /// The next page's `paging-cookie` (decoded), when the service sent one.
    pub paging_cookie: Option<String>,
    /// Whether another page follows.
    pub more_records: bool,
}

#[derive(Deserialize)]
struct Envelope {
    value: Vec<IgnoredAny>,
    #[serde(rename = "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie")]
    cookie: Option<String>,
    #[serde(rename = "@Microsoft.Dynamics.CRM.morerecords")]
    more: Option<bool>,
}

/// The `paging-cookie` text for the page after the one whose annotation is `annotation`
/// (`<cookie pagenumber="2" pagingcookie="%253ccookie…" />`): the `pagingcookie` attribute,
/// URL-decoded twice. `None` when the annotation has no such attribute.
pub fn next_paging_cookie(annotation: &str) -> Option<String> {
    let start = annotation.find("pagingcookie=\"")? + "pagingcookie=\"".len();
    let len = annotation[start..].find('"')?;
    let once = percent_decode_str(&annotation[start..start + len]).decode_utf8().ok()?;
    let twice = percent_decode_str(&once).decode_utf8().ok()?;
    Some(twice.into_owned())
}

impl DataverseClient {
    /// The URL of a FetchXML read of `entity_set` (what `--explain` prints and
    /// [`fetch_xml_page`](Self::fetch_xml_page) sends).
    pub fn fetch_xml_url(&self, entity_set: &str, fetch_xml: &str) -> Result<url::Url, ClientError> {
        let mut url = self.url(entity_set)?;
        url.set_query(Some(&format!("fetchXml={}", encode_query_value(fetch_xml))));
        Ok(url)
    }

    /// Sends one FetchXML read of `entity_set` with the `Prefer` header `prefer` (it should ask
    /// for the paging annotations) under the retry policy.
    pub async fn fetch_xml_page(
        &self,
        entity_set: &str,
        fetch_xml: &str,
        prefer: &str,
    ) -> Result<FetchXmlPage, ClientError> {
        let request =
            ApiRequest::new(Method::GET, self.fetch_xml_url(entity_set, fetch_xml)?).header("Prefer", prefer)?;
        self.execute(&request, |resp| {
            let env: Envelope = decode_json(&request, &resp.body)?;
            Ok(FetchXmlPage {
                rows: env.value.len(),
                paging_cookie: env.cookie.as_deref().and_then(next_paging_cookie),
                more_records: env.more.unwrap_or(false),
                body: resp.body,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paging_cookie_is_decoded_twice() {
        let annotation = "<cookie pagenumber=\"2\" pagingcookie=\"%253ccookie%2520page%253d%25221%2522%253e\
            %253caccountid%2520last%253d%2522%257b7A%257d%2522%2520first%253d%2522%257b1B%257d%2522%2520%252f%253e\
            %253c%252fcookie%253e\" istracking=\"False\" />";
        assert_eq!(
            next_paging_cookie(annotation).as_deref(),
            Some("<cookie page=\"1\"><accountid last=\"{7A}\" first=\"{1B}\" /></cookie>")
        );
        assert_eq!(next_paging_cookie("<cookie pagenumber=\"2\" />"), None);
        assert_eq!(next_paging_cookie("<cookie pagingcookie=\"unterminated"), None);
    }
}
