//! `EXEC Procedure @Arg = 'value'`: the CData connector's OAuth stored procedures, run from a
//! statement; their result is one record batch of text columns.

use std::sync::Arc;
use std::time::Duration;

use d365_auth::{ConnectionConfig, Environment, Interactive, ProviderOptions};
use d365_sql::datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use d365_sql::datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::error::Error;
use crate::exec_stmt::ExecStatement;

/// Runs `exec` for the connection `config`: a browser (or device code) sign-in may be started
/// by `GetOAuthAccessToken` with `AuthMode=APP`, waiting at most `sign_in_timeout`.
pub async fn run_procedure(
    exec: &ExecStatement,
    config: &ConnectionConfig,
    env: Environment,
    interactive: Interactive,
    sign_in_timeout: Duration,
) -> Result<RecordBatch, Error> {
    d365_auth::procedures::procedure(&exec.name)?;
    let mut options = ProviderOptions::new(env).with_interactive(interactive);
    options.sign_in_timeout = sign_in_timeout;
    let out = d365_auth::procedures::call_procedure(&exec.name, &exec.args, config, &options).await?;
    let schema = Arc::new(Schema::new(
        out.columns.iter().map(|c| Field::new(c.as_str(), DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..out.columns.len())
        .map(|i| {
            Arc::new(StringArray::from(out.rows.iter().map(|r| r.get(i).map(String::as_str)).collect::<Vec<_>>()))
                as ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, columns).map_err(|e| Error::BadInput(format!("procedure {}: {e}", exec.name)))
}
