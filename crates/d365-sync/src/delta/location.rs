//! Where Delta tables live: `delta+file:///…`, `delta:relative/path`, `delta+s3://…`,
//! `delta+abfss://…`, `delta+az://…`, `delta+gs://…`, and opening a table there.

use std::collections::HashMap;
use std::sync::{Arc, Once};

use deltalake_core::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
    object_store_factories,
};
use deltalake_core::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError, Path};
use url::Url;

use crate::error::SyncError;

/// Object-store schemes a Delta table may live on (`object_store`'s).
const REMOTE: &[&str] = &["s3", "s3a", "az", "azure", "abfs", "abfss", "adl", "gs"];

/// The root of Delta tables: a local directory or an object-store prefix, with the store
/// settings given besides the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct DeltaLocation {
    root: Url,
    options: Vec<(String, String)>,
}

impl std::fmt::Debug for DeltaLocation {
    /// The location only: options may hold keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeltaLocation({self})")
    }
}

impl std::fmt::Display for DeltaLocation {
    /// `delta+` and the URL without user info or query (a SAS token, say).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(&self.root))
    }
}

impl DeltaLocation {
    /// Whether `text` names a Delta location (`delta:` or `delta+` first).
    pub fn is_delta(text: &str) -> bool {
        let lower = text.trim_start().get(..6).unwrap_or("").to_ascii_lowercase();
        lower.starts_with("delta:") || lower.starts_with("delta+")
    }

    /// Parses `text` (see the module docs), with store settings from the environment.
    pub fn parse(text: &str) -> Result<Self, SyncError> {
        Self::parse_with(text, Vec::new())
    }

    /// Parses `text`, with store settings from the environment overridden by `options`
    /// (`object_store` keys such as `aws_endpoint`, `aws_allow_http`).
    pub fn parse_with(text: &str, options: Vec<(String, String)>) -> Result<Self, SyncError> {
        let text = text.trim();
        let bad = |why: String| {
            SyncError::InvalidArgument(format!(
                "{why}; write a Delta location as delta+file:///abs/dir, delta:relative/dir, \
                 delta+s3://bucket/prefix, delta+abfss://fs@account.dfs.core.windows.net/prefix or delta+gs://bucket/prefix"
            ))
        };
        let rest = if Self::is_delta(text) {
            &text[6..]
        } else {
            return Err(bad(format!("'{}' is not a Delta location", redact(text))));
        };
        let root = if text.as_bytes()[5] == b':' {
            // `delta:PATH`: a local directory, relative or absolute.
            if rest.trim().is_empty() {
                return Err(bad("the Delta location names no directory".into()));
            }
            local_dir_url(std::path::Path::new(rest))?
        } else {
            let url = Url::parse(rest).map_err(|e| bad(format!("'{}' is not a valid URL ({e})", redact(text))))?;
            match url.scheme() {
                "file" => {
                    let path = url
                        .to_file_path()
                        .map_err(|()| bad("a delta+file:// URL needs an absolute local path".into()))?;
                    local_dir_url(&path)?
                }
                s if REMOTE.contains(&s) => {
                    if url.host_str().unwrap_or("").is_empty() {
                        return Err(bad(format!("delta+{s}://…: the URL names no bucket or container")));
                    }
                    as_directory(url)
                }
                s => {
                    return Err(bad(format!(
                        "delta+{s}://…: Delta tables are written to local directories and to the object stores \
                         s3, az/abfss and gs only"
                    )));
                }
            }
        };
        let location = Self { root, options };
        if location.is_remote() {
            // The store is built once here, so a bad URL or setting is reported before any work.
            object_store::parse_url_opts(&location.root, location.settings())
                .map_err(|e| super::error(&location, crate::remote::with_hint(e.to_string())))?;
        }
        Ok(location)
    }

    /// Whether the tables are on an object store (not a local directory).
    pub fn is_remote(&self) -> bool {
        self.root.scheme() != "file"
    }

    /// The URL of the location itself, ending in `/` (the table of an export).
    pub fn url(&self) -> &Url {
        &self.root
    }

    /// The URL of the table `name` under the location (a sync's tables).
    pub fn table_url(&self, name: &str) -> Url {
        let mut url = self.root.clone();
        url.path_segments_mut()
            .map(|mut s| {
                s.pop_if_empty().push(name).push("");
            })
            .ok();
        url
    }

    /// The store settings: the environment's, overridden by the options given.
    fn settings(&self) -> Vec<(String, String)> {
        crate::remote::store_settings(&self.options)
    }

