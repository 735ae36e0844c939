//! Where an export or a sync writes: a local path, an object in an object store, Delta Lake
//! tables (`delta+…`), or (for a sync) a PostgreSQL database. Other destinations written as a
//! URL are recognised and refused with a clear error instead of being taken for a directory
//! name: without this check, `--to mssql://server/x` would quietly create a local folder
//! called `mssql:`.

use std::path::PathBuf;

use crate::delta::DeltaLocation;
use crate::error::SyncError;
use crate::postgres::PostgresUrl;
use crate::remote::RemoteUrl;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local file or directory (`file://` URLs included).
    Local(PathBuf),
    /// A PostgreSQL database (`postgresql://…`).
    Postgres(PostgresUrl),
    /// An object in an object store (`s3://`, `az://`, `abfss://`, `gs://`, …).
    Remote(RemoteUrl),
    /// Delta Lake tables (`delta+file:///…`, `delta:dir`, `delta+s3://…`, …).
    Delta(DeltaLocation),
}

impl From<PathBuf> for Destination {
    fn from(p: PathBuf) -> Self {
        Self::Local(p)
    }
}

impl From<&std::path::Path> for Destination {
    fn from(p: &std::path::Path) -> Self {
        Self::Local(p.to_path_buf())
    }
}

impl From<&str> for Destination {
    fn from(p: &str) -> Self {
        Self::Local(PathBuf::from(p))
    }
}

/// Schemes users bring that this build does not write to yet, and what they are.
const NOT_YET: &[(&str, &str)] = &[
    ("gcs", "Google Cloud Storage by gcs:// (write gs://)"),
    ("http", "HTTP"),
    ("https", "HTTP"),
    ("sqlite", "SQLite by URL"),
    ("mssql", "SQL Server"),
    ("sqlserver", "SQL Server"),
    ("snowflake", "Snowflake"),
];

/// Object-store schemes (`object_store`'s).
const REMOTE: &[&str] = &["s3", "s3a", "az", "azure", "abfs", "abfss", "adl", "gs"];

/// The scheme of `text` if it is written as a URL (`scheme://…`). One-letter schemes are not
/// taken as URLs, so Windows paths such as `C://data` stay paths.
fn scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (scheme.len() > 1
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Parses a destination given as `what` (`--to`, `--output`): a local path, `file://` URL,
/// `postgresql://` URL, or a clear error for a URL this build cannot write to. Object stores
/// take their settings from the environment (see [`parse_destination_with`]).
pub fn parse_destination(text: &str, what: &str) -> Result<Destination, SyncError> {
    parse_destination_with(text, what, &[])
}

/// [`parse_destination`], with object-store settings given besides the environment (they win
/// over it): an `az://` URL needs its account before the store can be built, and it may come
/// only from these.
pub fn parse_destination_with(
    text: &str,
    what: &str,
    storage_options: &[(String, String)],
) -> Result<Destination, SyncError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SyncError::InvalidArgument(format!("{what} is empty: give a local path")));
    }
    if DeltaLocation::is_delta(text) {
        return Ok(Destination::Delta(DeltaLocation::parse_with(text, storage_options.to_vec())?));
    }
    let Some(scheme) = scheme(text) else { return Ok(Destination::Local(PathBuf::from(text))) };
    let lower = scheme.to_ascii_lowercase();
    if lower == "file" {
        let url = url::Url::parse(text)
            .map_err(|e| SyncError::InvalidArgument(format!("{what} {text}: not a valid file:// URL ({e})")))?;
        let path = url.to_file_path().map_err(|()| {
            SyncError::InvalidArgument(format!("{what} {text}: a file:// URL needs an absolute local path"))
        })?;
        return Ok(Destination::Local(path));
    }
    if lower == "postgresql" || lower == "postgres" {
        return Ok(Destination::Postgres(PostgresUrl::parse(text)?));
    }
    if REMOTE.contains(&lower.as_str()) {
        return Ok(Destination::Remote(RemoteUrl::parse_with(text, storage_options.to_vec())?));
    }
    // `delta+s3://…`, `delta+file://…`: the first part names the format.
    let base = lower.split('+').next().unwrap_or(&lower);
    match NOT_YET.iter().find(|(s, _)| *s == base) {
        Some((_, name)) => Err(SyncError::Unsupported(format!(
            "{what} {scheme}://…: writing to {name} is not supported by this build yet; \
             give a local path (a directory for sync, a file for export) and load it from there; \
             `d365 sync` also writes to postgresql://… and Delta Lake (delta+file://…, delta+s3://…)"
        ))),
        None => Err(SyncError::InvalidArgument(format!(
            "{what} {scheme}://…: unknown destination scheme '{scheme}'; give a local path"
        ))),
    }
}

