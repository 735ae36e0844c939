//! The metadata disk cache and [`Metadata`], the cached view of an organisation's tables.
//!
//! One directory per organisation (key: the organisation URL and API version) under the user's
//! cache directory (`$XDG_CACHE_HOME/d365/metadata`, `~/.cache/…`, `~/Library/Caches/…`,
//! `%LOCALAPPDATA%\d365\cache\…`) or a given path. It holds `entities.json` (the table list)
//! and `entity.<logical name>.json` (one table's columns), each stamped with the time it was
//! fetched; entries older than the TTL (24 h by default) are fetched again. Files are written
//! atomically (a temporary file renamed over the old one), so a crash or a concurrent process
//! never leaves a half-written file. A corrupt or unreadable file is treated as a miss.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::client::DataverseClient;
use crate::error::ClientError;
use crate::metadata::{EntityInfo, EntityMetadata};

const FORMAT: u32 = 1;

/// Where and how long metadata is cached.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Cache root; `None` uses the user's cache directory. Each organisation gets a
    /// sub-directory.
    pub dir: Option<PathBuf>,
    /// How long an entry stays fresh.
    pub ttl: Duration,
    /// Ignore what is cached and fetch again (the entries are rewritten), e.g.
    /// `--refresh-metadata`.
    pub refresh: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self { dir: None, ttl: Duration::from_secs(24 * 3600), refresh: false }
    }
}

/// The user's cache directory for d365 (`None` when no home directory is known).
pub fn default_cache_root() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if cfg!(windows) {
        return env("LOCALAPPDATA").map(|p| p.join("d365").join("cache"));
    }
    if cfg!(target_os = "macos") {
        return env("HOME").map(|p| p.join("Library").join("Caches").join("d365"));
    }
    env("XDG_CACHE_HOME").or_else(|| env("HOME").map(|h| h.join(".cache"))).map(|p| p.join("d365"))
}

/// FNV-1a, 64 bits: a stable short hash for directory names (not for security).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: u32,
    org_url: String,
    fetched_at: u64,
    data: T,
}

/// The cache directory of one organisation.
#[derive(Debug, Clone)]
pub struct MetadataCache {
    dir: PathBuf,
    org_key: String,
    ttl: Duration,
}

impl MetadataCache {
    /// The cache of the organisation at `org_url` (API `api_version`) under `options.dir` or
    /// the user's cache directory.
    pub fn new(options: &CacheOptions, org_url: &str, api_version: &str) -> Result<Self, ClientError> {
        let root = options.dir.clone().or_else(default_cache_root).ok_or_else(|| ClientError::Cache {
            path: "(none)".into(),
            message: "no cache directory: set HOME or XDG_CACHE_HOME, or give a cache directory".into(),
        })?;
        let org_key = format!("{}|v{}", org_url.trim_end_matches('/').to_ascii_lowercase(), api_version);
        let host = url::Url::parse(org_url)
            .ok()
            .and_then(|u| u.host_str().map(|h| format!("{h}{}", u.port().map(|p| format!("_{p}")).unwrap_or_default())))
            .unwrap_or_else(|| "org".into());
        let dir = root.join("metadata").join(format!("{}-{:016x}", sanitize(&host), fnv1a(&org_key)));
        Ok(Self { dir, org_key, ttl: options.ttl })
    }

    /// The organisation's cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of cache entry `name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.json", sanitize(name)))
    }

    /// A fresh entry, or `None` (missing, expired, from another organisation, or unreadable).
    pub fn read<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let path = self.file(name);
        let bytes = std::fs::read(&path).ok()?;
        let env: Envelope<T> = match serde_json::from_slice(&bytes) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable metadata cache file");
                return None;
            }
        };
        if env.format != FORMAT || env.org_url != self.org_key {
            return None;
        }
        let age = now_secs().saturating_sub(env.fetched_at);
        (Duration::from_secs(age) < self.ttl).then_some(env.data)
    }

    /// Writes entry `name` atomically.
    pub fn write<T: Serialize>(&self, name: &str, data: &T) -> Result<(), ClientError> {
        let cache_err = |path: &Path, e: &dyn std::fmt::Display| ClientError::Cache {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| cache_err(&self.dir, &e))?;
        let env = Envelope { format: FORMAT, org_url: self.org_key.clone(), fetched_at: now_secs(), data };
        let bytes = serde_json::to_vec(&env).map_err(|e| cache_err(&self.dir, &e))?;
        let path = self.file(name);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| cache_err(&self.dir, &e))?;
        tmp.write_all(&bytes).map_err(|e| cache_err(tmp.path(), &e))?;
        tmp.as_file().sync_all().map_err(|e| cache_err(tmp.path(), &e))?;
        tmp.persist(&path).map_err(|e| cache_err(&path, &e.error))?;
        Ok(())
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Default)]
struct Memo {
    entities: Option<Arc<Vec<EntityInfo>>>,
    tables: HashMap<String, Arc<EntityMetadata>>,
}

