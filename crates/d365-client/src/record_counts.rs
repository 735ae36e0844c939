//! Row counts of whole tables with the `RetrieveTotalRecordCount` function: one request for
//! many tables, answered from a snapshot the service takes at most 24 hours before (a quick
//! size for planning, not an exact count: `SELECT count(*)` is exact).

use crate::client::DataverseClient;
use crate::error::ClientError;
use crate::service::Service;

/// Tables per request, which keeps the URL short.
const NAMES_PER_REQUEST: usize = 40;

impl DataverseClient {
    /// The snapshot row count of each of `logical_names`, in their order; `None` for a table
    /// the caller may not read (its request is retried table by table so the others still
    /// get their count). Dataverse only: Finance & Operations has no such function.
    pub async fn record_counts(&self, logical_names: &[String]) -> Result<Vec<Option<i64>>, ClientError> {
        if matches!(self.service(), Service::FinOps(_)) {
            return Err(ClientError::InvalidArgument(
                "row counts use Dataverse's RetrieveTotalRecordCount function, which Finance & Operations \
                 does not have: use SELECT count(*) FROM <entity>"
                    .into(),
            ));
        }
        let mut out = Vec::with_capacity(logical_names.len());
        for chunk in logical_names.chunks(NAMES_PER_REQUEST) {
            match self.record_counts_once(chunk).await {
                Ok(counts) => out.extend(counts.into_iter().map(Some)),
                Err(e) if e.is_forbidden() && chunk.len() > 1 => {
                    for name in chunk {
                        match self.record_counts_once(std::slice::from_ref(name)).await {
                            Ok(counts) => out.push(counts.first().copied()),
                            Err(e) if e.is_forbidden() => out.push(None),
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) if e.is_forbidden() => out.push(None),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn record_counts_once(&self, names: &[String]) -> Result<Vec<i64>, ClientError> {
        let literal = names.iter().map(|n| format!("'{}'", n.replace('\'', "''"))).collect::<Vec<_>>().join(",");
        let encoded =
            percent_encoding::utf8_percent_encode(&format!("[{literal}]"), percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let body = self.get_json(&format!("RetrieveTotalRecordCount(EntityNames=@p1)?@p1={encoded}")).await?;
        let collection = &body["EntityRecordCountCollection"];
        let bad = |what: &str| ClientError::Decode {
            method: "GET".into(),
            path: "RetrieveTotalRecordCount(EntityNames=@p1)".into(),
            message: format!("the EntityRecordCountCollection has no {what}"),
        };
        let keys = collection["Keys"].as_array().ok_or_else(|| bad("Keys"))?;
        let values = collection["Values"].as_array().ok_or_else(|| bad("Values"))?;
        names
            .iter()
            .map(|name| {
                let at = keys
                    .iter()
                    .position(|k| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
                    .ok_or_else(|| bad(&format!("the table '{name}'")))?;
                values.get(at).and_then(serde_json::Value::as_i64).ok_or_else(|| bad(&format!("a count of '{name}'")))
            })
            .collect()
    }
}
