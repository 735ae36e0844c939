//! The TLS set-up of a PostgreSQL connection (rustls): the server's certificate verified
//! against the CA file of `sslrootcert` or the operating system's roots, and, with `sslcert` /
//! `sslkey`, a client certificate for servers that authenticate by certificate (`cert` in
//! `pg_hba.conf`; Azure Database for PostgreSQL, Cloud SQL). Like libpq, a private key file
//! others may read is refused.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::PostgresUrl;
use crate::error::SyncError;

impl PostgresUrl {
    /// The TLS configuration of this destination (see the module docs).
    pub fn tls_config(&self) -> Result<rustls::ClientConfig, SyncError> {
        let bad = |why: String| SyncError::InvalidArgument(format!("PostgreSQL destination {self}: {why}"));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS set-up failed: {e}")))?;
        let builder = match &self.root_cert {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certificates(path, "sslrootcert").map_err(bad)? {
                    roots.add(cert).map_err(|e| {
                        bad(format!("sslrootcert {}: a certificate is not usable ({e})", path.display()))
                    })?;
                }
                builder.with_root_certificates(roots)
            }
            None => {
                use rustls_platform_verifier::BuilderVerifierExt;
                builder
                    .with_platform_verifier()
                    .map_err(|e| bad(format!("the system's certificate verifier failed: {e}")))?
            }
        };
        let Some((cert, key)) = &self.client_cert else { return Ok(builder.with_no_client_auth()) };
        let chain = read_certificates(cert, "sslcert").map_err(bad)?;
        let key_der = read_private_key(key).map_err(bad)?;
        builder.with_client_auth_cert(chain, key_der).map_err(|e| {
            bad(format!(
                "sslcert {} with sslkey {}: not usable together ({e}); give the key of that certificate",
                cert.display(),
                key.display()
            ))
        })
    }
}

/// The certificates of the PEM file `path` (`what` names the option, for messages).
fn read_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{what} {}: cannot be read ({e})", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: not a PEM certificate file ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The private key of the PEM file `path`, refused when others may read the file.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("sslkey {}: cannot be read ({e})", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "sslkey {}: the private key file may be read by others; make it yours alone (chmod 600)",
                path.display()
            ));
        }
    }
    let pem = std::fs::read(path).map_err(|e| format!("sslkey {}: cannot be read ({e})", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!("sslkey {}: no PEM private key in the file ({e}); give PKCS#8, PKCS#1 or SEC1 PEM", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(query: &str) -> PostgresUrl {
        PostgresUrl::parse(&format!("postgresql://u:pw@h/db?sslmode=require&{query}")).unwrap()
    }

    #[test]
    fn client_certificates_are_read_and_their_mistakes_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["postgres".to_string()]).unwrap().self_signed(&key).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p.display().to_string()
        };
        let crt = write("client.crt", &cert.pem(), 0o644);
        let k = write("client.key", &key.serialize_pem(), 0o600);
        let open = write("open.key", &key.serialize_pem(), 0o644);
        let wrong = write("other.key", &other.serialize_pem(), 0o600);
        let k2 = write("cert-as-key.pem", &cert.pem(), 0o600);
        let ok = url(&format!("sslcert={crt}&sslkey={k}"));
        assert!(ok.client_cert.is_some());
        ok.tls_config().expect("a matching pair");
        for (query, says) in [
            (format!("sslcert={crt}&sslkey={open}"), "may be read by others"),
            (format!("sslcert={crt}&sslkey={wrong}"), "not usable together"),
            (format!("sslcert={k}&sslkey={k}"), "no certificate in the file"),
            (format!("sslcert={crt}&sslkey={k2}"), "no PEM private key"),
            (format!("sslcert=/nonexistent.crt&sslkey={k}"), "sslcert /nonexistent.crt: cannot be read"),
        ] {
            let e = url(&query).tls_config().unwrap_err().to_string();
            assert!(e.contains(says), "{query}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
        let half = PostgresUrl::parse("postgresql://u@h/db?sslcert=/c.pem").unwrap_err().to_string();
        assert!(half.contains("sslcert needs sslkey"), "{half}");
        let plain = PostgresUrl::parse(&format!("postgresql://u@h/db?sslmode=disable&sslcert={crt}&sslkey={k}"));
        assert!(plain.unwrap_err().to_string().contains("needs TLS"));
    }
}
