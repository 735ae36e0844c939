//! `postgresql://user:password@host:port/database?schema=crm&sslmode=require`: the PostgreSQL
//! destination of a sync. The password never appears in `Debug`, `Display` or errors.
//!
//! TLS follows libpq's `sslmode`, always verifying the server's certificate when TLS is used
//! (the operating system's roots, or the CA file in `sslrootcert`): `disable` never uses TLS;
//! `prefer` (the default) uses it when the server offers it; `require`, `verify-ca` and
//! `verify-full` insist on it (and, unlike libpq's `require`, verify the certificate and host).
//! `sslcert` and `sslkey` give a client certificate (see [`super::tls`]).

use std::fmt;
use std::path::PathBuf;

use crate::error::SyncError;

/// Whether the connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never (`sslmode=disable`).
    Disable,
    /// When the server offers it (`sslmode=prefer`, `allow`; the default).
    Prefer,
    /// Always (`sslmode=require`, `verify-ca`, `verify-full`).
    Require,
}

/// A PostgreSQL destination URL.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// The URL without d365's own options, for the driver.
    url: url::Url,
    /// The schema tables are written to (`?schema=`, default `public`).
    pub schema: String,
    /// TLS (`?sslmode=`).
    pub tls: TlsMode,
    /// The CA certificates (PEM) the server's certificate must chain to (`?sslrootcert=`);
    /// `None`: the operating system's roots.
    pub root_cert: Option<PathBuf>,
    /// The client certificate chain (PEM, `?sslcert=`) and its private key (PEM, `?sslkey=`),
    /// for servers that authenticate clients by certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
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
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let (mut cert, mut key) = (None, None);
        let mut rest = Vec::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "schema" | "currentSchema" => schema = v.into_owned(),
                "sslmode" => {
                    tls = match v.as_ref() {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" | "verify-ca" | "verify-full" => TlsMode::Require,
                        other => {
                            return Err(bad(format!(
                                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
                "sslcert" => cert = Some(PathBuf::from(v.as_ref())),
                "sslkey" => key = Some(PathBuf::from(v.as_ref())),
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad("sslcert needs sslkey: give the client certificate's private key too".into()));
            }
            (None, Some(_)) => return Err(bad("sslkey needs sslcert: give the client certificate too".into())),
        };
        if client_cert.is_some() && tls == TlsMode::Disable {
            return Err(bad("sslcert with sslmode=disable: a client certificate needs TLS".into()));
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
        Ok(Self { url, schema, tls, root_cert, client_cert })
    }

    /// The driver's configuration (its `sslmode` set from [`Self::tls`]).
    pub fn config(&self) -> Result<tokio_postgres::Config, SyncError> {
        let mut config: tokio_postgres::Config = self.url.as_str().parse().map_err(|e: tokio_postgres::Error| {
            SyncError::InvalidArgument(format!("PostgreSQL destination {self}: {e}"))
        })?;
        config.ssl_mode(match self.tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Require => tokio_postgres::config::SslMode::Require,
        });
        Ok(config)
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
    fn sslmode_follows_libpq_names() {
        let mode = |q: &str| PostgresUrl::parse(&format!("postgresql://u@h/db{q}")).unwrap().tls;
        assert_eq!(mode(""), TlsMode::Prefer);
        assert_eq!(mode("?sslmode=disable"), TlsMode::Disable);
        assert_eq!(mode("?sslmode=verify-full"), TlsMode::Require);
        let u = PostgresUrl::parse("postgresql://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem").unwrap();
        assert_eq!(u.root_cert.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
        assert_eq!(u.config().unwrap().get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let e = u.tls_config().unwrap_err().to_string();
        assert!(e.contains("sslrootcert /etc/ca.pem: cannot be read"), "{e}");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let e = PostgresUrl::parse("postgresql://u:pw@h/db?sslmode=maybe").unwrap_err();
        assert!(e.to_string().contains("sslmode=maybe is not one of"), "{e}");
        let e = PostgresUrl::parse("postgresql://u:pw@h/db?sslkey=/c.key").unwrap_err();
        assert!(matches!(e, SyncError::InvalidArgument(_)) && e.to_string().contains("sslkey needs sslcert"), "{e}");
        assert!(!e.to_string().contains("pw"));
        assert!(PostgresUrl::parse("postgresql:///db").unwrap_err().to_string().contains("no host"));
        assert!(PostgresUrl::parse("postgresql://h/db?schema=").unwrap_err().to_string().contains("schema"));
    }
}
