use super::*;

fn parse(s: &str) -> Result<ConnectionConfig, ConfigError> {
    ConnectionConfig::parse(s, &Environment::empty())
}

#[test]
fn cdata_examples_parse() {
    let c = parse("OrganizationUrl=https://org.crm.dynamics.com/;Edition=Sales;AuthScheme=AzureAD;InitiateOAuth=GETANDREFRESH;OAuthClientId=abc;OAuthClientSecret=s3cr3t;CallbackURL=http://localhost:33333").unwrap();
    assert_eq!(c.resource(), "https://org.crm.dynamics.com");
    assert_eq!(c.auth_scheme, AuthScheme::AzureAd);
    assert_eq!(c.initiate_oauth, Some(InitiateOAuth::GetAndRefresh));
    assert_eq!(c.client_secret.as_ref().map(Secret::expose), Some("s3cr3t"));
    assert_eq!(c.delegated_scope(), "https://org.crm.dynamics.com/user_impersonation offline_access openid profile");
    assert_eq!(c.app_scope(), "https://org.crm.dynamics.com/.default");
    assert_eq!(c.web_api_url(), "https://org.crm.dynamics.com/api/data/v9.2/");
    assert!(!format!("{c:?}").contains("s3cr3t"));

    let c = parse("OrganizationUrl=https://org.crm.dynamics.com/;AuthScheme=AzureServicePrincipalCert;AzureTenant=t;OAuthClientId=c;OAuthJWTCert=/path/app.pfx;OAuthJWTCertType=PFXFILE;OAuthJWTCertPassword=pw;InitiateOAuth=GETANDREFRESH").unwrap();
    assert_eq!(c.jwt_cert_type, Some(CertType::PfxFile));
    assert!(!format!("{c:?}").contains("pw\""));
    let c = parse("OrganizationUrl=https://org.crm.dynamics.com/;Edition=Sales;AuthScheme=AzureMSI").unwrap();
    assert_eq!(c.auth_scheme, AuthScheme::AzureMsi);
    assert_eq!(c.timeout, Some(DEFAULT_TIMEOUT));
    assert_eq!(c.callback_url, "http://localhost:33333");
}

#[test]
fn defaults_quoted_values_and_pass_through() {
    let c = parse("organization url='https://org.crm4.dynamics.com';Scope=\"https://org.crm4.dynamics.com/.default\";Pagesize=500;Verbosity=3;Timeout=0").unwrap();
    assert_eq!(c.edition, Edition::Sales);
    assert_eq!(c.api_version, "9.2");
    assert_eq!(c.property("PageSize"), Some("500"));
    assert_eq!(c.timeout, None);
    assert_eq!(c.app_scope(), "https://org.crm4.dynamics.com/.default");
    assert_eq!(c.delegated_scope(), "https://org.crm4.dynamics.com/.default offline_access");
}

#[test]
fn web_api_url_in_organization_url_sets_the_version() {
    let c = parse("OrganizationUrl=https://org.crm.dynamics.com/api/data/v9.1/").unwrap();
    assert_eq!(c.api_version, "9.1");
    assert_eq!(c.organization_url.as_str(), "https://org.crm.dynamics.com/");
    assert!(parse("OrganizationUrl=https://org.crm.dynamics.com/main.aspx").is_err());
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;OAuthClientSecert=s3cr3t").unwrap_err();
    assert_eq!(e.to_string(), "unknown connection property 'OAuthClientSecert': did you mean 'OAuthClientSecret'?");
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;Frobnicate=1").unwrap_err().to_string();
    assert!(e.contains("'Frobnicate'") && e.contains("Connecting"), "{e}");
}

#[test]
fn missing_organization_url_is_named() {
    let e = parse("AuthScheme=AzureMSI").unwrap_err().to_string();
    assert!(e.contains("OrganizationUrl"), "{e}");
}

