//! The desktop sign-in in a real browser: `d365 login` (AuthScheme=AzureAD, the emulator's public
//! desktop app, InitiateOAuth=GETANDREFRESH, tokens in a temporary OAuthSettingsLocation) runs
//! its browser command, which drives **headless Chromium** through chromedriver's W3C WebDriver
//! API: it opens the sign-in URL, fills the emulator's sign-in form, accepts the consent page and
//! waits until Chromium has been redirected to d365's loopback listener and shows "You can close
//! this window". Then `d365 whoami` succeeds from the stored tokens, with no browser at all. The
//! emulator does not auto-approve anything here: a person's steps, done by Chromium.
//!
//! Chromium trusts the emulator's CA through `--ignore-certificate-errors-spki-list` with the
//! CA's public-key hash (no blanket "accept insecure certificates").
//!
//! This binary has its own `main` (`harness = false`): run without arguments (or with a matching
//! filter) it is the test; run as `browser_login --open-url URL` it is the browser command
//! `d365 login` starts, reporting the outcome in the file named by `D365_TEST_BROWSER_REPORT`.
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test fails and says so.

#[path = "cli/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use common::webdriver::{Session, WebDriver};
use common::*;
use serde_json::json;
use tokio::io::AsyncReadExt;

const TEST_NAME: &str = "desktop_sign_in_in_headless_chromium";
/// Time for the whole test.
const TEST_LIMIT: Duration = Duration::from_secs(300);
/// Time for one wait inside the browser (a page, a redirect).
const PAGE_LIMIT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--open-url") {
        return browser_command(args.get(i + 1).map(String::as_str).unwrap_or_default());
    }
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return ExitCode::SUCCESS;
    }
    if !selected(&args) {
        println!("\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n");
        return ExitCode::SUCCESS;
    }
    println!("\nrunning 1 test");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    let started = Instant::now();
    runtime.block_on(async {
        tokio::time::timeout(TEST_LIMIT, scenario())
            .await
            .unwrap_or_else(|_| panic!("{TEST_NAME} did not finish within {TEST_LIMIT:?}"))
    });
    println!("test {TEST_NAME} ... ok ({:.1} s)", started.elapsed().as_secs_f64());
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n");
    ExitCode::SUCCESS
}

/// Whether libtest-style arguments (filters, `--exact`, `--skip`, `--ignored`) select the test.
fn selected(args: &[String]) -> bool {
    const WITH_VALUE: &[&str] = &["--test-threads", "--format", "--color", "--logfile", "-Z", "--shuffle-seed"];
    let exact = args.iter().any(|a| a == "--exact");
    let matches = |f: &str| if exact { f == TEST_NAME } else { TEST_NAME.contains(f) };
    if args.iter().any(|a| a == "--ignored") {
        return false;
    }
    let mut filters = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            it.next();
        } else if a == "--skip" {
            if it.next().is_some_and(|s| TEST_NAME.contains(s.as_str())) {
                return false;
            }
        } else if !a.starts_with('-') {
            filters.push(a.as_str());
        }
    }
    filters.is_empty() || filters.iter().any(|f| matches(f))
}

/// A program on PATH (or in /usr/bin).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]).collect();
    names.iter().find_map(|n| dirs.iter().map(|d| d.join(n)).find(|p| p.is_file()))
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in a PEM file: the form
/// Chromium's `--ignore-certificate-errors-spki-list` takes.
fn spki_hash(pem_file: &Path) -> String {
    use base64::Engine as _;
    let text = std::fs::read(pem_file).expect("the emulator's CA file");
    let pem = pem::parse(&text).expect("the CA file is PEM");
    let (_, cert) = x509_parser::parse_x509_certificate(pem.contents()).expect("the CA is an X.509 certificate");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.public_key().raw);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    let mut s = String::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_string(&mut s).await;
    }
    s
}

