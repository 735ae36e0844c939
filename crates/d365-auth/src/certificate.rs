//! Certificate credentials (`AuthScheme=AzureServicePrincipalCert`): loading the key and
//! certificate (PEM with key and certificate, PEM key + separate certificate, PFX/PKCS#12 with
//! password, as files or inline), and signing a fresh client assertion for every token
//! request (reference `entra-id-oauth.md` §4.2): PS256 with an `x5t#S256` header by default,
//! RS256 with `x5t` as the option (`OAuthJWTAlgorithm=RS256`); claims `aud` = the token
//! endpoint, `iss` = `sub` = client id, a new `jti`, `nbf` = `iat` = now, `exp` = now + 10 min.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::clock::Clock;
use crate::config::{CertType, ConnectionConfig, JwtAlgorithm};
use crate::token_client::AssertionSource;
use crate::{AuthError, ConfigError, Secret};

/// Lifetime of a client assertion.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// A certificate and its RSA private key, ready to sign assertions.
pub struct CertificateCredential {
    key: KeyPair,
    cert_der: Vec<u8>,
    client_id: String,
    algorithm: JwtAlgorithm,
    clock: Arc<dyn Clock>,
    subject: String,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("subject", &self.subject)
            .field("x5t#S256", &self.x5t_s256())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn cert_error(source_name: &str, message: impl Into<String>) -> AuthError {
    AuthError::Certificate { source_name: source_name.to_string(), message: message.into() }
}

/// A parsed certificate candidate: DER and subject.
struct Cert {
    der: Vec<u8>,
    subject: String,
    modulus: Vec<u8>,
    not_after: Option<i64>,
}

fn parse_cert(der: &[u8]) -> Option<Cert> {
    let (_, x) = x509_parser::parse_x509_certificate(der).ok()?;
    let modulus = match x.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => strip_zeros(rsa.modulus).to_vec(),
        _ => Vec::new(),
    };
    Some(Cert {
        der: der.to_vec(),
        subject: x.subject().to_string(),
        modulus,
        not_after: Some(x.validity().not_after.timestamp()),
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn subject_matches(wanted: Option<&str>, subject: &str) -> bool {
    match wanted.map(str::trim) {
        None | Some("") | Some("*") => true,
        Some(w) => subject.eq_ignore_ascii_case(w) || subject.to_ascii_lowercase().contains(&w.to_ascii_lowercase()),
    }
}

fn key_from_der(der: &[u8]) -> Option<KeyPair> {
    KeyPair::from_pkcs8(der).ok().or_else(|| KeyPair::from_der(der).ok())
}

impl CertificateCredential {
    /// Loads the certificate named by the connection (`OAuthJWTCert`, `OAuthJWTCertType`,
    /// `OAuthJWTCertPassword`, `OAuthJWTCertSubject`, `OAuthJWTKey`, `OAuthJWTAlgorithm`).
    pub fn load(config: &ConnectionConfig, client_id: &str, clock: Arc<dyn Clock>) -> Result<Self, AuthError> {
        let Some(cert) = config.jwt_cert.as_deref() else {
            return Err(ConfigError::MissingKey {
                key: "OAuthJWTCert",
                flow: "AuthScheme=AzureServicePrincipalCert (certificate)".into(),
                alternatives: " (a PEM or PFX file; or the AZURE_CLIENT_CERTIFICATE_PATH environment variable)".into(),
            }
            .into());
        };
        let kind = config.jwt_cert_type.unwrap_or_else(|| CertType::infer(cert));
        let password = config.jwt_cert_password.as_ref().map(Secret::expose).unwrap_or_default();
        let subject = config.jwt_cert_subject.as_deref();
        let (name, key, certs) = match kind {
            CertType::PemKeyFile | CertType::PemKeyBlob => {
                let (name, text) = if kind == CertType::PemKeyBlob {
                    ("OAuthJWTCert (inline PEM)".to_string(), cert.to_string())
                } else {
                    (cert.to_string(), read_text(cert)?)
                };
                let mut blocks = pem::parse_many(&text).map_err(|e| cert_error(&name, format!("not PEM: {e}")))?;
                if let Some(k) = &config.jwt_key {
                    let kt = if k.contains("-----BEGIN") { k.clone() } else { read_text(k)? };
                    blocks.extend(pem::parse_many(&kt).map_err(|e| cert_error(k, format!("not PEM: {e}")))?);
                }
                let mut key = None;
                let mut certs = Vec::new();
                for b in &blocks {
                    match b.tag() {
                        "PRIVATE KEY" | "RSA PRIVATE KEY" => {
                            key = Some(key_from_der(b.contents()).ok_or_else(|| {
                                cert_error(&name, "the private key is not an RSA key (Entra ID accepts only RSA for certificate credentials)")
                            })?);
                        }
                        "ENCRYPTED PRIVATE KEY" => {
                            return Err(cert_error(
                                &name,
                                "encrypted PEM keys are not supported: use a PFX file with OAuthJWTCertPassword, or decrypt the key (openssl pkey -in key.pem -out plain.pem)",
                            ));
                        }
                        "CERTIFICATE" => certs.extend(parse_cert(b.contents())),
                        _ => {}
                    }
                }
                let key = key.ok_or_else(|| {
                    cert_error(&name, "no private key found (a PEM 'PRIVATE KEY' block; put the key in the same file or name its file in OAuthJWTKey)")
                })?;
                (name, key, certs)
            }
            CertType::PfxFile | CertType::PfxBlob => {
                let (name, bytes) = if kind == CertType::PfxBlob {
                    let b = STANDARD.decode(cert.split_whitespace().collect::<String>()).map_err(|_| {
                        cert_error("OAuthJWTCert (inline PFX)", "PFXBLOB must be the PFX file in base64")
                    })?;
                    ("OAuthJWTCert (inline PFX)".to_string(), b)
                } else {
                    let b = std::fs::read(cert).map_err(|e| AuthError::Io {
                        what: "the certificate file",
                        path: cert.into(),
                        source: e,
                    })?;
                    (cert.to_string(), b)
                };
                let store =
                    p12_keystore::KeyStore::from_pkcs12(&bytes, password, p12_keystore::Pkcs12ImportPolicy::default())
                        .map_err(|e| {
                            cert_error(
                                &name,
                                format!("cannot open the PFX: wrong OAuthJWTCertPassword, or not a PKCS#12 file ({e})"),
                            )
                        })?;
                let mut found = None;
                for (_, entry) in store.entries() {
                    if let p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) = entry {
                        let leaf = chain.certs().first().and_then(|c| parse_cert(c.as_der()));
                        if let Some(leaf) = leaf.filter(|l| subject_matches(subject, &l.subject)) {
                            let key = key_from_der(chain.key().as_der())
                                .ok_or_else(|| cert_error(&name, "the private key is not an RSA key"))?;
                            found = Some((key, leaf));
                            break;
                        }
                    }
                }
                let (key, leaf) = found.ok_or_else(|| match subject {
                    Some(s) if s != "*" => {
                        cert_error(&name, format!("no certificate with a private key matches OAuthJWTCertSubject={s}"))
                    }
                    _ => cert_error(&name, "the PFX holds no certificate with its private key"),
                })?;
                (name, key, vec![leaf])
            }
            CertType::Other(t) => {
                return Err(ConfigError::NotSupported(format!(
                    "OAuthJWTCertType={t} is not supported: use {} (export the certificate with its key as PFX or PEM)",
                    CertType::ALLOWED
                ))
                .into());
            }
        };
        let modulus = key.public_key().modulus().big_endian_without_leading_zero().to_vec();
        let cert = certs
            .into_iter()
            .filter(|c| subject_matches(subject, &c.subject))
            .find(|c| c.modulus == modulus)
            .ok_or_else(|| {
                cert_error(
                    &name,
                    "no certificate matching the private key (the PEM needs the certificate too: `cat key.pem cert.pem > combined.pem`, or name the key file in OAuthJWTKey)",
                )
            })?;
        if let Some(na) = cert.not_after
            && na < clock.now().unix_timestamp()
        {
            return Err(cert_error(
                &name,
                format!("the certificate ({}) has expired: create a new one and register it on the app", cert.subject),
            ));
        }
        Ok(Self {
            key,
            cert_der: cert.der,
            client_id: client_id.to_string(),
            algorithm: config.jwt_algorithm,
            clock,
            subject: cert.subject,
        })
    }

    /// base64url SHA-256 thumbprint of the certificate (`x5t#S256`).
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.cert_der))
    }

    /// base64url SHA-1 thumbprint of the certificate (`x5t`).
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.cert_der))
    }

    /// The certificate subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// A signed assertion for `audience`.
    pub fn sign(&self, audience: &str) -> Result<Secret, AuthError> {
        let now = self.clock.now().unix_timestamp();
        let header = match self.algorithm {
            JwtAlgorithm::Ps256 => json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256()}),
            JwtAlgorithm::Rs256 => json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t()}),
        };
        let claims = json!({
            "aud": audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let alg: &'static dyn signature::RsaEncoding = match self.algorithm {
            JwtAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
            JwtAlgorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
        };
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(alg, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut sig)
            .map_err(|_| cert_error(&self.subject, "signing the client assertion failed"))?;
        Ok(Secret::from(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))))
    }
}

