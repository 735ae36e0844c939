//! Keys and certificates the emulator owns: the local CA and the HTTPS server certificate,
//! the RSA key that signs tokens (published in the JWKS), and the certificates of seeded
//! apps (PEM and password-protected PFX) that tests and users sign client assertions with.
//!
//! Everything is kept in the emulator's state directory and reused when present, so a
//! persistent emulator (`--data`) keeps the same CA, signing key and app certificates.

use crate::error::StartError;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, PKCS_RSA_SHA256,
};
use std::path::{Path, PathBuf};

/// Password of the PFX files the emulator writes for seeded certificate apps.
pub const PFX_PASSWORD: &str = "emulator";

/// An RSA private key with its PKCS#8 encoding.
pub struct RsaKey {
    pair: KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKey(..)")
    }
}

impl RsaKey {
    /// Generates a new 2048-bit key.
    pub fn generate() -> Result<Self, StartError> {
        let pair =
            KeyPair::generate(KeySize::Rsa2048).map_err(|_| StartError::Crypto("RSA key generation failed".into()))?;
        let pkcs8 = pair.as_der().map_err(|_| StartError::Crypto("RSA key encoding failed".into()))?.as_ref().to_vec();
        Ok(Self { pair, pkcs8 })
    }

    /// Reads a PKCS#8 PEM key.
    pub fn from_pem(text: &str) -> Result<Self, StartError> {
        let block = pem::parse(text).map_err(|e| StartError::Crypto(format!("bad key PEM: {e}")))?;
        let pair =
            KeyPair::from_pkcs8(block.contents()).map_err(|e| StartError::Crypto(format!("bad RSA key: {e}")))?;
        Ok(Self { pair, pkcs8: block.contents().to_vec() })
    }

    /// PKCS#8 PEM text.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PRIVATE KEY", self.pkcs8.clone()))
    }

    /// PKCS#8 DER bytes.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// RS256 signature over `msg`.
    pub fn sign_rs256(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .expect("RSA signing with a valid key and exact-size buffer cannot fail");
        sig
    }

    /// Public modulus and exponent, base64url without padding (JWK `n` and `e`).
    pub fn jwk_n_e(&self) -> (String, String) {
        let public = self.pair.public_key();
        (
            URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        )
    }

    fn rcgen_key(&self) -> Result<rcgen::KeyPair, StartError> {
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&self.pkcs8.as_slice().into(), &PKCS_RSA_SHA256)
            .map_err(|e| StartError::Crypto(format!("key not usable for certificates: {e}")))
    }
}

/// An X.509 certificate with its private key.
#[derive(Debug)]
pub struct CertifiedKey {
    /// The private key.
    pub key: RsaKey,
    /// DER of the certificate.
    pub cert_der: Vec<u8>,
}

impl CertifiedKey {
    /// PEM of the certificate.
    pub fn cert_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.cert_der.clone()))
    }

    /// `x5t`: base64url SHA-1 thumbprint of the DER certificate.
    pub fn x5t(&self) -> String {
        thumbprint_sha1(&self.cert_der)
    }

    /// `x5t#S256`: base64url SHA-256 thumbprint of the DER certificate.
    pub fn x5t_s256(&self) -> String {
        thumbprint_sha256(&self.cert_der)
    }

    /// Standard base64 of the DER certificate (JWK `x5c` entry).
    pub fn x5c(&self) -> String {
        STANDARD.encode(&self.cert_der)
    }
}

/// base64url (no padding) SHA-1 of `der`.
pub fn thumbprint_sha1(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der))
}

/// base64url (no padding) SHA-256 of `der`.
pub fn thumbprint_sha256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// The paths of one app certificate on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertFiles {
    /// The certificate alone (PEM).
    pub cert_pem: PathBuf,
    /// The PKCS#8 private key alone (PEM).
    pub key_pem: PathBuf,
    /// Private key followed by certificate in one PEM file.
    pub combined_pem: PathBuf,
    /// PKCS#12 with the key and certificate, protected by [`PFX_PASSWORD`].
    pub pfx: PathBuf,
    /// The PFX password.
    pub pfx_password: String,
    /// SHA-1 thumbprint, hex upper case (as the Azure portal shows it).
    pub thumbprint_sha1_hex: String,
}