async fn scenario() {
    let missing = "headless Chromium is needed for this test: run .ci/run (it installs Debian's chromium and \
                   chromium-driver) or `sudo apt-get install -y chromium chromium-driver`";
    let chromium = find_program(&["chromium", "chromium-browser"])
        .unwrap_or_else(|| panic!("`chromium` was not found on PATH: {missing}"));
    let chromedriver =
        find_program(&["chromedriver"]).unwrap_or_else(|| panic!("`chromedriver` was not found on PATH: {missing}"));

    let env = start().await; // no auto-approve: Chromium fills the pages
    let exe = std::env::current_exe().expect("this test's path");
    assert!(
        !exe.to_string_lossy().contains(char::is_whitespace),
        "the browser command is split on spaces: build in a target directory without spaces ({})",
        exe.display()
    );

    // chromedriver, in an environment of its own (no proxies, a scratch HOME)
    let port = free_port();
    let driver_log = env.path("chromedriver.log");
    std::fs::create_dir_all(env.path("home")).unwrap();
    let mut driver = tokio::process::Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", driver_log.display()))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
    let webdriver_url = format!("http://127.0.0.1:{port}");
    let wd = WebDriver::new(&webdriver_url);
    if let Err(e) = wd.wait_ready(Duration::from_secs(30)).await {
        panic!("{e}\nchromedriver log:\n{}", tail(&driver_log, 30));
    }

    let settings = env.path("tokens.bin");
    let conn = env.desktop_connection(&settings);
    let report = env.path("browser-report.txt");
    let mut login = env
        .d365(
            Some(&conn),
            &["login", "--browser-command", &format!("{} --open-url", exe.display()), "--timeout", "120"],
        )
        .env("D365_TEST_WEBDRIVER", &webdriver_url)
        .env("D365_TEST_BROWSER_BINARY", &chromium)
        .env("D365_TEST_BROWSER_PROFILE", env.path("chromium-profile"))
        .env("D365_TEST_BROWSER_SPKI", spki_hash(&env.emu.ready().ca_pem))
        .env("D365_TEST_BROWSER_USER", SALES)
        .env("D365_TEST_BROWSER_PASSWORD", SALES_PASSWORD)
        .env("D365_TEST_BROWSER_REPORT", &report)
        .cmd
        .spawn()
        .expect("d365 login starts");
    let stdout = tokio::spawn(read_all(login.stdout.take()));
    let stderr = tokio::spawn(read_all(login.stderr.take()));

    // d365 login ends when the browser reaches its listener; a failure in the browser is
    // reported at once instead of waiting for d365's own timeout
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        tokio::select! {
            s = login.wait() => break s.expect("d365 login's status"),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                let r = std::fs::read_to_string(&report).unwrap_or_default();
                if r.starts_with("error") || Instant::now() > deadline {
                    let _ = login.kill().await;
                    let err = stderr.await.unwrap_or_default();
                    panic!(
                        "the browser sign-in failed: {}\n--- d365 login stderr\n{err}\n--- chromedriver log\n{}",
                        if r.is_empty() { "d365 login did not finish within 180 s".to_string() } else { r },
                        tail(&driver_log, 30)
                    );
                }
            }
        }
    };
    let out = tokio::time::timeout(Duration::from_secs(60), stdout).await.expect("stdout closes").unwrap_or_default();
    let err = tokio::time::timeout(Duration::from_secs(60), stderr).await.expect("stderr closes").unwrap_or_default();
    let run = Run { code: status.code().unwrap_or(-1), stdout: out, stderr: err };
    run.expect_code(0)
        .expect_output("signed in      authorization_code")
        .expect_output(&format!("tokens stored  {}", settings.display()))
        .expect_output("token expires  20")
        .expect_output("Sign in with your browser")
        .expect_no(SALES_PASSWORD);
    assert!(settings.exists(), "the tokens are stored");

    // the browser saw d365's page on the loopback listener (the report comes after the session ended)
    let start = Instant::now();
    let browser = loop {
        let r = std::fs::read_to_string(&report).unwrap_or_default();
        if r.starts_with("ok") || r.starts_with("error") {
            break r;
        }
        assert!(start.elapsed() < PAGE_LIMIT, "the browser command did not report within {PAGE_LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(browser.starts_with("ok"), "{browser}");
    assert!(browser.contains("http://localhost:"), "redirected to the loopback listener: {browser}");
    assert!(browser.contains("You can close this window"), "{browser}");

    // whoami from the stored tokens: no browser (D365_BROWSER points nowhere in the tests)
    let run = env.d365(Some(&conn), &["whoami", "--json"]).run().await;
    run.expect_code(0);
    assert_eq!(run.json()["user_id"], SALES_SYSTEMUSER);

    wd.shutdown().await;
    if tokio::time::timeout(Duration::from_secs(10), driver.wait()).await.is_err() {
        let _ = driver.kill().await;
    }
}

/// The browser command: drives Chromium to sign in at `url`, then writes "ok\n<where it ended>"
/// or "error: ..." to `D365_TEST_BROWSER_REPORT` (atomically).
fn browser_command(url: &str) -> ExitCode {
    let Some(report) = std::env::var_os("D365_TEST_BROWSER_REPORT").map(PathBuf::from) else {
        eprintln!("browser_login --open-url: D365_TEST_BROWSER_REPORT is not set");
        return ExitCode::FAILURE;
    };
    let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(async {
            match tokio::time::timeout(Duration::from_secs(150), drive(url)).await {
                Ok(r) => r,
                Err(_) => Err("the browser did not finish within 150 s".to_string()),
            }
        }),
        Err(e) => Err(format!("no runtime: {e}")),
    };
    let text = match &outcome {
        Ok(s) => format!("ok\n{s}"),
        Err(e) => format!("error: {e}"),
    };
    let tmp = report.with_extension("tmp");
    let written = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &report));
    if let Err(e) = written {
        eprintln!("browser_login --open-url: cannot write {}: {e}", report.display());
    }
    if outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

