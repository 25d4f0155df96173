//! A database of the test's own on the real Postgres, dropped afterwards.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;

pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestDatabase {
    pub name: String,
    server: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates a fresh database and runs the migrations on it.
    pub async fn create() -> Self {
        Self::create_on(&server_url()).await
    }

    /// A fresh database on the server at `server`.
    pub async fn create_on(server: &str) -> Self {
        let name = super::unique("tradeflow_test_");
        let admin = PgConnectOptions::from_str(server).expect("server url");
        let mut conn = admin.connect().await.unwrap_or_else(|e| {
            panic!(
                "connect to Postgres at {}:{} (DATABASE_URL, or the default): {e}. \
                 `bash scripts/test.sh [cargo test args]` installs and starts one for the run",
                admin.get_host(),
                admin.get_port()
            )
        });
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.expect("create database");
        let options = admin.clone().database(&name);
        // The server's URL with the database's name (not `to_url_lossy`: it writes `sslrootcert` as
        // "file: PATH", which no parser reads back).
        let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = format!("{base}/{name}{}", query.map(|q| format!("?{q}")).unwrap_or_default());
        let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await.expect("connect to test db");
        Self { name, server: server.to_owned(), url, pool }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let server = self.server.clone();
        // Drop runs outside async context guarantees: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            // The pool belongs to the test's runtime (blocked here): leave it, and let
            // DROP … WITH (FORCE) end its sessions. Bounded, so a drop can never hang a test.
            let drop_db = async move {
                if let Ok(admin) = PgConnectOptions::from_str(&server)
                    && let Ok(mut conn) = admin.connect().await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            };
            let _ = rt.block_on(async move { tokio::time::timeout(std::time::Duration::from_secs(20), drop_db).await });
        })
        .join();
    }
}

/// A Postgres cluster of the test's own (initdb + pg_ctl), for tests that restart the server.
pub struct ThrowawayPostgres {
    dir: std::path::PathBuf,
    bindir: std::path::PathBuf,
    pub port: u16,
    /// With TLS: the CA that signed the server's certificate (clients verify against it).
    pub ca: Option<std::path::PathBuf>,
}

fn as_postgres(bin: &std::path::Path) -> std::process::Command {
    // initdb refuses to run as root: run the server's tools as the postgres user then.
    let root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    }
}

impl ThrowawayPostgres {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A server that accepts TLS connections only (`hostssl`), with a certificate for 127.0.0.1
    /// signed by a CA made here.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let mut bindirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Debian's postgresql (scripts/test.sh installs it)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        bindirs.sort();
        let bindir = bindirs.pop().expect("a postgresql bin directory with initdb");
        let dir = super::temp_dir();
        let _ = std::process::Command::new("chown").args(["-R", "postgres"]).arg(&dir).status();
        let port = super::broker::free_port();
        let ok = as_postgres(&bindir.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("initdb")
            .success();
        assert!(ok, "initdb failed");
        let ca = tls.then(|| {
            let certs = dir.join("certs");
            let ca = super::secure::make_ca(&certs);
            super::secure::sign(&certs, "server", "127.0.0.1");
            let data = dir.join("data");
            for f in ["server.pem", "server.key"] {
                std::fs::copy(certs.join(f), data.join(f)).expect("copy certificate");
            }
            let _ = std::process::Command::new("chown")
                .args(["postgres"])
                .arg(data.join("server.pem"))
                .arg(data.join("server.key"))
                .status();
            let _ = std::process::Command::new("chmod").args(["0600"]).arg(data.join("server.key")).status();
            // TLS or nothing: a plain connection is refused.
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
            std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
            let conf = "ssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n";
            let mut text = std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
            text.push_str(conf);
            std::fs::write(data.join("postgresql.conf"), text).expect("postgresql.conf");
            ca
        });
        let pg = Self { dir, bindir, port, ca };
        pg.ctl(&["start"]);
        pg
    }

    fn ctl(&self, action: &[&str]) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        let ok = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-o", &opts, "-m", "immediate"])
            .args(action)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl")
            .success();
        assert!(ok, "pg_ctl {action:?} failed");
    }

    pub fn url(&self) -> String {
        match &self.ca {
            Some(ca) => format!(
                "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
                self.port,
                ca.display()
            ),
            None => format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
        }
    }

    /// Immediate restart: in-flight transactions are aborted, as in a crash.
    pub fn restart(&self) {
        self.ctl(&["restart"]);
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
