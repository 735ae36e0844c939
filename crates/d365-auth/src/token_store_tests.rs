use super::*;

fn key(b: u8) -> StoreKey {
    StoreKey::from_bytes([b; 32])
}

fn sample() -> StoreData {
    let mut d = StoreData::default();
    d.entries.insert(
        "k".into(),
        StoredTokens {
            access_token: Some("at-secret".into()),
            refresh_token: Some("rt-secret".into()),
            expires_at: Some(1),
            flow: "test".into(),
            ..Default::default()
        },
    );
    d
}

#[tokio::test]
async fn round_trip_is_encrypted_private_and_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/tokens.bin");
    let store = TokenStore::file(path.clone(), key(1));
    assert_eq!(store.load().await.unwrap(), StoreData::default());
    store.lock().await.unwrap().write(&sample()).unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert!(raw.starts_with(b"D365TOK\x01\x01"));
    assert!(!String::from_utf8_lossy(&raw).contains("secret"));
    assert_eq!(store.load().await.unwrap(), sample());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "only the store and its lock file: {names:?}");
    assert!(!format!("{:?}", sample()).contains("secret"));
    assert!(store.delete().await.unwrap());
    assert!(!path.exists());
    assert!(!store.delete().await.unwrap());
}

#[tokio::test]
async fn wrong_key_foreign_and_damaged_files_are_errors_and_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bin");
    TokenStore::file(path.clone(), key(1)).lock().await.unwrap().write(&sample()).unwrap();
    let before = std::fs::read(&path).unwrap();

    let e = TokenStore::file(path.clone(), key(2)).load().await.unwrap_err();
    assert!(matches!(e, StoreError::WrongKey { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("D365_TOKEN_KEY") && msg.contains("d365 logout"),
        "{msg}"
    );

    let mut damaged = before.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let e = TokenStore::file(path.clone(), key(1)).load().await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "never deleted or rewritten");

    std::fs::write(&path, "OAuthAccessToken=abc\nOAuthRefreshToken=def\n").unwrap();
    let e = TokenStore::file(path.clone(), key(1)).load().await.unwrap_err();
    assert!(matches!(e, StoreError::Foreign { .. }), "{e}");
    assert!(!e.to_string().contains("abc"));

    let mut newer = before.clone();
    newer[7] = 9;
    std::fs::write(&path, &newer).unwrap();
    assert!(matches!(
        TokenStore::file(path.clone(), key(1)).load().await.unwrap_err(),
        StoreError::NewerFormat { version: 9, .. }
    ));
    std::fs::write(&path, &before[..20]).unwrap();
    assert!(matches!(TokenStore::file(path.clone(), key(1)).load().await.unwrap_err(), StoreError::Corrupt { .. }));
}

#[tokio::test]
async fn memory_stores_are_shared_by_name() {
    let a = TokenStore::memory("unit-shared");
    let b = TokenStore::memory("unit-shared");
    a.lock().await.unwrap().write(&sample()).unwrap();
    assert_eq!(b.load().await.unwrap(), sample());
    assert_eq!(TokenStore::memory("unit-other").load().await.unwrap(), StoreData::default());
    assert_eq!(a.location(), "memory://unit-shared");
    let env = Environment::empty();
    let c = TokenStore::open(Some("memory://unit-shared"), "x.bin", &env).unwrap();
    assert_eq!(c.load().await.unwrap(), sample());
}

#[tokio::test]
async fn the_lock_excludes_other_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.bin");
    let a = TokenStore::file(path.clone(), key(1));
    let b = TokenStore::file(path.clone(), key(1));
    let guard = a.lock().await.unwrap();
    let waiter = tokio::spawn(async move { b.lock().await.map(|_| ()) });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "second handle waits for the lock");
    drop(guard);
    waiter.await.unwrap().unwrap();
}

#[test]
fn open_picks_default_names_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let env = Environment::empty()
        .with("D365_CONFIG_DIR", dir.path().to_str().unwrap())
        .with("D365_TOKEN_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let s = TokenStore::open(None, "abc.bin", &env).unwrap();
    assert_eq!(s.path().unwrap(), dir.path().join("tokens/abc.bin"));
    let s = TokenStore::open(Some(dir.path().to_str().unwrap()), "abc.bin", &env).unwrap();
    assert_eq!(s.path().unwrap(), dir.path().join("abc.bin"));
    let s = TokenStore::open(Some("/x/y.bin"), "abc.bin", &env).unwrap();
    assert_eq!(s.path().unwrap(), Path::new("/x/y.bin"));
}
