//! `d365 proc`: the OAuth stored procedures of the CData connector (`GetOAuthAuthorizationUrl`,
//! `GetOAuthAccessToken`, `RefreshOAuthAccessToken`, `GetAdminConsentURL`), for web
//! applications and headless machines that run the sign-in steps themselves.

use std::io::IsTerminal;

use d365_auth::procedures::{PROCEDURES, ProcedureOutput, call_procedure};

use crate::connect::ConnectArgs;
use crate::failure::Failure;
use crate::login_cmd::{connection_config, interactive_options};

/// Options of `d365 proc`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Prints the result's name/value rows (aligned on a terminal, NAME<TAB>VALUE otherwise, \
or --json). The token procedures print the tokens they obtain: that is their purpose, so treat the \
output like a password. When the connection names OAuthSettingsLocation, the tokens are also stored \
there for later commands.

Web application sign-in (confidential app: OAuthClientSecret and CallbackURL in the connection):
  d365 proc GetOAuthAuthorizationUrl --arg CallbackURL=https://app.example.com/oauth/callback
  # the user signs in; the callback receives ?code=...
  d365 proc GetOAuthAccessToken --arg AuthMode=WEB --arg Verifier=CODE --json
  d365 proc RefreshOAuthAccessToken --arg OAuthRefreshToken=... --json

Examples:
  d365 proc --list
  d365 proc GetAdminConsentURL --arg CallbackURL=http://localhost:33333
  d365 proc GetOAuthAccessToken --arg AuthMode=APP     # browser sign-in on this machine
  d365 proc GetOAuthAuthorizationUrl --json | jq -r '.[0].URL'")]
pub struct ProcArgs {
    /// Procedure name (case-insensitive): see --list.
    #[arg(required_unless_present = "list", value_name = "NAME")]
    name: Option<String>,
    /// A procedure argument (repeatable).
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    args: Vec<String>,
    /// List the procedures with their arguments and result columns.
    #[arg(long, conflicts_with_all = ["name", "args"])]
    list: bool,
    /// Print JSON (an array of row objects; with --list, the procedures).
    #[arg(long)]
    json: bool,
    /// Program that opens the sign-in URL for GetOAuthAccessToken with AuthMode=APP (`{url}` is
    /// replaced by the URL, else it is appended). Default: BrowserCommand, D365_BROWSER, the
    /// system's browser.
    #[arg(long, value_name = "CMD")]
    browser_command: Option<String>,
    /// How long GetOAuthAccessToken with AuthMode=APP waits for the browser, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
}

/// `NAME=VALUE` pairs from the command line.
fn parse_args(raw: &[String]) -> Result<Vec<(String, String)>, Failure> {
    raw.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            // the text is not echoed: it may be a token given without its name
            _ => Err(Failure::bad_input(
                "an --arg without NAME=: expected NAME=VALUE (e.g. --arg CallbackURL=http://localhost:33333)",
            )),
        })
        .collect()
}

fn print_list(json: bool) {
    if json {
        let v: Vec<serde_json::Value> = PROCEDURES
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "description": p.description,
                    "arguments": p.parameters.iter().map(|(n, d)| serde_json::json!({"name": n, "description": d})).collect::<Vec<_>>(),
                    "columns": p.columns,
                })
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    for (i, p) in PROCEDURES.iter().enumerate() {
        if i > 0 {
            say!();
        }
        say!("{}", p.name);
        say!("  {}", p.description);
        let width = p.parameters.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (j, (n, d)) in p.parameters.iter().enumerate() {
            let label = if j == 0 { "arguments" } else { "" };
            say!("  {label:<9}  {n:<width$}  {d}");
        }
        say!("  {:<9}  {}", "columns", p.columns.join(", "));
    }
}

fn print_output(out: &ProcedureOutput, json: bool, terminal: bool) {
    if json {
        let rows: Vec<serde_json::Value> = out
            .rows
            .iter()
            .map(|r| {
                serde_json::Value::Object(
                    out.columns.iter().zip(r).map(|(c, v)| (c.clone(), serde_json::Value::String(v.clone()))).collect(),
                )
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
        return;
    }
    let width = out.columns.iter().map(String::len).max().unwrap_or(0);
    for (i, row) in out.rows.iter().enumerate() {
        if i > 0 {
            say!();
        }
        for (c, v) in out.columns.iter().zip(row) {
            if terminal {
                say!("{c:<width$}  {v}");
            } else {
                say!("{c}\t{v}");
            }
        }
    }
}

/// Runs `d365 proc`.
pub async fn run(connect_args: &ConnectArgs, args: ProcArgs) -> Result<(), Failure> {
    if args.list {
        print_list(args.json);
        return Ok(());
    }
    let Some(name) = args.name.as_deref() else {
        return Err(Failure::bad_input("name a procedure (d365 proc --list shows them)"));
    };
    // Check the name and arguments before anything else (no connection needed for that).
    d365_auth::procedures::procedure(name).map_err(Failure::from_auth)?;
    let pairs = parse_args(&args.args)?;
    let (config, env) = connection_config(connect_args, "proc")?;
    let options = interactive_options(env, false, args.browser_command.as_deref(), args.timeout);
    let out = call_procedure(name, &pairs, &config, &options).await.map_err(Failure::from_auth)?;
    let terminal = std::io::stdout().is_terminal();
    if terminal && out.columns.iter().any(|c| c.eq_ignore_ascii_case("OAuthAccessToken")) {
        note!("note: the output holds live tokens: treat them like a password");
    }
    print_output(&out, args.json, terminal);
    Ok(())
}
