//! Finance & Operations and Human Resources from the command line, against the emulator's F&O
//! environments: every sign-in (Entra client secret, certificate, a user by device code, AD FS
//! client credentials and password, the Human Resources legacy URL), the refusals (an app not
//! registered in F&O, Entra sign-in on premises), company scoping and the demo editions.

use crate::common::*;
use d365_emulator::EmulatorOptions;

/// `OrganizationUrl`, `Edition`, `AzureAuthorityHost`, `AzureTenant` and `SSLServerCert` of
/// the emulator's environment `url`.
fn base(env: &Env, url: &str, edition: &str) -> String {
    let r = env.emu.ready();
    format!(
        "OrganizationUrl={url};Edition={edition};AzureAuthorityHost={};AzureTenant={};SSLServerCert={};",
        r.authority,
        r.tenant_id,
        r.ca_pem.display()
    )
}

fn count_of(run: &Run) -> u64 {
    run.stdout.lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no count in {run:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sign_in_reaches_its_edition_and_companies_are_scoped() {
    let env = start_auto(SALES).await;
    let fno = env.emu.fno().clone();
    let count = ["query", "SELECT count(*) FROM CustomersV3"];
    let online = base(&env, &fno.org_url, "FinOpsOnline");

    // Entra client secret: the app acts as F&O user Admin, default company usmf.
    let secret =
        format!("{online}AuthScheme=AzureServicePrincipal;OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}");
    let usmf = env.d365(Some(&secret), &count).run().await;
    usmf.expect_code(0).expect_no(SECRET);
    let all = env.d365(Some(&format!("{secret};CrossCompany=true")), &count).run().await;
    all.expect_code(0);
    assert!(count_of(&usmf) < count_of(&all), "usmf alone {} vs every company {}", count_of(&usmf), count_of(&all));
    let run = env.d365(Some(&secret), &["query", "SELECT DISTINCT dataAreaId FROM CustomersV3"]).run().await;
    run.expect_code(0);
    assert_eq!(run.stdout.lines().skip(1).collect::<Vec<_>>(), ["usmf"]);
    // Row counts are a Dataverse function: refused with the way to count instead.
    let run = env.d365(Some(&secret), &["tables", "--counts", "Customers*"]).run().await;
    run.expect_code(2).expect_output("SELECT count(*)");

    // Entra certificate.
    let cert_app = env.emu.ready().app("certificate").unwrap().clone();
    let pem = cert_app.certificate.as_ref().unwrap().combined_pem.display().to_string();
    let cert = format!(
        "{online}AuthScheme=AzureServicePrincipalCert;OAuthClientId={};OAuthJWTCert={pem};OAuthJWTCertType=PEMKEY_FILE",
        cert_app.client_id
    );
    env.d365(Some(&cert), &["whoami"]).run().await.expect_code(0).expect_output("client_certificate");

    // A user signed in by device code: sales acts in its own default company, usrt.
    let settings = env.path("fno-tokens.bin");
    let user = format!(
        "{online}AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH;OAuthClientId={DESKTOP};CallbackURL=http://localhost;OAuthSettingsLocation={}",
        settings.display()
    );
    env.d365(Some(&user), &["login", "--device-code"]).run().await.expect_code(0).expect_output("device_code");
    let run = env.d365(Some(&user), &["query", "SELECT DISTINCT dataAreaId FROM CustomersV3"]).run().await;
    run.expect_code(0);
    assert_eq!(run.stdout.lines().skip(1).collect::<Vec<_>>(), ["usrt"]);
    let who = env.d365(Some(&user), &["whoami", "--json"]).run().await;
    who.expect_code(0);
    assert_eq!(who.json()["user"], SALES);

    // An app Entra ID knows but F&O has not registered: refused by the service (exit 3).
    let unregistered = env.emu.ready().app(&fno.unregistered_app).unwrap().clone();
    let conn = format!(
        "{online}AuthScheme=AzureServicePrincipal;OAuthClientId={};OAuthClientSecret={}",
        unregistered.client_id,
        unregistered.client_secret.clone().unwrap()
    );
    let run = env.d365(Some(&conn), &count).run().await;
    assert_ne!(run.code, 0, "{run:?}");
    run.expect_output("401");

    // App-only sign-in to F&O without AzureTenant: a clear message (no discovery there).
    let no_tenant = secret.replace(&format!("AzureTenant={};", env.emu.ready().tenant_id), "");
    env.d365(Some(&no_tenant), &count).run().await.expect_code(2).expect_output("AzureTenant");

    // On premises: AD FS client credentials and password grants; Entra is refused.
    let r = env.emu.ready();
    let onprem = format!(
        "OrganizationUrl={};Edition=FinOpsOnPremise;AuthScheme=ADFS;ADFSServer={};SSLServerCert={};OAuthClientId={INTEGRATION};",
        fno.onprem_url,
        fno.adfs_authority,
        r.ca_pem.display()
    );
    let run = env.d365(Some(&format!("{onprem}OAuthClientSecret={SECRET}")), &["whoami", "--json"]).run().await;
    run.expect_code(0).expect_no(SECRET);
    assert_eq!(run.json()["flow"], "adfs_client_credentials");
    let password = format!("{onprem}OAuthClientSecret={SECRET};User={ADMIN};Password=Admin#Pass1");
    let run = env.d365(Some(&password), &count).run().await;
    run.expect_code(0).expect_no("Admin#Pass1");
    assert_eq!(count_of(&run), count_of(&usmf), "admin's default company is usmf too");
    let run = env.d365(Some(&format!("{onprem}OAuthClientSecret=wrong-secret")), &count).run().await;
    run.expect_code(3).expect_output("AD FS").expect_no("wrong-secret");
    let entra_onprem = format!(
        "OrganizationUrl={};Edition=FinOpsOnPremise;AuthScheme=AzureServicePrincipal;OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}",
        fno.onprem_url
    );
    env.d365(Some(&entra_onprem), &count).run().await.expect_code(2).expect_output("AuthScheme=ADFS");

    // Human Resources at its legacy URL, with its own resource.
    let hr = base(&env, &fno.hr_legacy_url, "HumanResources");
    let conn = format!("{hr}AuthScheme=AzureServicePrincipal;OAuthClientId={INTEGRATION};OAuthClientSecret={SECRET}");
    let run = env.d365(Some(&conn), &["query", "SELECT count(*) FROM Workers"]).run().await;
    run.expect_code(0);
    assert!(count_of(&run) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_editions_run_queries_with_pushdown_and_clear_errors() {
    let env = start_with(EmulatorOptions { rows: 20, ..Default::default() }).await;
    for edition in ["finops", "finops-onprem", "hr"] {
        let run = env
            .d365(
                None,
                &[
                    "--demo-edition",
                    edition,
                    "--demo-rows",
                    "200",
                    "query",
                    "SELECT dataAreaId, count(*) AS n FROM CustomersV3 WHERE OnHoldStatus <> 'All' GROUP BY dataAreaId ORDER BY dataAreaId",
                ],
            )
            .run()
            .await;
        run.expect_code(0);
        assert_eq!(run.stdout.lines().next(), Some("dataareaid,n"), "{edition}: {run:?}");
        assert_eq!(run.stdout.lines().count(), 5, "four companies: {run:?}");
    }
    let run = env
        .d365(None, &["--demo-edition", "finops", "--demo-rows", "50", "query", "--explain", "SELECT CustomerAccount FROM CustomersV3 WHERE OnHoldStatus IN ('All','Invoice') AND OrganizationName LIKE '%Foods%'"])
        .run()
        .await;
    run.expect_code(0)
        .expect_output("OnHoldStatus%20eq%20Microsoft.Dynamics.DataEntities.CustVendorBlocked%27All%27")
        .expect_output("OrganizationName%20eq%20%27*Foods*%27")
        .expect_output("cross-company=true")
        .expect_output("key ranges of (dataAreaId, CustomerAccount)");
    // Unknown entity sets are named with a suggestion; F&O names are case-insensitive in SQL.
    let run = env
        .d365(None, &["--demo-edition", "finops", "--demo-rows", "50", "query", "SELECT * FROM CustomerV3"])
        .run()
        .await;
    run.expect_code(2).expect_output("CustomersV3");
    let run =
        env.d365(None, &["--demo-edition", "finops", "--demo-rows", "50", "describe", "salesorderlines"]).run().await;
    run.expect_code(0).expect_output("key dataAreaId, InventoryLotId").expect_output("Enum SalesStatus");
}
