//! The token store key in a real Secret Service (gnome-keyring over D-Bus), end to end: created
//! in the keyring on first use (no key file), read back by a fresh handle, used by a token store,
//! and refused — not replaced — when the keyring is out of reach.
//!
//! Needs a D-Bus session bus with an unlocked Secret Service provider. `.ci/run` runs it as
//!
//! ```sh
//! XDG_DATA_HOME=$(mktemp -d) dbus-run-session -- sh -c \
//!   'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null &&
//!    D365_KEYRING_TEST=require cargo test -p d365-auth --test os_keyring'
//! ```
//!
//! Without a session bus it prints why and passes, unless `D365_KEYRING_TEST=require`. Only on
//! Linux and BSD: on macOS and Windows it would write to the user's own keychain.

#![cfg(all(unix, not(target_os = "macos")))]

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use d365_auth::Environment;
use d365_auth::StoreError;
use d365_auth::store_key::{KEY_FILE_NAME, KEYRING_NOTE_NAME, KEYRING_SERVICE, KeySource, OsKeyring, StoreKey};
use d365_auth::token_store::{StoreData, StoredTokens, TokenStore};

/// The session bus address, if there is one.
fn session_bus() -> Option<String> {
    if let Ok(a) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        && !a.trim().is_empty()
    {
        return Some(a);
    }
    let runtime = std::env::var("XDG_RUNTIME_DIR").ok()?;
    let socket = PathBuf::from(runtime).join("bus");
    socket.exists().then(|| format!("unix:path={}", socket.display()))
}

/// Deletes the test's keyring entry however the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(e) = keyring::Entry::new(KEYRING_SERVICE, &self.0) {
            let _ = e.delete_credential();
        }
    }
}

#[tokio::test]
async fn the_store_key_lives_in_the_secret_service() {
    let required = std::env::var("D365_KEYRING_TEST").is_ok_and(|v| v == "require");
    let Some(bus) = session_bus() else {
        assert!(!required, "D365_KEYRING_TEST=require but there is no D-Bus session bus");
        eprintln!(
            "SKIPPED the_store_key_lives_in_the_secret_service: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is unset and there is no $XDG_RUNTIME_DIR/bus); .ci/run runs it under dbus-run-session with gnome-keyring"
        );
        return;
    };
    eprintln!("session bus: {bus}");

    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("d365");
    let mut env = Environment::from_process();
    env.remove("D365_TOKEN_KEY");
    env.remove("D365_TOKEN_KEYRING");
    env.set("D365_CONFIG_DIR", cfg.to_str().unwrap());
    let user = format!("token-key:{}", cfg.display());
    let _cleanup = Cleanup(user.clone());

    // first use: a new key, stored in the Secret Service, no key file
    let key = tokio::task::spawn_blocking({
        let env = env.clone();
        move || StoreKey::resolve(&env)
    })
    .await
    .unwrap()
    .expect("resolving with a Secret Service on the bus (is one running and unlocked?)");
    let KeySource::Keyring { keyring, service, user: u } = key.source() else {
        panic!("the key should come from the keyring, not {}", key.source())
    };
    assert_eq!((service.as_str(), u.as_str()), (KEYRING_SERVICE, user.as_str()));
    assert!(keyring.contains("Secret Service"), "{keyring}");
    assert!(!cfg.join(KEY_FILE_NAME).exists(), "no key file when the keyring holds the key");
    let note = std::fs::read_to_string(cfg.join(KEYRING_NOTE_NAME)).unwrap();
    assert!(note.contains(&user), "{note}");

    // it really is in the Secret Service: read it with the keyring crate directly
    let stored = keyring::Entry::new(KEYRING_SERVICE, &user).unwrap().get_password().unwrap();
    let stored_key = StoreKey::decode(&stored, KeySource::Explicit).unwrap();
    assert_eq!(stored_key.id(), key.id());
    assert!(!note.contains(&stored), "the note holds no secret");
    assert!(!format!("{key:?} {env:?}").contains(&stored));
    assert_eq!(STANDARD.decode(stored.trim()).unwrap().len(), 32);

    // a fresh handle (nothing remembered in-process) reads the same key from the service
    let again = StoreKey::resolve_with(&env, Some(Arc::new(OsKeyring::new()))).unwrap();
    assert_eq!(again.id(), key.id());
    assert!(!cfg.join(KEY_FILE_NAME).exists());

    // a token store opened the ordinary way uses it
    let path = tmp.path().join("tokens.bin");
    let store = TokenStore::open(Some(path.to_str().unwrap()), "x.bin", &env).unwrap();
    let mut data = StoreData::default();
    data.entries.insert("k".into(), StoredTokens { refresh_token: Some("rt-secret".into()), ..Default::default() });
    store.lock().await.unwrap().write(&data).unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert_eq!(&raw[9..17], &key.id(), "the file header carries the keyring key's id");
    assert_eq!(TokenStore::file(path.clone(), stored_key).load().await.unwrap(), data);

    // out of reach of the keyring (like an SSH session without D-Bus): an error naming the
    // entry, never a second key
    let e = StoreKey::resolve(&env.clone().with_os_keyring(false)).unwrap_err();
    assert!(matches!(e, StoreError::Keyring { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains(&user) && m.contains("D365_TOKEN_KEY") && !m.contains(&stored), "{m}");
    assert!(!cfg.join(KEY_FILE_NAME).exists());

    // the ways out: the stored value as D365_TOKEN_KEY opens the same store
    let env_key = env.clone().with("D365_TOKEN_KEY", &stored).with("D365_TOKEN_KEYRING", "off");
    let via_env = TokenStore::open(Some(path.to_str().unwrap()), "x.bin", &env_key).unwrap();
    assert_eq!(via_env.load().await.unwrap(), data);
}
