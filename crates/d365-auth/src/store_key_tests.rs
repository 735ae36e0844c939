use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// An in-memory keyring with scripted failures.
#[derive(Default)]
struct Fake {
    entries: Mutex<HashMap<(String, String), String>>,
    get_error: Mutex<Option<KeyringError>>,
    set_error: Mutex<Option<KeyringError>>,
    /// `set` answers Ok but stores nothing.
    set_is_lost: bool,
    delay: Option<Duration>,
    /// Runs inside every `get` (to play another process acting meanwhile).
    on_get: Option<Box<dyn Fn() + Send + Sync>>,
    gets: AtomicUsize,
    sets: AtomicUsize,
}

impl Fake {
    fn arc(self) -> Arc<Self> {
        Arc::new(self)
    }
    fn failing_get(e: KeyringError) -> Self {
        Self { get_error: Mutex::new(Some(e)), ..Default::default() }
    }
    fn values(&self) -> Vec<String> {
        self.entries.lock().unwrap().values().cloned().collect()
    }
    fn calls(&self) -> usize {
        self.gets.load(Ordering::SeqCst) + self.sets.load(Ordering::SeqCst)
    }
}

impl Keyring for Fake {
    fn name(&self) -> String {
        "the fake keyring".into()
    }
    fn get(&self, service: &str, user: &str) -> Result<Option<Secret>, KeyringError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        if let Some(hook) = &self.on_get {
            hook();
        }
        if let Some(e) = self.get_error.lock().unwrap().clone() {
            return Err(e);
        }
        Ok(self.entries.lock().unwrap().get(&(service.into(), user.into())).map(|v| Secret::from(v.as_str())))
    }
    fn set(&self, service: &str, user: &str, value: &Secret) -> Result<(), KeyringError> {
        self.sets.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = self.set_error.lock().unwrap().clone() {
            return Err(e);
        }
        if !self.set_is_lost {
            self.entries.lock().unwrap().insert((service.into(), user.into()), value.expose().to_string());
        }
        Ok(())
    }
}

fn dyn_keyring(f: &Arc<Fake>) -> Option<Arc<dyn Keyring>> {
    Some(f.clone() as Arc<dyn Keyring>)
}

struct Dir {
    _tmp: tempfile::TempDir,
    cfg: PathBuf,
}

impl Dir {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("d365");
        Self { _tmp: tmp, cfg }
    }
    fn env(&self) -> Environment {
        Environment::empty().with("D365_CONFIG_DIR", self.cfg.to_str().unwrap())
    }
    fn key_file(&self) -> PathBuf {
        self.cfg.join(KEY_FILE_NAME)
    }
    fn note(&self) -> PathBuf {
        self.cfg.join(KEYRING_NOTE_NAME)
    }
    fn user(&self) -> String {
        format!("token-key:{}", self.cfg.display())
    }
}

fn resolve(env: &Environment, keyring: &Arc<Fake>) -> Result<StoreKey, StoreError> {
    StoreKey::resolve_inner(env, dyn_keyring(keyring), Duration::from_secs(5))
}