    /// The settings handed to `deltalake` (none for a local directory).
    pub(crate) fn storage_options(&self) -> HashMap<String, String> {
        if self.is_remote() { self.settings().into_iter().collect() } else { HashMap::new() }
    }

    /// Opens the Delta table at `url` (under this location), loaded if it exists. A local
    /// directory is created first.
    pub async fn open(&self, url: &Url) -> Result<DeltaTable, SyncError> {
        let mut table = self.unloaded(url)?;
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(table),
            Err(e) => Err(super::error(&self.describe(url), e)),
        }
    }

    /// The Delta table at `url` (under this location) without reading its log: for its object
    /// store (files beside the table) and for writers. A local directory is created first.
    pub(crate) fn unloaded(&self, url: &Url) -> Result<DeltaTable, SyncError> {
        register_stores();
        if let Ok(dir) = url.to_file_path() {
            std::fs::create_dir_all(&dir).map_err(SyncError::io(&dir))?;
        }
        DeltaTableBuilder::from_url(url.clone())
            .and_then(|b| b.with_storage_options(self.storage_options()).build())
            .map_err(|e| super::error(&self.describe(url), e))
    }

    /// `url` for messages (no credentials).
    pub fn describe(&self, url: &Url) -> String {
        format!("delta+{}://{}{}", url.scheme(), crate::remote::authority(url), url.path().trim_end_matches('/'))
    }
}

/// `text` without user info or query, for messages.
fn redact(text: &str) -> String {
    let cut = text.find('?').unwrap_or(text.len());
    let text = &text[..cut];
    match (text.find("://"), text.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &text[..s + 3], &text[at + 1..]),
        _ => text.to_string(),
    }
}

fn as_directory(mut url: Url) -> Url {
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn local_dir_url(path: &std::path::Path) -> Result<Url, SyncError> {
    let abs = std::path::absolute(path).map_err(SyncError::io(path))?;
    Url::from_directory_path(&abs)
        .map_err(|()| SyncError::InvalidArgument(format!("{}: not a usable local directory", abs.display())))
}

/// Object stores for the `s3`, `az`/`abfss` and `gs` schemes, built by `object_store` from the
/// settings given (so the credentials of the environment apply as for other destinations),
/// with `deltalake`'s default log store: commits are conditional puts (`If-None-Match`).
struct Stores;

impl ObjectStoreFactory for Stores {
    fn parse_url_opts(&self, url: &Url, config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, Path)> {
        let (store, path) = object_store::parse_url_opts(url, config.raw.iter())?;
        Ok((Arc::from(store), path))
    }
}

impl LogStoreFactory for Stores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// Registers [`Stores`] for the object-store schemes no one registered before.
fn register_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let stores = Arc::new(Stores);
        for scheme in REMOTE {
            let Ok(key) = Url::parse(&format!("{scheme}://")) else { continue };
            object_store_factories().entry(key.clone()).or_insert_with(|| stores.clone());
            logstore_factories().entry(key).or_insert_with(|| stores.clone());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_print_without_secrets() {
        let l = DeltaLocation::parse("delta+file:///tmp/lake").unwrap();
        assert!(!l.is_remote());
        assert_eq!(l.url().as_str(), "file:///tmp/lake/");
        assert_eq!(l.table_url("account").as_str(), "file:///tmp/lake/account/");
        let rel = DeltaLocation::parse("delta:lake/crm").unwrap();
        assert!(rel.url().path().ends_with("/lake/crm/"), "{}", rel.url());
        let s3 = DeltaLocation::parse_with(
            "delta+s3://bucket/lake?sig=secret",
            vec![("aws_region".into(), "us-east-1".into())],
        )
        .unwrap();
        assert!(s3.is_remote());
        assert_eq!(s3.to_string(), "delta+s3://bucket/lake");
        assert_eq!(s3.table_url("contact").as_str(), "s3://bucket/lake/contact/");
        let adls = DeltaLocation::parse("delta+abfss://crm@acct.dfs.core.windows.net/lake").unwrap();
        assert_eq!(adls.to_string(), "delta+abfss://crm@acct.dfs.core.windows.net/lake");
        assert!(!format!("{s3:?}").contains("secret"));
        for (bad, says) in [
            ("delta+ftp://x/y", "local directories and to the object stores"),
            ("delta+file://relative", "absolute local path"),
            ("delta:", "names no directory"),
            ("delta+s3://u:secret@/x", "not a valid URL"),
            ("lake", "not a Delta location"),
        ] {
            let e = DeltaLocation::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
