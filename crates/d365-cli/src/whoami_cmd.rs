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
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            println!("user           {}", me.user_id);
            println!("business unit  {}", me.business_unit_id);
            println!("organization   {}  ({})", me.organization_id, conn.config.organization_url);
            println!("signed in by   {flow}");
            println!("token expires  {}", expires.as_deref().unwrap_or("unknown"));
        }
        Ok(())
    }
    .await;
    conn.close().await;
    result
}