async fn drive(url: &str) -> Result<String, String> {
    if url.is_empty() {
        return Err("no URL given".into());
    }
    let wd = WebDriver::new(&var("D365_TEST_WEBDRIVER")?);
    let args = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-proxy-server".into(),
        "--password-store=basic".into(),
        format!("--user-data-dir={}", var("D365_TEST_BROWSER_PROFILE")?),
        // trust the emulator's CA (its key) and nothing else beyond the system's roots
        format!("--ignore-certificate-errors-spki-list={}", var("D365_TEST_BROWSER_SPKI")?),
    ];
    let session = wd
        .new_session(json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": var("D365_TEST_BROWSER_BINARY")?, "args": args },
        }))
        .await?;
    let result = sign_in(&session, url, &var("D365_TEST_BROWSER_USER")?, &var("D365_TEST_BROWSER_PASSWORD")?).await;
    session.quit().await;
    result
}

/// The person's part: sign in, accept, and land on d365's loopback page.
async fn sign_in(s: &Session, url: &str, user: &str, password: &str) -> Result<String, String> {
    s.goto(url).await?;
    let (_, username) = s.wait_for_any(&["form#signin input[name=username]"], PAGE_LIMIT).await?;
    s.type_text(&username, user).await?;
    let password_field = s.find("form#signin input[name=password]").await?.ok_or("no password field")?;
    s.type_text(&password_field, password).await?;
    let submit = s.find("form#signin button[type=submit]").await?.ok_or("no sign-in button")?;
    s.click(&submit).await?;

    let (which, element) =
        s.wait_for_any(&["form#consent button[name=action][value=accept]", "#error"], PAGE_LIMIT).await?;
    if which == 1 {
        return Err(format!("the sign-in page refused: {}", s.text(&element).await.unwrap_or_default()));
    }
    s.click(&element).await?;

    // Entra redirects to the loopback CallbackURL, where d365 answers with its own page
    let start = Instant::now();
    loop {
        let at = s.current_url().await.unwrap_or_default();
        if (at.starts_with("http://localhost:") || at.starts_with("http://127.0.0.1:"))
            && let Ok(Some(m)) = s.find("#message").await
        {
            let text = s.text(&m).await?;
            let title = s.title().await.unwrap_or_default();
            let at = at.split('?').next().unwrap_or_default();
            return Ok(format!("{at}\n{title}\n{text}"));
        }
        if start.elapsed() > PAGE_LIMIT {
            return Err(format!(
                "not redirected to the loopback listener within {PAGE_LIMIT:?} ({})",
                s.describe().await
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
