//! `postgresql://user:password@host:port/database?schema=crm&sslmode=disable`: the PostgreSQL
//! destination of a sync. The password never appears in `Debug`, `Display` or errors.

use std::fmt;

use crate::error::SyncError;

/// A PostgreSQL destination URL.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The URL without d365's own options, for the driver.
    url: url::Url,
    /// The schema tables are written to (`?schema=`, default `public`).
    pub schema: String,
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

impl fmt::Display for PostgresUrl {
    /// `postgresql://user@host:port/database (schema public)`, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.url.username();
        let at = if user.is_empty() { String::new() } else { format!("{user}@") };
        let host = self.url.host_str().unwrap_or("localhost");
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        write!(f, "postgresql://{at}{host}{port}{} (schema {})", self.url.path(), self.schema)
    }
}

impl PostgresUrl {
    /// Parses a `postgresql://` or `postgres://` URL. `?schema=NAME` picks the schema (default
    /// `public`); the other options are the driver's (`sslmode`, `connect_timeout`,
    /// `application_name`, …). Without a password in the URL, `PGPASSWORD` is used.
    pub fn parse(text: &str) -> Result<Self, SyncError> {
        let bad = |why: String| {
            SyncError::InvalidArgument(format!(
                "PostgreSQL destination: {why} (expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME])"
            ))
        };
        let mut url = url::Url::parse(text.trim()).map_err(|e| bad(format!("not a valid URL ({e})")))?;
        if !matches!(url.scheme(), "postgresql" | "postgres") {
            return Err(bad(format!("scheme '{}' is not postgresql", url.scheme())));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host".into()));
        }
        let mut schema = "public".to_string();
        let mut rest = Vec::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "schema" | "currentSchema" => schema = v.into_owned(),
                "sslmode" if v != "disable" && v != "prefer" => {
                    return Err(SyncError::Unsupported(format!(
                        "PostgreSQL destination: sslmode={v} is not supported by this build yet (TLS to \
                         PostgreSQL is not built in); use sslmode=disable on a trusted network or an SSH tunnel"
                    )));
                }
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        if schema.is_empty() || schema.len() > 63 {
            return Err(bad(format!("schema '{schema}' must be 1-63 characters")));
        }
        if rest.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(rest);
        }
        if url.password().is_none()
            && let Ok(p) = std::env::var("PGPASSWORD")
        {
            url.set_password(Some(&p)).map_err(|()| bad("cannot set the password from PGPASSWORD".into()))?;
        }
        let _ = url.set_scheme("postgresql");
        Ok(Self { url, schema })
    }

    /// The driver's configuration.
    pub fn config(&self) -> Result<tokio_postgres::Config, SyncError> {
        self.url.as_str().parse().map_err(|e: tokio_postgres::Error| {
            SyncError::InvalidArgument(format!("PostgreSQL destination {self}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_ours_and_the_password_never_shows() {
        let u =
            PostgresUrl::parse("postgresql://sync:s3cret@db.example:6543/crm?schema=d365&connect_timeout=5").unwrap();
        assert_eq!(u.schema, "d365");
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("sync@db.example:6543/crm (schema d365)"), "{shown}");
        let c = u.config().unwrap();
        assert_eq!(c.get_dbname(), Some("crm"));
        assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(PostgresUrl::parse("postgres://u@h/db").unwrap().schema, "public");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let e = PostgresUrl::parse("postgresql://u:pw@h/db?sslmode=require").unwrap_err();
        assert!(matches!(e, SyncError::Unsupported(_)) && e.to_string().contains("sslmode=disable"), "{e}");
        assert!(!e.to_string().contains("pw"));
        assert!(PostgresUrl::parse("postgresql:///db").unwrap_err().to_string().contains("no host"));
        assert!(PostgresUrl::parse("postgresql://h/db?schema=").unwrap_err().to_string().contains("schema"));
    }
}
