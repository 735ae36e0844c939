//! A throwaway PostgreSQL server for the tests: Debian's server binaries (`initdb`, `pg_ctl`),
//! a cluster in a temporary directory on a free port, trust authentication on 127.0.0.1, no
//! fsync; stopped (immediately) when dropped. Run as root, the server runs as the `postgres`
//! user (`initdb` refuses root).
//!
//! Without the binaries the tests using it skip with a message, unless `D365_PG_TEST=require`
//! (set by `scripts/test-all.sh`, which installs them), where they fail.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The TLS set-up of a test server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    Off,
    Server,
    ClientCert,
}

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<String>,
    pub port: u16,
}

/// The directory of `initdb` and `pg_ctl`: `D365_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or the `PATH`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("D365_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Some(p);
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(PathBuf::from).find(|p| p.join("initdb").exists())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgServer {
    /// Starts a server, or `None` (with a message) when PostgreSQL is not installed and not
    /// required.
    pub fn start() -> Option<Self> {
        Self::start_with(Tls::Off)
    }

    /// A server that accepts TLS connections only (`hostssl` in `pg_hba.conf`), with a
    /// certificate for 127.0.0.1 and localhost issued by a test CA; the CA's PEM file is
    /// [`Self::ca_file`].
    pub fn start_tls() -> Option<Self> {
        Self::start_with(Tls::Server)
    }

    /// A TLS-only server that also authenticates clients by certificate (`cert` in
    /// `pg_hba.conf`): the client certificate (CN `postgres`) and its key are
    /// [`Self::client_files`].
    pub fn start_client_cert() -> Option<Self> {
        Self::start_with(Tls::ClientCert)
    }

    /// The client certificate and key files (a client-certificate server only).
    pub fn client_files(&self) -> (String, String) {
        let d = self.dir.path().display();
        (format!("{d}/client.crt"), format!("{d}/client.key"))
    }

    /// The test CA (a TLS server only).
    pub fn ca_file(&self) -> String {
        format!("{}/ca.pem", self.dir.path().display())
    }

    fn start_with(tls: Tls) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var("D365_PG_TEST").as_deref() != Ok("require"),
                "D365_PG_TEST=require but no PostgreSQL server binaries (initdb) were found: install Debian's postgresql package or set D365_PG_BIN"
            );
            eprintln!("SKIPPED: no PostgreSQL server binaries (initdb); install postgresql or set D365_PG_BIN");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let user = is_root().then(|| "postgres".to_string());
        if let Some(u) = &user {
            let status = Command::new("chown").arg(format!("{u}:")).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown of the cluster directory to {u}");
        }
        let server = Self { port: free_port(), dir, bin, user };
        let data = server.data();
        server.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            server.port,
            server.dir.path().display()
        );
        if tls != Tls::Off {
            server.write_tls_files(tls == Tls::ClientCert);
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
            if tls == Tls::ClientCert {
                opts.push_str(" -c ssl_ca_file=root.crt");
            }
        }
        let log = format!("{}/server.log", server.dir.path().display());
        server.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start"]);
        Some(server)
    }

    /// A CA, a server certificate and key in the data directory, and a `pg_hba.conf` that
    /// refuses unencrypted connections.
    fn write_tls_files(&self, client_cert: bool) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "d365 test PostgreSQL CA");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let data = self.data();
        std::fs::write(self.ca_file(), ca_pem).unwrap();
        std::fs::write(format!("{data}/server.crt"), server.pem()).unwrap();
        std::fs::write(format!("{data}/server.key"), key.serialize_pem()).unwrap();
        let method = if client_cert { "cert" } else { "trust" };
        std::fs::write(
            format!("{data}/pg_hba.conf"),
            format!(
                "local all all trust\nhostssl all all 127.0.0.1/32 {method}\nhostnossl all all 127.0.0.1/32 reject\n"
            ),
        )
        .unwrap();
        std::fs::write(format!("{data}/root.crt"), std::fs::read(self.ca_file()).unwrap()).unwrap();
        if client_cert {
            // The user is the certificate's common name.
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, "postgres");
            let cert = params.signed_by(&key, &issuer).unwrap();
            let (crt, key_file) = self.client_files();
            std::fs::write(&crt, cert.pem()).unwrap();
            std::fs::write(&key_file, key.serialize_pem()).unwrap();
            assert!(Command::new("chmod").args(["600", &key_file]).status().unwrap().success());
        }
        for f in ["server.crt", "server.key", "pg_hba.conf", "root.crt"] {
            let path = format!("{data}/{f}");
            if let Some(u) = &self.user {
                assert!(Command::new("chown").arg(format!("{u}:")).arg(&path).status().unwrap().success());
            }
            assert!(Command::new("chmod").args(["600", &path]).status().unwrap().success());
        }
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The URL of the `postgres` database, tables in `schema`.
    pub fn url(&self, schema: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres?schema={schema}", self.port)
    }

    /// A plain client for checking what a sync wrote (over the Unix socket, so also for a TLS-only server).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &format!("host={} port={} user=postgres dbname=postgres", self.dir.path().display(), self.port),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the test server");
        tokio::spawn(conn);
        client
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.command("pg_ctl").args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}