/// The metadata of one organisation, fetched on demand and cached in memory and on disk.
pub struct Metadata {
    client: DataverseClient,
    cache: Option<MetadataCache>,
    refresh: bool,
    memo: Mutex<Memo>,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata").field("cache", &self.cache.as_ref().map(|c| c.dir.clone())).finish()
    }
}

impl Metadata {
    /// Metadata of `client`'s organisation, cached on disk as `options` say.
    pub fn new(client: DataverseClient, options: &CacheOptions) -> Result<Self, ClientError> {
        let cache = MetadataCache::new(options, client.org_url().as_str(), &client.options().api_version)?;
        Ok(Self { client, cache: Some(cache), refresh: options.refresh, memo: Mutex::new(Memo::default()) })
    }

    /// Metadata kept in memory only.
    pub fn in_memory(client: DataverseClient) -> Self {
        Self { client, cache: None, refresh: false, memo: Mutex::new(Memo::default()) }
    }

    /// The disk cache, if any.
    pub fn cache(&self) -> Option<&MetadataCache> {
        self.cache.as_ref()
    }

    fn cached<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        if self.refresh {
            return None;
        }
        self.cache.as_ref()?.read(name)
    }

    fn store<T: Serialize>(&self, name: &str, data: &T) {
        if let Some(c) = &self.cache
            && let Err(e) = c.write(name, data)
        {
            // The cache is an optimisation: a read-only disk must not fail the query.
            tracing::warn!(error = %e, "could not write the metadata cache");
        }
    }

    /// Every table (one request when not cached; columns are not fetched).
    pub async fn entities(&self) -> Result<Arc<Vec<EntityInfo>>, ClientError> {
        if let Some(e) = &self.memo.lock().await.entities {
            return Ok(e.clone());
        }
        let list = match self.cached::<Vec<EntityInfo>>("entities") {
            Some(list) => list,
            None => {
                let list = if self.client.service().is_finops() {
                    self.client.fetch_finops_entities().await?
                } else {
                    self.client.fetch_entities().await?
                };
                self.store("entities", &list);
                list
            }
        };
        let mut memo = self.memo.lock().await;
        Ok(memo.entities.get_or_insert(Arc::new(list)).clone())
    }

    /// The table named `name`: logical name or entity set name, case-insensitive.
    pub async fn find_entity(&self, name: &str) -> Result<Option<EntityInfo>, ClientError> {
        let list = self.entities().await?;
        Ok(list
            .iter()
            .find(|e| e.logical_name.eq_ignore_ascii_case(name))
            .or_else(|| {
                list.iter().find(|e| e.entity_set_name.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(name)))
            })
            .cloned())
    }

    /// One table's columns, relationships and keys (fetched when not cached). Several tables
    /// may be fetched concurrently.
    pub async fn entity(&self, logical_name: &str) -> Result<Arc<EntityMetadata>, ClientError> {
        let key = logical_name.to_ascii_lowercase();
        if let Some(m) = self.memo.lock().await.tables.get(&key) {
            return Ok(m.clone());
        }
        let name = format!("entity.{key}");
        let meta = match self.cached::<EntityMetadata>(&name) {
            Some(m) => m,
            None if self.client.service().is_finops() => {
                // Entity names are case-sensitive there: find the listed entity first.
                let info = self.find_entity(logical_name).await?.ok_or_else(|| {
                    ClientError::InvalidArgument(format!(
                        "no data entity '{logical_name}' is exposed by the OData service (see `d365 tables`)"
                    ))
                })?;
                let m = self.client.fetch_finops_entity(&info).await?;
                self.store(&name, &m);
                m
            }
            None => {
                let m = self.client.fetch_entity_metadata(&key).await?;
                self.store(&name, &m);
                m
            }
        };
        let mut memo = self.memo.lock().await;
        Ok(memo.tables.entry(key).or_insert_with(|| Arc::new(meta)).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_expire_and_are_per_org() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CacheOptions { dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let a = MetadataCache::new(&opts, "https://a.crm.dynamics.com/", "9.2").unwrap();
        let b = MetadataCache::new(&opts, "https://b.crm.dynamics.com/", "9.2").unwrap();
        assert_ne!(a.dir(), b.dir());
        a.write("entities", &vec![1, 2, 3]).unwrap();
        assert_eq!(a.read::<Vec<i32>>("entities"), Some(vec![1, 2, 3]));
        assert_eq!(b.read::<Vec<i32>>("entities"), None);
        // No temporary files are left behind.
        let files: Vec<_> = std::fs::read_dir(a.dir()).unwrap().collect();
        assert_eq!(files.len(), 1);
        let expired = MetadataCache::new(
            &CacheOptions { ttl: Duration::ZERO, ..opts.clone() },
            "https://a.crm.dynamics.com",
            "9.2",
        )
        .unwrap();
        assert_eq!(expired.dir(), a.dir());
        assert_eq!(expired.read::<Vec<i32>>("entities"), None);
        std::fs::write(a.file("entities"), b"{not json").unwrap();
        assert_eq!(a.read::<Vec<i32>>("entities"), None);
    }

    #[test]
    fn default_root_is_under_the_user_cache() {
        if let Some(root) = default_cache_root() {
            assert!(root.ends_with("d365") || root.ends_with("cache"));
        }
    }
}