/// The local certificate authority and the HTTPS server certificate it signs.
pub struct Tls {
    /// PEM of the CA certificate (what clients must trust).
    pub ca_pem: String,
    /// Where the CA PEM was written.
    pub ca_path: PathBuf,
    /// Server certificate chain (server, CA) as PEM.
    pub server_chain_pem: String,
    /// Server private key as PEM.
    pub server_key_pem: String,
}

fn ca_params() -> Result<CertificateParams, StartError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "d365 emulator local CA");
    dn.push(DnType::OrganizationName, "d365 emulator");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    Ok(params)
}

fn cert_err(e: rcgen::Error) -> StartError {
    StartError::Crypto(format!("certificate generation failed: {e}"))
}

fn read_or_create(path: &Path, create: impl FnOnce() -> Result<String, StartError>) -> Result<String, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = create()?;
            write_private(path, text.as_bytes())?;
            Ok(text)
        }
        Err(e) => Err(StartError::io(path, e)),
    }
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path).map_err(|e| StartError::io(path, e))?;
    f.write_all(bytes).map_err(|e| StartError::io(path, e))
}

impl Tls {
    /// Loads the CA from `dir` (creating it on first use) and issues a fresh server
    /// certificate for `localhost`, `127.0.0.1` and `::1`.
    pub fn load_or_create(dir: &Path) -> Result<Self, StartError> {
        let ca_key_path = dir.join("ca.key.pem");
        let ca_path = dir.join("ca.pem");
        let ca_key_pem =
            read_or_create(&ca_key_path, || Ok(rcgen::KeyPair::generate().map_err(cert_err)?.serialize_pem()))?;
        let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem).map_err(cert_err)?;
        let params = ca_params()?;
        let ca_pem = match std::fs::read_to_string(&ca_path) {
            Ok(text) => text,
            Err(_) => {
                let cert = params.self_signed(&ca_key).map_err(cert_err)?;
                let text = cert.pem();
                std::fs::write(&ca_path, &text).map_err(|e| StartError::io(&ca_path, e))?;
                text
            }
        };
        let issuer = Issuer::new(params, ca_key);

        let server_key = rcgen::KeyPair::generate().map_err(cert_err)?;
        let mut sp = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])
            .map_err(cert_err)?;
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        sp.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        sp.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        sp.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
        let server = sp.signed_by(&server_key, &issuer).map_err(cert_err)?;
        Ok(Self {
            server_chain_pem: format!("{}{}", server.pem(), ca_pem),
            server_key_pem: server_key.serialize_pem(),
            ca_pem,
            ca_path,
        })
    }
}

/// Loads the token-signing key from `dir`, creating it on first use.
pub fn load_or_create_signing_key(dir: &Path) -> Result<CertifiedKey, StartError> {
    load_or_create_app_cert(dir, "token-signing", "d365 emulator token signing").map(|(k, _)| k)
}