#[test]
fn env_key_and_key_file() {
    let key = STANDARD.encode([7u8; 32]);
    let k = StoreKey::resolve(&Environment::empty().with(KEY_ENV, &key)).unwrap();
    assert_eq!(k.bytes(), &[7u8; 32]);
    assert!(!format!("{k:?}").contains(&key));
    let e = StoreKey::resolve(&Environment::empty().with(KEY_ENV, "c2hvcnQ=")).unwrap_err().to_string();
    assert!(e.contains("D365_TOKEN_KEY") && e.contains("5 bytes"), "{e}");

    let d = Dir::new();
    let a = StoreKey::resolve(&d.env()).unwrap();
    let b = StoreKey::resolve(&d.env()).unwrap();
    assert_eq!(a.bytes(), b.bytes());
    assert_eq!(a.id(), b.id());
    assert_eq!(a.source(), &KeySource::File(d.key_file()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.key_file()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn the_environment_key_wins_and_the_keyring_is_not_asked() {
    let d = Dir::new();
    let f = Fake::default().arc();
    f.entries.lock().unwrap().insert((KEYRING_SERVICE.into(), d.user()), STANDARD.encode([1u8; 32]));
    let k = resolve(&d.env().with(KEY_ENV, STANDARD.encode([2u8; 32])), &f).unwrap();
    assert_eq!(k.bytes(), &[2u8; 32]);
    assert_eq!(k.source(), &KeySource::Environment);
    assert_eq!(f.calls(), 0);
}

#[test]
fn a_new_key_goes_to_the_keyring_and_is_read_back_from_it() {
    let d = Dir::new();
    let f = Fake::default().arc();
    let k = resolve(&d.env(), &f).unwrap();
    let KeySource::Keyring { service, user, keyring } = k.source() else { panic!("{:?}", k.source()) };
    assert_eq!((service.as_str(), user.as_str(), keyring.as_str()), ("d365", d.user().as_str(), "the fake keyring"));
    assert!(!d.key_file().exists(), "no key file when the keyring holds the key");
    assert_eq!(f.values(), vec![STANDARD.encode(k.bytes())]);
    // the note names the entry and the key id, never the key
    let note = std::fs::read_to_string(d.note()).unwrap();
    assert!(note.contains(&d.user()) && note.contains(&k.id_hex()), "{note}");
    assert!(!note.contains(&STANDARD.encode(k.bytes())));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d.note()).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // the next run reads the same key and writes nothing
    let sets = f.sets.load(Ordering::SeqCst);
    let k2 = resolve(&d.env(), &f).unwrap();
    assert_eq!(k2.bytes(), k.bytes());
    assert_eq!(f.sets.load(Ordering::SeqCst), sets);
    for text in [format!("{k:?}"), format!("{:?}", k.source()), k.source().to_string()] {
        assert!(!text.contains(&STANDARD.encode(k.bytes())), "{text}");
    }
}

#[test]
fn an_existing_key_file_wins_over_the_keyring() {
    let d = Dir::new();
    let from_file = StoreKey::from_file_or_create(&d.key_file()).unwrap();
    // reachable and empty: the key file, and nothing is created in the keyring
    let f = Fake::default().arc();
    let k = resolve(&d.env(), &f).unwrap();
    assert_eq!(k.bytes(), from_file.bytes());
    assert_eq!(k.source(), &KeySource::File(d.key_file()));
    assert_eq!(f.calls(), 0);
    assert!(!d.note().exists());
    // reachable with an entry (e.g. a key file copied from another machine): still the file
    f.entries.lock().unwrap().insert((KEYRING_SERVICE.into(), d.user()), STANDARD.encode([9u8; 32]));
    assert_eq!(resolve(&d.env(), &f).unwrap().bytes(), from_file.bytes());
}

#[test]
fn an_unusable_keyring_falls_back_to_the_key_file_quietly() {
    for e in [
        KeyringError::Unavailable("no D-Bus session".into()),
        KeyringError::Denied("locked".into()),
        KeyringError::Failed("org.freedesktop.DBus.Error.ServiceUnknown".into()),
    ] {
        let d = Dir::new();
        let f = Fake::failing_get(e.clone()).arc();
        let k = resolve(&d.env(), &f).unwrap();
        assert_eq!(k.source(), &KeySource::File(d.key_file()), "{e:?}");
        assert!(d.key_file().exists() && !d.note().exists());
        assert_eq!(f.sets.load(Ordering::SeqCst), 0);
        // and from then on the key file is the key, even once the keyring works
        *f.get_error.lock().unwrap() = None;
        assert_eq!(resolve(&d.env(), &f).unwrap().bytes(), k.bytes());
        assert!(f.values().is_empty());
    }
}

#[test]
fn a_refused_or_lost_keyring_write_falls_back_to_the_key_file() {
    let d = Dir::new();
    let f = Fake { set_error: Mutex::new(Some(KeyringError::Denied("prompt dismissed".into()))), ..Default::default() }
        .arc();
    let k = resolve(&d.env(), &f).unwrap();
    assert_eq!(k.source(), &KeySource::File(d.key_file()));
    assert!(!d.note().exists(), "the note is removed when the write fails");

    let d = Dir::new();
    let f = Fake { set_is_lost: true, ..Default::default() }.arc();
    let k = resolve(&d.env(), &f).unwrap();
    assert_eq!(k.source(), &KeySource::File(d.key_file()));
    assert!(!d.note().exists());
}

#[test]
fn a_keyring_that_does_not_answer_is_given_up_on_quickly() {
    let d = Dir::new();
    let f = Fake { delay: Some(Duration::from_secs(3)), ..Default::default() }.arc();
    let t = std::time::Instant::now();
    let k = StoreKey::resolve_inner(&d.env(), dyn_keyring(&f), Duration::from_millis(100)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(k.source(), &KeySource::File(d.key_file()));
}

#[test]
fn when_the_key_lives_in_the_keyring_an_unusable_keyring_is_an_error() {
    let d = Dir::new();
    let f = Fake::default().arc();
    let k = resolve(&d.env(), &f).unwrap();
    assert!(d.note().exists());
    let check = |e: StoreError| {
        assert!(matches!(e, StoreError::Keyring { .. }), "{e:?}");
        let m = e.to_string();
        assert!(
            m.contains(&d.user())
                && m.contains("D365_TOKEN_KEY")
                && m.contains(KEYRING_NOTE_NAME)
                && m.contains("\"d365\""),
            "{m}"
        );
        assert!(!m.contains(&STANDARD.encode(k.bytes())), "{m}");
        assert!(!d.key_file().exists(), "no second key is created");
        m
    };
    *f.get_error.lock().unwrap() = Some(KeyringError::Unavailable("no D-Bus session bus".into()));
    let m = check(resolve(&d.env(), &f).unwrap_err());
    assert!(m.contains("no D-Bus session bus"), "{m}");
    *f.get_error.lock().unwrap() = Some(KeyringError::Denied("the collection is locked".into()));
    check(resolve(&d.env(), &f).unwrap_err());
    *f.get_error.lock().unwrap() = None;
    let slow = Fake { delay: Some(Duration::from_secs(2)), ..Default::default() }.arc();
    check(StoreKey::resolve_inner(&d.env(), dyn_keyring(&slow), Duration::from_millis(50)).unwrap_err());
    check(StoreKey::resolve_inner(&d.env(), None, Duration::from_secs(1)).unwrap_err());
    let m = check(resolve(&d.env().with(KEYRING_ENV, "off"), &f).unwrap_err());
    assert!(m.contains("D365_TOKEN_KEYRING=off"), "{m}");
    // the ways out work: the stored key in D365_TOKEN_KEY, or the note deleted
    let env = d.env().with(KEY_ENV, STANDARD.encode(k.bytes())).with(KEYRING_ENV, "off");
    assert_eq!(resolve(&env, &f).unwrap().bytes(), k.bytes());
    std::fs::remove_file(d.note()).unwrap();
    let fresh = resolve(&d.env().with(KEYRING_ENV, "off"), &f).unwrap();
    assert_eq!(fresh.source(), &KeySource::File(d.key_file()));
}

#[test]
fn a_keyring_error_while_another_process_stores_the_key_there_is_an_error_not_a_second_key() {
    let d = Dir::new();
    let note = d.note();
    let f = Fake {
        get_error: Mutex::new(Some(KeyringError::Denied("the collection is locked".into()))),
        // the other process, holding the lock, writes its note while this one asks the keyring
        on_get: Some(Box::new(move || {
            std::fs::create_dir_all(note.parent().unwrap()).unwrap();
            std::fs::write(&note, "the other process's note").unwrap();
        })),
        ..Default::default()
    }
    .arc();
    let e = resolve(&d.env(), &f).unwrap_err();
    assert!(matches!(e, StoreError::Keyring { .. }), "{e:?}");
    assert!(!d.key_file().exists());
}

#[test]
fn a_bad_keyring_value_is_an_error_and_is_not_overwritten() {
    let d = Dir::new();
    let f = Fake::default().arc();
    f.entries.lock().unwrap().insert((KEYRING_SERVICE.into(), d.user()), "hunter2-not-a-key".into());
    let e = resolve(&d.env(), &f).unwrap_err();
    assert!(matches!(e, StoreError::BadKey { .. }), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("OS keyring") && m.contains(&d.user()) && !m.contains("hunter2"), "{m}");
    assert_eq!(f.values(), vec!["hunter2-not-a-key".to_string()]);
    assert_eq!(f.sets.load(Ordering::SeqCst), 0);
    assert!(!d.key_file().exists());
}

#[test]
fn an_entry_deleted_from_the_keyring_gets_a_new_key() {
    let d = Dir::new();
    let f = Fake::default().arc();
    let k = resolve(&d.env(), &f).unwrap();
    f.entries.lock().unwrap().clear();
    let k2 = resolve(&d.env(), &f).unwrap();
    assert_ne!(k.bytes(), k2.bytes());
    assert!(matches!(k2.source(), KeySource::Keyring { .. }));
    assert!(std::fs::read_to_string(d.note()).unwrap().contains(&k2.id_hex()));
}

#[test]
fn an_entry_found_without_a_note_gets_one() {
    let d = Dir::new();
    let f = Fake::default().arc();
    f.entries.lock().unwrap().insert((KEYRING_SERVICE.into(), d.user()), STANDARD.encode([5u8; 32]));
    let k = resolve(&d.env(), &f).unwrap();
    assert_eq!(k.bytes(), &[5u8; 32]);
    assert!(std::fs::read_to_string(d.note()).unwrap().contains(&k.id_hex()));
}

#[test]
fn the_keyring_can_be_turned_off_and_bad_settings_are_named() {
    let d = Dir::new();
    let f = Fake::default().arc();
    for off in ["off", "OFF", "false", "0", "no"] {
        let k = resolve(&d.env().with(KEYRING_ENV, off), &f).unwrap();
        assert_eq!(k.source(), &KeySource::File(d.key_file()));
    }
    assert_eq!(f.calls(), 0);
    let e = resolve(&Dir::new().env().with(KEYRING_ENV, "sometimes"), &f).unwrap_err().to_string();
    assert!(e.contains("D365_TOKEN_KEYRING=sometimes") && e.contains("auto") && e.contains("off"), "{e}");
    // no keyring handed in (an empty Environment): the key file, as before
    let d = Dir::new();
    assert!(!d.env().os_keyring());
    let k = StoreKey::resolve(&d.env()).unwrap();
    assert_eq!(k.source(), &KeySource::File(d.key_file()));
    assert!(Environment::from_process().os_keyring());
}

#[test]
fn concurrent_first_runs_agree_on_one_key() {
    let d = Dir::new();
    let f = Fake { delay: Some(Duration::from_millis(20)), ..Default::default() }.arc();
    let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let env = d.env();
                let f = f.clone();
                s.spawn(move || *resolve(&env, &f).unwrap().bytes())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "one key for all");
    assert_eq!(f.sets.load(Ordering::SeqCst), 1);
    assert!(!d.key_file().exists());
}

#[test]
fn the_keyring_user_names_the_absolute_config_dir() {
    let slot = KeyringSlot::new(Path::new("relative/d365"));
    let expected = std::env::current_dir().unwrap().join("relative/d365");
    assert_eq!(slot.user, format!("token-key:{}", expected.display()));
}
