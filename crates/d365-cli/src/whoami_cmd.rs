//! `d365 whoami`: who the connection signs in as, with which flow, until when.

use crate::connect::{ConnectArgs, connect};
use crate::failure::Failure;

/// Options of `d365 whoami`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  d365 --demo whoami
  D365_CONNECTION='OrganizationUrl=https://contoso.crm.dynamics.com;AuthScheme=AzureServicePrincipal;AzureTenant=contoso.onmicrosoft.com;OAuthClientId=...;OAuthClientSecret=...' d365 whoami
  d365 whoami --connection @conn.txt --json")]
pub struct WhoamiArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `d365 whoami`.
pub async fn run(connect_args: &ConnectArgs, args: WhoamiArgs) -> Result<(), Failure> {
    let conn = connect(connect_args).await?;
    let result = async {
        if conn.client.service().is_finops() {
            return finops(&conn, &args).await;
        }
        let me = conn.client.whoami().await.map_err(Failure::from_client)?;
        let token = conn.tokens.token().await.map_err(Failure::from_auth)?;
        let expires = token
            .expires_at()
            .map(|t| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string()));
        let flow = conn.tokens.flow_name();
        if args.json {
            let v = serde_json::json!({
                "user_id": me.user_id,
                "business_unit_id": me.business_unit_id,
                "organization_id": me.organization_id,
                "organization_url": conn.config.organization_url.as_str(),
                "flow": flow,
                "token_expires": expires,
            });
            say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            say!("user           {}", me.user_id);
            say!("business unit  {}", me.business_unit_id);
            say!("organization   {}  ({})", me.organization_id, conn.config.organization_url);
            say!("signed in by   {flow}");
            say!("token expires  {}", expires.as_deref().unwrap_or("unknown"));
        }
        Ok(())
    }
    .await;
    conn.close().await;
    result
}

/// Finance & Operations has no WhoAmI: the identity comes from the token (read, not verified:
/// the service verified it), and one request to the service root proves the caller may read.
async fn finops(conn: &crate::connect::Connection, args: &WhoamiArgs) -> Result<(), Failure> {
    let root = conn.client.get_json("").await.map_err(Failure::from_client)?;
    let entity_sets = root.get("value").and_then(|v| v.as_array()).map_or(0, Vec::len);
    let token = conn.tokens.token().await.map_err(Failure::from_auth)?;
    let claims = d365_auth::token_client::unverified_claims(token.secret()).unwrap_or_default();
    let claim = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let user = claim("upn").or_else(|| claim("unique_name")).or_else(|| claim("preferred_username"));
    let app = claim("appid").or_else(|| claim("azp")).or_else(|| claim("client_id"));
    let expires = token
        .expires_at()
        .map(|t| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string()));
    let flow = conn.tokens.flow_name();
    let edition = conn.config.edition.name();
    if args.json {
        let v = serde_json::json!({
            "edition": edition,
            "environment_url": conn.config.organization_url.as_str(),
            "user": user,
            "app_id": app,
            "object_id": claim("oid"),
            "issuer": claim("iss"),
            "entity_sets": entity_sets,
            "cross_company": conn.client.service().cross_company(),
            "flow": flow,
            "token_expires": expires,
        });
        say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        say!("edition        {edition}  ({})", conn.config.organization_url);
        match (&user, &app) {
            (Some(u), _) => say!("user           {u}"),
            (None, Some(a)) => say!("application    {a}  (app-only: acts as the user it is registered as)"),
            (None, None) => say!("user           unknown"),
        }
        say!("issuer         {}", claim("iss").unwrap_or_else(|| "unknown".into()));
        say!("entity sets    {entity_sets} readable at {}", conn.client.base_url());
        say!(
            "companies      {}",
            if conn.client.service().cross_company() { "all (CrossCompany=true)" } else { "the default company" }
        );
        say!("signed in by   {flow}");
        say!("token expires  {}", expires.as_deref().unwrap_or("unknown"));
    }
    Ok(())
}