/// Loads (or creates) a self-signed RSA certificate named `name` in `dir` and writes it in
/// every form a client may want: cert PEM, key PEM, key+cert PEM and PFX.
pub fn load_or_create_app_cert(
    dir: &Path,
    name: &str,
    common_name: &str,
) -> Result<(CertifiedKey, CertFiles), StartError> {
    let files = CertFiles {
        cert_pem: dir.join(format!("{name}.crt.pem")),
        key_pem: dir.join(format!("{name}.key.pem")),
        combined_pem: dir.join(format!("{name}.pem")),
        pfx: dir.join(format!("{name}.pfx")),
        pfx_password: PFX_PASSWORD.to_string(),
        thumbprint_sha1_hex: String::new(),
    };
    let key_pem = read_or_create(&files.key_pem, || Ok(RsaKey::generate()?.to_pem()))?;
    let key = RsaKey::from_pem(&key_pem)?;
    let cert_pem = read_or_create(&files.cert_pem, || {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(730);
        Ok(params.self_signed(&key.rcgen_key()?).map_err(cert_err)?.pem())
    })?;
    let cert_der = pem::parse(&cert_pem)
        .map_err(|e| StartError::Crypto(format!("bad certificate PEM {}: {e}", files.cert_pem.display())))?
        .into_contents();
    let certified = CertifiedKey { key, cert_der };
    if !files.combined_pem.exists() {
        write_private(&files.combined_pem, format!("{key_pem}{cert_pem}").as_bytes())?;
    }
    if !files.pfx.exists() {
        write_private(&files.pfx, &pfx_bytes(&certified, PFX_PASSWORD)?)?;
    }
    let hex: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &certified.cert_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok((certified, CertFiles { thumbprint_sha1_hex: hex, ..files }))
}

/// A PKCS#12 archive of `key` protected by `password` (PBES2 / AES-256).
pub fn pfx_bytes(key: &CertifiedKey, password: &str) -> Result<Vec<u8>, StartError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let err = |e: p12_keystore::error::Error| StartError::Crypto(format!("PFX encoding failed: {e}"));
    let cert = Certificate::from_der(&key.cert_der).map_err(err)?;
    let private = PrivateKey::from_der(key.key.pkcs8_der()).map_err(err)?;
    let local_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &key.cert_der);
    let chain = PrivateKeyChain::new(local_id.as_ref(), private, [cert]);
    let mut store = KeyStore::new();
    store.add_entry("emulator", KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password).write().map_err(err)
}

/// Verifies an RSA signature (`alg` = `RS256` or `PS256`) made by the key of `cert_der`.
pub fn verify_rsa(alg: &str, cert_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return false;
    };
    let spki = cert.public_key().subject_public_key.data.as_ref();
    let algorithm: &dyn signature::VerificationAlgorithm = match alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        _ => return false,
    };
    signature::UnparsedPublicKey::new(algorithm, spki).verify(msg, sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_cert_is_written_in_every_form_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, files) = load_or_create_app_cert(dir.path(), "app", "app").unwrap();
        for p in [&files.cert_pem, &files.key_pem, &files.combined_pem, &files.pfx] {
            assert!(p.exists(), "{} missing", p.display());
        }
        let (b, _) = load_or_create_app_cert(dir.path(), "app", "app").unwrap();
        assert_eq!(a.x5t_s256(), b.x5t_s256());
        let store = p12_keystore::KeyStore::from_pkcs12(
            &std::fs::read(&files.pfx).unwrap(),
            PFX_PASSWORD,
            p12_keystore::Pkcs12ImportPolicy::default(),
        )
        .unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.certs()[0].as_der(), a.cert_der.as_slice());
        assert!(
            p12_keystore::KeyStore::from_pkcs12(
                &std::fs::read(&files.pfx).unwrap(),
                "wrong",
                p12_keystore::Pkcs12ImportPolicy::default()
            )
            .is_err()
        );
    }

    #[test]
    fn rs256_signature_verifies_against_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = load_or_create_app_cert(dir.path(), "app", "app").unwrap();
        let sig = k.key.sign_rs256(b"hello");
        assert!(verify_rsa("RS256", &k.cert_der, b"hello", &sig));
        assert!(!verify_rsa("RS256", &k.cert_der, b"hellp", &sig));
        assert!(!verify_rsa("PS256", &k.cert_der, b"hello", &sig));
    }

    #[test]
    fn tls_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tls::load_or_create(dir.path()).unwrap();
        let b = Tls::load_or_create(dir.path()).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_ne!(a.server_key_pem, b.server_key_pem);
    }
}
