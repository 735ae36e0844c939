//! `d365 emulator --check`, Finance & Operations part: the F&O environments walked as an
//! external client would, over HTTPS (Entra ID for online, AD FS for on premises, the Human
//! Resources legacy URL), plus the refusal of an app F&O has not registered.

use anyhow::{Context, bail};
use d365_emulator::ReadyInfo;

/// A token from the emulator's Entra ID for `scope`, as app `name` with its secret.
pub(crate) async fn entra_token(
    http: &reqwest::Client,
    ready: &ReadyInfo,
    name: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let app = ready.app(name).with_context(|| format!("no '{name}' app"))?;
    let url = format!("{}/{}/oauth2/v2.0/token", ready.authority, ready.tenant_id);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_deref().unwrap_or_default()),
        ("scope", scope),
    ];
    token_answer(http.post(&url).form(&form).send().await?).await
}

async fn token_answer(r: reqwest::Response) -> anyhow::Result<String> {
    let status = r.status();
    let body: serde_json::Value = r.json().await?;
    if !status.is_success() {
        bail!("{status}: {}", body["error_description"].as_str().unwrap_or("no description"));
    }
    Ok(body["access_token"].as_str().context("no access_token in the answer")?.to_string())
}

/// Rows of a `/data` collection read to its end through `@odata.nextLink` (`$skip` pages).
async fn read_all(http: &reqwest::Client, token: &str, first: String) -> anyhow::Result<(usize, usize)> {
    let (mut url, mut rows, mut pages) = (first, 0, 0);
    loop {
        let r = http.get(&url).bearer_auth(token).send().await?.error_for_status()?;
        let b: serde_json::Value = r.json().await?;
        rows += b["value"].as_array().map(Vec::len).unwrap_or(0);
        pages += 1;
        match b["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => return Ok((rows, pages)),
        }
    }
}

/// Runs the F&O steps, reporting each through `step`.
pub async fn check(http: &reqwest::Client, ready: &ReadyInfo, step: &mut dyn FnMut(&str, anyhow::Result<String>)) {
    let fno = &ready.fno;
    let online = async {
        let token = entra_token(http, ready, "integration", &format!("{}/.default", fno.org_url)).await?;
        let (rows, pages) = read_all(http, &token, format!("{}/data/CustomersV3?cross-company=true", fno.org_url)).await?;
        let url = format!(
            "{}/data/CustomersV3?$select=CustomerAccount&$filter=OnHoldStatus eq Microsoft.Dynamics.DataEntities.CustVendorBlocked'All'&$top=5",
            fno.org_url
        );
        let r = http.get(&url).bearer_auth(&token).send().await?.error_for_status()?;
        let b: serde_json::Value = r.json().await?;
        let n = b["value"].as_array().map(Vec::len).unwrap_or(0);
        Ok(format!("{rows} customers of every company in {pages} pages; enum filter: {n} rows"))
    }
    .await;
    step("F&O online: Entra token, /data with cross-company", online);
    let refused = async {
        let token = entra_token(http, ready, &fno.unregistered_app, &format!("{}/.default", fno.org_url)).await?;
        let r = http.get(format!("{}/data/LegalEntities", fno.org_url)).bearer_auth(&token).send().await?;
        if r.status() != 401 {
            bail!("expected 401, got {}", r.status());
        }
        Ok("401 for an app not in Microsoft Entra ID applications".to_string())
    }
    .await;
    step("F&O refuses an unregistered app", refused);
    let onprem = async {
        let app = ready.app("integration").context("no 'integration' app")?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_deref().unwrap_or_default()),
            ("resource", fno.onprem_url.as_str()),
        ];
        let token =
            token_answer(http.post(format!("{}/oauth2/token", fno.adfs_authority)).form(&form).send().await?).await?;
        let (rows, _) = read_all(http, &token, format!("{}/data/LegalEntities", fno.onprem_url)).await?;
        Ok(format!("AD FS token; {rows} legal entities"))
    }
    .await;
    step("F&O on premises: AD FS client credentials", onprem);
    let hr = async {
        let token = entra_token(http, ready, "integration", &format!("{}/.default", fno.hr_resource)).await?;
        let (rows, _) = read_all(http, &token, format!("{}/data/Workers?$top=5", fno.hr_legacy_url)).await?;
        Ok(format!("token for {}; {rows} workers", fno.hr_resource))
    }
    .await;
    step("Human Resources legacy URL", hr);
}
