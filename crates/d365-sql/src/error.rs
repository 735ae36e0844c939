//! [`SqlError`]: what can go wrong between SQL text and rows, each as one line a person can act
//! on (the CLI maps [`SqlError::is_user_error`] to exit code 2).

use d365_client::ClientError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// An error of the SQL engine.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The SQL text does not parse.
    #[error("SQL syntax error: {message}")]
    Syntax {
        /// The parser's message, with the line and column where it stopped.
        message: String,
    },
    /// A table that the organisation does not have.
    #[error("unknown table '{name}'{}", did_you_mean(suggestion))]
    UnknownTable {
        /// The name as written.
        name: String,
        /// The nearest table name, if one is close.
        suggestion: Option<String>,
    },
    /// A column that the table(s) in scope do not have.
    #[error("unknown column '{name}'{}", did_you_mean(suggestion))]
    UnknownColumn {
        /// The name as written.
        name: String,
        /// The nearest column name, if one is close.
        suggestion: Option<String>,
    },
    /// Valid SQL that cannot be planned (type mismatch, ambiguous column, ...).
    #[error("cannot plan the query: {0}")]
    Plan(String),
    /// A SQL feature or data type this engine does not support.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A page of rows could not be decoded into Arrow.
    #[error("cannot decode {entity_set} rows: {message}")]
    Decode {
        /// The entity set being read.
        entity_set: String,
        /// What was wrong.
        message: String,
    },
    /// The Dataverse Web API (or the network, or sign-in) failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A write on a connection opened with `Readonly=true`.
    #[error(
        "the connection is read-only (Readonly=true): INSERT, UPDATE, DELETE, UPSERT and MERGE are \
         refused (a dry run is allowed); connect without Readonly=true to write"
    )]
    ReadOnly,
    /// A value that cannot be converted or computed with (a string compared with a number, a
    /// number out of a type's range, NaN where a number is needed).
    #[error("bad value: {0}")]
    Value(String),
    /// An error while running the query.
    #[error("query failed: {0}")]
    Execution(String),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default()
}

impl SqlError {
    /// Whether the error is the user's input (bad SQL, unknown names, unsupported features):
    /// exit code 2 in the CLI. Everything else is a service or runtime failure.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            SqlError::Syntax { .. }
                | SqlError::UnknownTable { .. }
                | SqlError::UnknownColumn { .. }
                | SqlError::Plan(_)
                | SqlError::Unsupported(_)
                | SqlError::ReadOnly
        )
    }

    /// Wraps the error for returning it through DataFusion (it comes back out unchanged through
    /// [`SqlError::from`]).
    pub(crate) fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        from_datafusion(e)
    }
}

fn from_datafusion(e: DataFusionError) -> SqlError {
    match e {
        DataFusionError::External(inner) => match inner.downcast::<SqlError>() {
            Ok(sql) => *sql,
            Err(other) => match other.downcast::<ClientError>() {
                Ok(c) => SqlError::Client(*c),
                Err(other) => SqlError::Execution(other.to_string()),
            },
        },
        DataFusionError::Context(_, inner) => from_datafusion(*inner),
        DataFusionError::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(e) => from_datafusion(e),
            Err(shared) => SqlError::Execution(shared.to_string()),
        },
        DataFusionError::Collection(mut errors) if !errors.is_empty() => from_datafusion(errors.remove(0)),
        DataFusionError::Diagnostic(_, inner) => from_datafusion(*inner),
        DataFusionError::SQL(parser, _) => match *parser {
            ParserError::ParserError(m) | ParserError::TokenizerError(m) => {
                // The parser names the line and column, except when the text ends too early.
                let message = if m.ends_with("found: EOF") && !m.contains("Line:") {
                    format!("{m} (at the end of the statement)")
                } else {
                    m
                };
                SqlError::Syntax { message }
            }
            ParserError::RecursionLimitExceeded => {
                SqlError::Syntax { message: "the statement is nested too deeply".into() }
            }
        },
        DataFusionError::SchemaError(schema, _) => schema_error(*schema),
        DataFusionError::NotImplemented(m) => SqlError::Unsupported(first_line(&m)),
        DataFusionError::Plan(m) => plan_error(&m),
        DataFusionError::ArrowError(a, _) => match *a {
            datafusion::arrow::error::ArrowError::ExternalError(inner) => {
                from_datafusion(DataFusionError::External(inner))
            }
            other => arrow_error(other),
        },
        // DataFusion's own words for a feature it lacks at run time ("LIKE does not support
        // escape_char other than the backslash").
        DataFusionError::Execution(m) if m.contains("not support") => SqlError::Unsupported(first_line(&m)),
        other => SqlError::Execution(first_line(&other.to_string())),
    }
}