/// The local path of a destination, for the commands that write files only (exports).
pub fn local_path(text: &str, what: &str) -> Result<PathBuf, SyncError> {
    match parse_destination(text, what)? {
        Destination::Local(p) => Ok(p),
        Destination::Postgres(_) => Err(SyncError::Unsupported(format!(
            "{what} postgresql://…: this command writes files; `d365 export TABLE -o postgresql://…` \
             loads a table into PostgreSQL once, `d365 sync TABLES --to postgresql://…` keeps it up to date"
        ))),
        Destination::Remote(r) => Err(SyncError::Unsupported(format!(
            "{what} {r}: this command writes a local file; table exports (`d365 export TABLE -o {r}`) and \
             query results (`d365 query SQL -o {r}`) go to object stores, and a sync writes Delta tables there (delta+{r})"
        ))),
        Destination::Delta(d) => Err(SyncError::Unsupported(format!(
            "{what} {d}: this command writes a file; Delta tables are written by `d365 export TABLE -o {d}`, \
             `d365 sync TABLES --to {d}` and `d365 query SQL -o {d}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_file_urls() {
        assert_eq!(local_path("./crm", "--to").unwrap(), PathBuf::from("./crm"));
        assert_eq!(local_path("crm/out.ndjson", "--output").unwrap(), PathBuf::from("crm/out.ndjson"));
        assert_eq!(local_path("C://data", "--to").unwrap(), PathBuf::from("C://data"));
        assert_eq!(local_path("file:///tmp/crm", "--to").unwrap(), PathBuf::from("/tmp/crm"));
        assert!(local_path("", "--to").is_err());
    }

    #[test]
    fn urls_of_stores_not_built_yet_are_refused_by_name() {
        for (url, name) in [
            ("postgresql://postgres@127.0.0.1:5432/postgres", "d365 sync"),
            ("postgres://u:secret@db/x", "d365 sync"),
            ("s3://u:secret@bucket/prefix", "table exports"),
            ("abfss://fs@acct.dfs.core.windows.net/x", "delta+abfss://fs@acct.dfs.core.windows.net/x"),
            ("delta+file:///tmp/t", "d365 sync TABLES --to"),
            ("mssql://u:secret@db/x", "SQL Server"),
            ("gs://bucket/x", "table exports"),
        ] {
            let e = local_path(url, "--to").unwrap_err();
            assert!(matches!(e, SyncError::Unsupported(_)), "{url}: {e}");
            let text = e.to_string();
            assert!(text.contains(name), "{url}: {text}");
            // Credentials in the URL never reach the message.
            assert!(!text.contains("secret") && !text.contains("127.0.0.1"), "{text}");
        }
        assert!(matches!(
            parse_destination("postgresql://u:secret@db:5433/crm?schema=x", "--to").unwrap(),
            Destination::Postgres(u) if u.schema == "x"
        ));
        assert!(matches!(parse_destination("s3://bucket/a/b.parquet", "-o").unwrap(), Destination::Remote(_)));
        // An Azure container URL needs its account: from the given settings, else a hint.
        let account = [("azure_storage_account_name".to_string(), "crmlake".to_string())];
        let az = parse_destination_with("az://crm/a.parquet", "-o", &account).unwrap();
        assert!(matches!(az, Destination::Remote(_)));
        let delta = parse_destination_with("delta+az://crm/lake", "--to", &account).unwrap();
        assert!(matches!(delta, Destination::Delta(_)));
        if std::env::var_os("AZURE_STORAGE_ACCOUNT_NAME").is_none() {
            let e = parse_destination("az://crm/a.parquet", "-o").unwrap_err().to_string();
            assert!(e.contains("AZURE_STORAGE_ACCOUNT_NAME"), "{e}");
        }
        let e = parse_destination("s3://bucket/dir/", "-o").unwrap_err().to_string();
        assert!(e.contains("name the object"), "{e}");
        let e = local_path("ftp2://x/y", "--to").unwrap_err();
        assert!(matches!(e, SyncError::InvalidArgument(_)) && e.to_string().contains("unknown destination scheme"));
    }
}
