//! The sign-in commands end to end: the built `d365` binary against an emulator started in
//! this test process (HTTPS, its own CA): whoami with a client secret, the bad cases and their
//! exit codes, device-code login with the emulator's auto-approve, login/logout round trip,
//! the OAuth procedures, and the seed guides' validation steps.

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_with_a_client_secret() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let run = env.d365(Some(&conn), &["whoami", "--json"]).run().await;
    run.expect_code(0).expect_no(SECRET);
    let v = run.json();
    assert_eq!(v["flow"], "client_credentials", "{v}");
    assert!(v["user_id"].as_str().is_some_and(|s| s.len() == 36), "{v}");
    assert!(v["token_expires"].as_str().is_some(), "{v}");
    // text form, connection read from a file
    let file = env.path("conn.txt");
    std::fs::write(&file, &conn).unwrap();
    let run = env.d365(None, &["whoami", "--connection", &format!("@{}", file.display())]).run().await;
    run.expect_code(0).expect_output("signed in by   client_credentials").expect_no(SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_an_authentication_failure_with_the_aadsts_code_and_a_fix() {
    let env = start().await;
    let wrong = "not-the-secret~0123456789";
    for args in [&["whoami"][..], &["login"][..]] {
        let run = env.d365(Some(&env.secret_connection(wrong)), args).run().await;
        run.expect_code(3)
            .expect_output("AADSTS7000215")
            .expect_output("likely fix")
            .expect_output("OAuthClientSecret")
            .expect_no(wrong);
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_property_is_bad_input_with_a_suggestion() {
    let env = start().await;
    let conn = env.secret_connection(SECRET).replace("OAuthClientSecret=", "OAuthClientSecert=");
    for args in [&["whoami"][..], &["login"][..], &["logout"][..], &["proc", "GetAdminConsentURL"][..]] {
        let run = env.d365(Some(&conn), args).run().await;
        run.expect_code(2).expect_output("did you mean 'OAuthClientSecret'?").expect_no(SECRET);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_connection_and_demo_are_explained() {
    let env = start().await;
    env.d365(None, &["login"]).run().await.expect_code(2).expect_output("D365_CONNECTION");
    env.d365(None, &["--demo", "logout"]).run().await.expect_code(2).expect_output("d365 --demo whoami");
    env.d365(None, &["whoami", "--connection", "@/nonexistent/conn.txt"])
        .run()
        .await
        .expect_code(2)
        .expect_output("cannot read the connection string file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_application_credentials_and_stores_nothing() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    let run = env.d365(Some(&conn), &["login"]).run().await;
    run.expect_code(0)
        .expect_output("signed in      client_credentials  (the application, with its client secret)")
        .expect_output("tokens stored  no")
        .expect_output("token expires  20")
        .expect_no(SECRET);
    let run = env.d365(Some(&conn), &["logout"]).run().await;
    run.expect_code(0).expect_output("nothing to sign out of");
    let run = env.d365(Some(&conn), &["login", "--device-code"]).run().await;
    run.expect_code(0).expect_output("--device-code has no effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_login_then_stored_tokens_then_logout() {
    let env = start_auto(SALES).await;
    let settings = env.path("tokens.bin");
    let conn = env.desktop_connection(&settings);

    // 1. nothing stored: a command that needs the user cannot sign in silently (no terminal,
    //    and the test environment's browser command does not exist) -> sign in first, exit 3
    env.d365(Some(&conn), &["whoami"]).run().await.expect_code(3).expect_output("d365 login");

    // 2. login with a device code (auto-approved on the first poll)
    let run = env.d365(Some(&conn), &["login", "--device-code"]).run().await;
    run.expect_code(0)
        .expect_output("devicelogin") // Entra's message, on stderr
        .expect_output("signed in      device_code")
        .expect_output(&format!("tokens stored  {}", settings.display()))
        .expect_output("token expires  20");
    assert!(settings.exists(), "the settings file is written");
    let bytes = std::fs::read(&settings).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("eyJ"), "the settings file is encrypted");

    // 3. whoami from the stored tokens (no browser, no device code)
    let run = env.d365(Some(&conn), &["whoami", "--json"]).run().await;
    run.expect_code(0);
    assert_eq!(run.json()["user_id"], SALES_SYSTEMUSER);

    // 4. the store is only readable with its key
    let run = env
        .d365(Some(&conn), &["whoami"])
        .env("D365_TOKEN_KEY", "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDE=")
        .run()
        .await;
    run.expect_code(3).expect_output("d365 logout");
    assert!(settings.exists(), "a file that does not decrypt is never deleted");

    // 5. logout deletes it; a second logout has nothing to delete; whoami must sign in again
    let run = env.d365(Some(&conn), &["logout"]).run().await;
    run.expect_code(0)
        .expect_output("signed out: deleted the stored sign-in")
        .expect_output(&settings.display().to_string());
    assert!(!settings.exists());
    env.d365(Some(&conn), &["logout", "--json"]).run().await.expect_code(0).expect_output("\"deleted\": false");
    env.d365(Some(&conn), &["whoami"]).run().await.expect_code(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proc_get_oauth_authorization_url_and_list() {
    let env = start().await;
    let conn = format!("{}AuthScheme=AzureAD;OAuthClientId={DESKTOP};CallbackURL=http://localhost:33333", env.base());
    let run =
        env.d365(Some(&conn), &["proc", "GetOAuthAuthorizationUrl", "--arg", "State=st-42", "--json"]).run().await;
    run.expect_code(0);
    let v = run.json();
    let url = url::Url::parse(v[0]["URL"].as_str().unwrap_or_else(|| panic!("{v}"))).unwrap();
    assert!(url.as_str().starts_with(&format!("{}/", env.emu.ready().authority)), "{url}");
    assert!(url.path().ends_with("/oauth2/v2.0/authorize"), "{url}");
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], DESKTOP);
    assert_eq!(q["redirect_uri"], "http://localhost:33333");
    assert_eq!(q["state"], "st-42");
    assert_eq!(q["response_type"], "code");
    assert!(q["scope"].contains("user_impersonation"), "{q:?}");

    // piped: NAME<TAB>VALUE
    let run = env.d365(Some(&conn), &["proc", "getoauthauthorizationurl"]).run().await;
    run.expect_code(0);
    assert!(run.stdout.starts_with("URL\thttps://"), "{}", run.stdout);

    // GetAdminConsentURL
    let run = env
        .d365(Some(&conn), &["proc", "GetAdminConsentURL", "--arg", "CallbackURL=http://localhost:33333"])
        .run()
        .await;
    run.expect_code(0).expect_output("adminconsent").expect_output(DESKTOP);

    // bad input: unknown procedure (suggestion), unknown argument, malformed --arg
    env.d365(Some(&conn), &["proc", "GetOAuthAcessToken"])
        .run()
        .await
        .expect_code(2)
        .expect_output("did you mean 'GetOAuthAccessToken'");
    env.d365(Some(&conn), &["proc", "GetOAuthAuthorizationUrl", "--arg", "Bogus=1"])
        .run()
        .await
        .expect_code(2)
        .expect_output("unknown argument 'Bogus'");
    env.d365(Some(&conn), &["proc", "RefreshOAuthAccessToken", "--arg", "a-token-without-its-name"])
        .run()
        .await
        .expect_code(2)
        .expect_output("expected NAME=VALUE")
        .expect_no("a-token-without-its-name");
    env.d365(Some(&conn), &["proc", "GetOAuthAccessToken", "--arg", "AuthMode=WEB"])
        .run()
        .await
        .expect_code(2)
        .expect_output("needs Verifier");

    // the list needs no connection
    let run = env.d365(None, &["proc", "--list"]).run().await;
    run.expect_code(0);
    for name in ["GetOAuthAuthorizationUrl", "GetOAuthAccessToken", "RefreshOAuthAccessToken", "GetAdminConsentURL"] {
        run.expect_output(name);
    }
    let run = env.d365(None, &["proc", "--list", "--json"]).run().await;
    run.expect_code(0);
    assert_eq!(run.json().as_array().map(Vec::len), Some(4));
}

/// The web-application sign-in as separate steps: authorization URL, the user signs in (the
/// emulator auto-approves), the code redeemed with GetOAuthAccessToken (tokens printed: that is
/// the procedure's purpose, and stored), then RefreshOAuthAccessToken; whoami uses the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_application_procedures() {
    let env = start_auto(ADMIN).await;
    let settings = env.path("web.bin");
    let conn = format!(
        "{}AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH;OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET};\
         CallbackURL=http://localhost:33333;OAuthSettingsLocation={}",
        env.base(),
        settings.display()
    );
    let run = env.d365(Some(&conn), &["proc", "GetOAuthAuthorizationUrl", "--json"]).run().await;
    run.expect_code(0).expect_no(SECRET);
    let url = run.json()[0]["URL"].as_str().unwrap().to_string();
    // the user's browser: the emulator signs the admin in and redirects to the callback
    let r = http(&env).get(&url).send().await.unwrap();
    let loc = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_else(|| panic!("no redirect: {r:?}"));
    let loc = url::Url::parse(loc).unwrap();
    let code = loc.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("a code");

    let run = env
        .d365(
            Some(&conn),
            &["proc", "GetOAuthAccessToken", "--arg", "AuthMode=WEB", "--arg", &format!("Verifier={code}"), "--json"],
        )
        .run()
        .await;
    run.expect_code(0).expect_no(SECRET);
    let v = run.json();
    let rt = v[0]["OAuthRefreshToken"].as_str().unwrap().to_string();
    assert!(v[0]["OAuthAccessToken"].as_str().is_some_and(|t| t.starts_with("eyJ")), "{v}");
    assert!(!rt.is_empty());
    assert!(settings.exists(), "the tokens are stored in OAuthSettingsLocation");

    // the code was used once: redeeming it again fails with Entra's invalid_grant, exit 3
    let run = env
        .d365(
            Some(&conn),
            &["proc", "GetOAuthAccessToken", "--arg", "AuthMode=WEB", "--arg", &format!("Verifier={code}")],
        )
        .run()
        .await;
    run.expect_code(3).expect_output("AADSTS").expect_no(&code);

    let run = env
        .d365(Some(&conn), &["proc", "RefreshOAuthAccessToken", "--arg", &format!("OAuthRefreshToken={rt}")])
        .run()
        .await;
    run.expect_code(0).expect_output("OAuthRefreshToken\t");
    // the user signed in is the admin; whoami uses the stored (refreshed) tokens
    let run = env.d365(Some(&conn), &["whoami", "--json"]).run().await;
    run.expect_code(0).expect_no(SECRET);
    assert_ne!(run.json()["user_id"], SALES_SYSTEMUSER);
}

/// The seed guides' validation steps as d365 commands: a token by client credentials
/// (`d365 login`), WhoAmI (`d365 whoami`), and least privilege: the Integration role may not
/// read `new_widget`, so an export of it is refused with the 403 naming the missing privilege.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_guide_validation_steps() {
    let env = start().await;
    let conn = env.secret_connection(SECRET);
    env.d365(Some(&conn), &["login"]).run().await.expect_code(0).expect_output("client_credentials");
    let run = env.d365(Some(&conn), &["whoami"]).run().await;
    run.expect_code(0).expect_output("business unit").expect_output("organization").expect_no(SECRET);
    // a permitted table works ...
    let ok = env.path("contacts.ndjson");
    env.d365(Some(&conn), &["export", "contact", "-o", ok.to_str().unwrap()]).run().await.expect_code(0);
    // ... a forbidden one is a 403 naming the missing privilege (exit 4: service refused)
    let out = env.path("widgets.ndjson");
    let run = env.d365(Some(&conn), &["export", "new_widget", "-o", out.to_str().unwrap()]).run().await;
    run.expect_code(4).expect_output("HTTP 403").expect_output("prvReadnew_").expect_no(SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_has_examples() {
    let env = start().await;
    for cmd in ["login", "logout", "proc"] {
        let run = env.d365(None, &[cmd, "--help"]).run().await;
        run.expect_code(0).expect_output("Examples:");
    }
    env.d365(None, &["login", "--device-code", "--browser-command", "x"]).run().await.expect_code(2);
}