/// A value error of Arrow's kernels (a cast, an overflow, a division by zero) is the data's or
/// the statement's, not the service's.
fn arrow_error(e: datafusion::arrow::error::ArrowError) -> SqlError {
    use datafusion::arrow::error::ArrowError as A;
    match e {
        A::CastError(m) | A::ParseError(m) | A::ComputeError(m) | A::InvalidArgumentError(m) => {
            SqlError::Value(first_line(&m))
        }
        A::ArithmeticOverflow(m) => SqlError::Value(format!("arithmetic overflow: {}", first_line(&m))),
        A::DivideByZero => SqlError::Value("division by zero".into()),
        other => SqlError::Execution(other.to_string()),
    }
}

fn schema_error(e: datafusion::common::SchemaError) -> SqlError {
    use datafusion::common::SchemaError;
    match e {
        SchemaError::FieldNotFound { field, valid_fields } => {
            let name = field.name().to_string();
            let candidates: Vec<String> = valid_fields.iter().map(|c| c.name().to_string()).collect();
            let suggestion = crate::nearest::nearest(&name, candidates.iter().map(String::as_str));
            let name = match &field.relation {
                Some(r) => format!("{r}.{name}"),
                None => name,
            };
            SqlError::UnknownColumn { name, suggestion }
        }
        other => SqlError::Plan(first_line(&other.to_string())),
    }
}

fn plan_error(message: &str) -> SqlError {
    // DataFusion reports a missing table as a plan error naming it.
    let m = first_line(message);
    if let Some(rest) = m.strip_prefix("table '")
        && let Some(end) = rest.find("' not found")
    {
        let full = &rest[..end];
        let name = full.rsplit('.').next().unwrap_or(full).to_string();
        return SqlError::UnknownTable { name, suggestion: None };
    }
    SqlError::Plan(m)
}

fn first_line(m: &str) -> String {
    m.lines().next().unwrap_or(m).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::error::ArrowError;

    #[test]
    fn value_errors_are_the_data_not_the_service() {
        let cast =
            DataFusionError::ArrowError(Box::new(ArrowError::CastError("Cannot cast string 'abc'".into())), None);
        let e = SqlError::from(DataFusionError::Context("while running".into(), Box::new(cast)));
        assert!(matches!(&e, SqlError::Value(m) if m.contains("'abc'")), "{e:?}");
        assert!(!e.is_user_error());
        let e = SqlError::from(DataFusionError::ArrowError(Box::new(ArrowError::DivideByZero), None));
        assert_eq!(e.to_string(), "bad value: division by zero");
    }

    #[test]
    fn features_missing_at_run_time_are_unsupported() {
        let e = SqlError::from(DataFusionError::Execution(
            "LIKE does not support escape_char other than the backslash (\\)".into(),
        ));
        assert!(matches!(e, SqlError::Unsupported(_)), "{e:?}");
        assert!(e.is_user_error());
        let e = SqlError::from(DataFusionError::Execution("the disk is full".into()));
        assert!(matches!(e, SqlError::Execution(_)), "{e:?}");
    }
}