#[test]
fn plain_http_refused_unless_loopback() {
    let e = parse("OrganizationUrl=http://org.crm.dynamics.com").unwrap_err();
    assert!(matches!(e, ConfigError::InsecureUrl { key: "OrganizationUrl", .. }), "{e}");
    assert!(e.to_string().contains("https://"));
    parse("OrganizationUrl=http://localhost:8080").unwrap();
    parse("OrganizationUrl=http://127.0.0.1:8080").unwrap();
    parse("OrganizationUrl=http://[::1]:8080").unwrap();
    let e =
        parse("OrganizationUrl=https://x.crm.dynamics.com;AzureAuthorityHost=http://login.example.com").unwrap_err();
    assert!(matches!(e, ConfigError::InsecureUrl { key: "AzureAuthorityHost", .. }), "{e}");
    let c = parse("OrganizationUrl=org.crm.dynamics.com;AzureAuthorityHost=login.microsoftonline.us").unwrap();
    assert_eq!(c.authority_host.unwrap().as_str(), "https://login.microsoftonline.us/");
}

#[test]
fn bad_enum_values_list_the_allowed_ones() {
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;InitiateOAuth=SOMETIMES").unwrap_err().to_string();
    assert_eq!(e, "InitiateOAuth=SOMETIMES is not valid: expected OFF, GETANDREFRESH, REFRESH");
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;AzureEnvironment=Mars").unwrap_err().to_string();
    assert!(e.contains("USGOVHIGH") && e.contains("CHINA"), "{e}");
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;Edition=Retail").unwrap_err().to_string();
    assert!(e.contains("FinOpsOnPremise"), "{e}");
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;CallerId=me").unwrap_err().to_string();
    assert!(e.contains("GUID"), "{e}");
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;SSLServerCert=*").unwrap_err().to_string();
    assert!(e.contains("not supported"), "{e}");
}

#[test]
fn environment_fallbacks() {
    let env = Environment::empty()
        .with("AZURE_TENANT_ID", "tid")
        .with("AZURE_CLIENT_ID", "cid")
        .with("AZURE_CLIENT_SECRET", "envsecret")
        .with("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/")
        .with("SSL_CERT_FILE", "/ca.pem");
    let c =
        ConnectionConfig::parse("OrganizationUrl=https://x.crm.dynamics.com;AuthScheme=AzureServicePrincipal", &env)
            .unwrap();
    assert_eq!(c.tenant.as_deref(), Some("tid"));
    assert_eq!(c.client_id.as_deref(), Some("cid"));
    assert_eq!(c.client_secret.as_ref().map(Secret::expose), Some("envsecret"));
    assert_eq!(c.ssl_server_cert.as_deref(), Some("/ca.pem"));
    assert!(c.from_environment.contains(&"OAuthClientSecret"));
    // the connection string wins
    let c = ConnectionConfig::parse("OrganizationUrl=https://x.crm.dynamics.com;AzureTenant=mine;AuthScheme=AzureServicePrincipal;OAuthClientSecret=given", &env).unwrap();
    assert_eq!(c.tenant.as_deref(), Some("mine"));
    assert_eq!(c.client_secret.as_ref().map(Secret::expose), Some("given"));
    // delegated flows do not pick up an app's secret from the environment
    let c = ConnectionConfig::parse("OrganizationUrl=https://x.crm.dynamics.com", &env).unwrap();
    assert!(c.client_secret.is_none());
    // certificate path from the environment infers its type
    let env = Environment::empty().with("AZURE_CLIENT_CERTIFICATE_PATH", "/c/app.pfx");
    let c = ConnectionConfig::parse(
        "OrganizationUrl=https://x.crm.dynamics.com;AuthScheme=AzureServicePrincipalCert",
        &env,
    )
    .unwrap();
    assert_eq!(c.jwt_cert_type, Some(CertType::PfxFile));
}

#[test]
fn secrets_are_redacted_in_errors() {
    let e = parse("OrganizationUrl=https://x.crm.dynamics.com;ProxyServer=p;ProxyPort=s3cr3t").unwrap_err().to_string();
    assert!(e.contains("ProxyPort=s3cr3t"), "ports are not secret: {e}");
    let e = parse("OrganizationUrl=https://user:s3cr3t@x.crm.dynamics.com").unwrap_err().to_string();
    assert!(!e.contains("s3cr3t"), "{e}");
}