impl AssertionSource for CertificateCredential {
    fn assertion(&self, audience: &str) -> Result<Secret, AuthError> {
        self.sign(audience)
    }

    fn kind(&self) -> &'static str {
        "certificate"
    }
}

/// A federated (workload identity) assertion: the token in a file, read again for every
/// request because the platform rotates it (`AZURE_FEDERATED_TOKEN_FILE`).
#[derive(Debug)]
pub struct FederatedAssertion {
    path: std::path::PathBuf,
}

impl FederatedAssertion {
    /// Reads assertions from `path`.
    pub fn new(path: std::path::PathBuf) -> Self {
        Self { path }
    }
}

impl AssertionSource for FederatedAssertion {
    fn assertion(&self, _audience: &str) -> Result<Secret, AuthError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| AuthError::Io {
            what: "the federated token file",
            path: self.path.clone(),
            source: e,
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(AuthError::Io {
                what: "the federated token file",
                path: self.path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
            });
        }
        Ok(Secret::from(t))
    }

    fn kind(&self) -> &'static str {
        "federated token"
    }
}

fn read_text(path: &str) -> Result<String, AuthError> {
    std::fs::read_to_string(path).map_err(|e| AuthError::Io {
        what: "the certificate file",
        path: path.into(),
        source: e,
    })
}
