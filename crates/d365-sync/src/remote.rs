//! Exports to object stores through `object_store`: `s3://bucket/key` (and S3-compatible
//! stores), `az://container/key` / `abfss://fs@account.dfs.core.windows.net/key` (ADLS Gen2,
//! OneLake), `gs://bucket/key`.
//!
//! Credentials and settings come from the environment variables of each ecosystem
//! (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AZURE_STORAGE_*`,
//! `GOOGLE_*`, …, as `object_store` names them), overridden by explicit options.
//!
//! An export to an object store is the local export, staged in the user's cache directory
//! (`…/d365/exports/<id of the URL>/`, so a re-run of the same command resumes it), then one
//! **multipart upload** of the finished file: the object appears whole when the upload
//! completes, and a failed upload is aborted, so no partial object is ever visible.

use std::path::PathBuf;

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::error::SyncError;

/// Environment variable prefixes passed to the store builders.
const ENV_PREFIXES: &[&str] = &["AWS_", "AZURE_", "GOOGLE_", "OBJECT_STORE_"];
/// Upload part size.
const PART: usize = 16 << 20;
/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// The local file `name` an export to `destination` is staged in (its directory created), under
/// `root` (default: d365's cache directory), stable for the destination so a re-run resumes.
pub(crate) fn staging_file(
    destination: &str,
    name: &str,
    root: Option<&std::path::Path>,
) -> Result<PathBuf, SyncError> {
    let root = match root {
        Some(r) => r.to_path_buf(),
        None => d365_client::default_cache_root().unwrap_or_else(std::env::temp_dir),
    };
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, destination.as_bytes());
    let dir = root.join("exports").join(id.to_string());
    std::fs::create_dir_all(&dir).map_err(SyncError::io(&dir))?;
    Ok(dir.join(name))
}

/// The host of `url`, with the file system's name before it for `abfs(s)://fs@account…`
/// (never a password).
pub(crate) fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.username() {
        user if !user.is_empty() && matches!(url.scheme(), "abfs" | "abfss") => format!("{user}@{host}"),
        _ => host.to_string(),
    }
}

/// The store settings of the environment (`AWS_*`, `AZURE_*`, `GOOGLE_*`, lower-cased as
/// `object_store` keys), overridden by `options`.
pub(crate) fn store_settings(options: &[(String, String)]) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    settings.extend(options.iter().cloned());
    settings
}

/// `message` of an object store, with what to do where the store's own words do not say it.
pub(crate) fn with_hint(message: String) -> String {
    if message.contains("Account must be specified") {
        return format!(
            "{message}: name the storage account with AZURE_STORAGE_ACCOUNT_NAME (and a key, SAS or \
             Entra ID settings in AZURE_STORAGE_*), or write the URL as abfss://container@account.dfs.core.windows.net/…"
        );
    }
    message
}

/// An object-store destination: the URL and the settings given besides the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    url: url::Url,
    options: Vec<(String, String)>,
}

impl std::fmt::Debug for RemoteUrl {
    /// The URL only: options may hold keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteUrl({self})")
    }
}

impl std::fmt::Display for RemoteUrl {
    /// The URL without password or query (a SAS token, say); the user part of an `abfs(s)://`
    /// URL, the file system's name, stays.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.url.scheme(), authority(&self.url), self.url.path())
    }
}

impl RemoteUrl {
    /// Parses `text`, with settings from the environment.
    pub fn parse(text: &str) -> Result<Self, SyncError> {
        Self::parse_with(text, Vec::new())
    }

    /// Parses `text`, with settings from the environment overridden by `options`
    /// (`object_store` configuration keys such as `aws_endpoint`, `aws_allow_http`). The store
    /// is built once here, so a bad URL or setting is reported before any work.
    pub fn parse_with(text: &str, options: Vec<(String, String)>) -> Result<Self, SyncError> {
        let url = url::Url::parse(text.trim()).map_err(|e| {
            SyncError::InvalidArgument(format!("the destination is not a valid URL ({e}): use scheme://bucket/path"))
        })?;
        let remote = Self { url, options };
        let path = remote.url.path();
        if path.trim_matches('/').is_empty() || path.ends_with('/') {
            return Err(SyncError::InvalidArgument(format!(
                "{remote}: name the object to write (e.g. {remote}{}accounts.parquet)",
                if path.ends_with('/') { "" } else { "/" }
            )));
        }
        remote.open()?;
        Ok(remote)
    }

    /// The store and the object's path in it.
    fn open(&self) -> Result<(Box<dyn ObjectStore>, StorePath), SyncError> {
        object_store::parse_url_opts(&self.url, store_settings(&self.options)).map_err(|e| self.error(e))
    }

    fn error(&self, e: object_store::Error) -> SyncError {
        SyncError::ObjectStore { target: self.to_string(), message: with_hint(e.to_string()) }
    }

    /// The local file the export is staged in (its directory created) under `root` (default:
    /// d365's cache directory), stable for the URL so a re-run resumes.
    pub fn staging_file(&self, root: Option<&std::path::Path>) -> Result<PathBuf, SyncError> {
        let (_, path) = self.open()?;
        staging_file(&self.to_string(), path.filename().unwrap_or("export"), root)
    }

    /// Uploads the local file `from` as the object, in parts; aborted on failure.
    pub async fn upload(&self, from: &std::path::Path) -> Result<u64, SyncError> {
        let err = |e: object_store::Error| self.error(e);
        let (store, path) = self.open()?;
        let mut file = tokio::fs::File::open(from).await.map_err(SyncError::io(from))?;
        let upload = store.put_multipart(&path).await.map_err(err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut total = 0u64;
        let mut buf = vec![0u8; 4 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(SyncError::io(from)(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(err(e));
            }
            writer.write(&buf[..n]);
            total += n as u64;
        }
        writer.finish().await.map_err(err)?;
        Ok(total)
    }

    /// The object's size, if it exists.
    pub async fn size(&self) -> Result<Option<u64>, SyncError> {
        let (store, path) = self.open()?;
        match store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Writes `bytes` as the object in one put (a small object: a manifest).
    pub async fn put(&self, bytes: bytes::Bytes) -> Result<(), SyncError> {
        let (store, path) = self.open()?;
        store.put(&path, bytes.into()).await.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The object's bytes (for checks and tests).
    pub async fn read(&self) -> Result<bytes::Bytes, SyncError> {
        let (store, path) = self.open()?;
        let got = store.get(&path).await.map_err(|e| self.error(e))?;
        got.bytes().await.map_err(|e| self.error(e))
    }
}