#[test]
fn connection_string_from_argument_or_environment() {
    let env = Environment::empty().with(CONNECTION_ENV, "OrganizationUrl=https://e.crm.dynamics.com");
    assert_eq!(ConnectionConfig::connection_string(Some("A=1"), &env).unwrap(), "A=1");
    assert_eq!(ConnectionConfig::connection_string(None, &env).unwrap(), "OrganizationUrl=https://e.crm.dynamics.com");
    let e = ConnectionConfig::connection_string(None, &Environment::empty()).unwrap_err().to_string();
    assert!(e.contains("D365_CONNECTION") && e.contains("--connection"), "{e}");
}

#[test]
fn ssl_cert_file_errors_name_the_variable() {
    let env = Environment::empty().with("SSL_CERT_FILE", "/nonexistent/bundle.pem");
    let c = ConnectionConfig::parse("OrganizationUrl=https://e.crm.dynamics.com", &env).unwrap();
    let e = crate::http::client(&c).unwrap_err().to_string();
    assert!(e.starts_with("SSL_CERT_FILE: cannot read"), "{e}");
}

#[test]
fn finance_and_operations_urls_keep_their_path_and_name_their_resource() {
    let c =
        parse("OrganizationUrl=https://usnconeboxax1aos.cloud.onebox.dynamics.com/data/;Edition=FinOpsOnline").unwrap();
    assert_eq!(c.resource(), "https://usnconeboxax1aos.cloud.onebox.dynamics.com");
    assert_eq!(c.service_root(), "https://usnconeboxax1aos.cloud.onebox.dynamics.com/data/");
    assert_eq!(c.app_scope(), "https://usnconeboxax1aos.cloud.onebox.dynamics.com/.default");
    assert!(c.delegated_scope().starts_with("https://usnconeboxax1aos.cloud.onebox.dynamics.com/.default "));
    // an environment behind a path (the emulator's)
    let c = parse("OrganizationUrl=https://localhost:8443/fno;Edition=FinOpsOnline").unwrap();
    assert_eq!(c.resource(), "https://localhost:8443/fno");
    assert_eq!(c.service_root(), "https://localhost:8443/fno/data/");
    // the standalone Human Resources URL and its resource
    let c = parse(
        "OrganizationUrl=https://aos-rts-sf-1.hr.talent.dynamics.com/namespaces/1b3c5d7e-0000-4000-8000-000000000001/data/JobTypes;Edition=HumanResources",
    );
    assert!(c.is_err(), "an entity path is not an environment URL");
    let c = parse(
        "OrganizationUrl=https://aos-rts-sf-1.hr.talent.dynamics.com/namespaces/1b3c5d7e-0000-4000-8000-000000000001/data/;Edition=HumanResources",
    )
    .unwrap();
    assert!(c.is_hr_legacy());
    assert_eq!(c.resource(), "http://hr.talent.dynamics.com");
    assert_eq!(c.app_scope(), "http://hr.talent.dynamics.com/.default");
    assert_eq!(
        c.service_root(),
        "https://aos-rts-sf-1.hr.talent.dynamics.com/namespaces/1b3c5d7e-0000-4000-8000-000000000001/data/"
    );
    // Dataverse URLs still refuse paths
    assert!(parse("OrganizationUrl=https://x.crm.dynamics.com/fno").is_err());
    // AD FS properties, the password kept secret
    let c = parse(
        "OrganizationUrl=https://ax.contoso.com;Edition=FinOpsOnPremise;AuthScheme=ADFS;ADFSServer=adfs.contoso.com;User=CONTOSO\\jane;Password=pw-value-123",
    )
    .unwrap();
    assert_eq!(c.adfs_server.as_ref().map(|u| u.as_str()), Some("https://adfs.contoso.com/"));
    assert_eq!(c.user.as_deref(), Some("CONTOSO\\jane"));
    assert!(!format!("{c:?}").contains("pw-value-123"));
}
